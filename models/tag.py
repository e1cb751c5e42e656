"""Tags (标签) in groups (行业, 需求, 阶段, 地区, custom), each with a colour."""

from __future__ import annotations

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from extensions import Model

# Colours a tag or group may take: names of CSS classes in static/css/app.css, so no
# inline style is ever needed (the CSP forbids it).
COLOURS = ("grey", "red", "orange", "amber", "green", "teal", "blue", "indigo", "purple", "pink")


class TagGroup(Model):
    __tablename__ = "tag_groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(32), unique=True)
    colour: Mapped[str] = mapped_column(String(16), default="grey")
    position: Mapped[int] = mapped_column(default=0)

    tags: Mapped[list[Tag]] = relationship(back_populates="group", order_by="Tag.name")


class Tag(Model):
    __tablename__ = "tags"
    __table_args__ = (UniqueConstraint("group_id", "name", name="uq_tags_group_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("tag_groups.id"), index=True)
    name: Mapped[str] = mapped_column(String(32))
    # Empty: the group's colour.
    colour: Mapped[str] = mapped_column(String(16), default="")

    group: Mapped[TagGroup] = relationship(back_populates="tags", lazy="joined")

    @property
    def shown_colour(self) -> str:
        return self.colour or self.group.colour

    def __repr__(self) -> str:
        return f"<Tag {self.group_id}:{self.name}>"
