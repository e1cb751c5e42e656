"""Notes (跟进记录) on customers, their revisions, comments, mentions and templates."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from extensions import Model, db
from models.base import utcnow


class NoteKind(StrEnum):
    CALL = "call"  # 电话
    VISIT = "visit"  # 到访
    EMAIL = "email"  # 邮件
    MEETING = "meeting"  # 会议
    WECHAT = "wechat"  # 微信
    OTHER = "other"  # 其他


# The standard sections of a note (N2), in display order.
SECTIONS = ("summary", "needs", "plan")

note_tags = db.Table(
    "note_tags",
    db.Column("note_id", ForeignKey("customer_notes.id", ondelete="CASCADE"), primary_key=True),
    db.Column("tag_id", ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_note_tags_tag_note", "tag_id", "note_id"),
)


class NoteTemplate(Model):
    """A standard entry (统一备注模板) such as 来电登记: prompts that prefill the sections,
    and which sections a note made from it must fill in."""

    __tablename__ = "note_templates"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50), unique=True)
    kind: Mapped[str] = mapped_column(String(16), default=NoteKind.CALL.value)
    # {"summary": "prompt", "needs": "prompt", "plan": "prompt"}
    prompts: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    # Subset of SECTIONS.
    required_sections: Mapped[list[str]] = mapped_column(JSON, default=list)
    active: Mapped[bool] = mapped_column(default=True)
    position: Mapped[int] = mapped_column(default=0)


class CustomerNote(Model):
    __tablename__ = "customer_notes"
    __table_args__ = (
        CheckConstraint(
            "kind IN ('call', 'visit', 'email', 'meeting', 'wechat', 'other')", name="kind_known"
        ),
        # The customer page pages back in time along this index.
        Index("ix_customer_notes_customer_created", "customer_id", "created_at", "id"),
        # A user's calls and visits of a day (the front desk's home page). The kind
        # before the time: a reader's notes of one customer, newest first (the front
        # desk's customer page), still walk ix_customer_notes_customer_created.
        Index("ix_customer_notes_author_kind_created", "author_id", "kind", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(16), default=NoteKind.CALL.value)
    body: Mapped[str] = mapped_column(Text, default="")
    sections: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    template_id: Mapped[int | None] = mapped_column(ForeignKey("note_templates.id", ondelete="SET NULL"))
    # Server time of saving; contacted_at when the contact happened earlier.
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    contacted_at: Mapped[datetime | None]
    updated_at: Mapped[datetime | None]
    deleted_at: Mapped[datetime | None]
    deleted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    customer = relationship("Customer")
    author = relationship("User", foreign_keys=[author_id], lazy="joined")
    template = relationship("NoteTemplate")
    tags = relationship("Tag", secondary=note_tags, lazy="selectin", order_by="Tag.name")
    comments: Mapped[list[NoteComment]] = relationship(
        back_populates="note", order_by="NoteComment.id", lazy="selectin"
    )

    @property
    def contact_time(self) -> datetime:
        return self.contacted_at or self.created_at


# The pool's recycle clocks (services.pool): per customer, the latest contact time of
# its live notes of the effective kinds, read from this index alone (an active
# customer has dozens of notes; reading their rows took 2.6 ms for a list page of 25,
# the index 0.35 ms). deleted_at is in it too, so that SQLite sees it covers the query.
Index("ix_customer_notes_effective", CustomerNote.customer_id, CustomerNote.kind,
      CustomerNote.contacted_at, CustomerNote.created_at, CustomerNote.deleted_at,
      sqlite_where=CustomerNote.deleted_at.is_(None), postgresql_where=CustomerNote.deleted_at.is_(None))


class NoteRevision(Model):
    """The content of a note before an edit (N5)."""

    __tablename__ = "note_revisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    note_id: Mapped[int] = mapped_column(ForeignKey("customer_notes.id", ondelete="CASCADE"), index=True)
    editor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(16))
    body: Mapped[str] = mapped_column(Text, default="")
    sections: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    editor = relationship("User")


class NoteComment(Model):
    __tablename__ = "note_comments"

    id: Mapped[int] = mapped_column(primary_key=True)
    note_id: Mapped[int] = mapped_column(ForeignKey("customer_notes.id", ondelete="CASCADE"), index=True)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    body: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    note: Mapped[CustomerNote] = relationship(back_populates="comments")
    author = relationship("User", lazy="joined")


class Mention(Model):
    """A colleague @mentioned in a note or comment; unread until they open it."""

    __tablename__ = "mentions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    note_id: Mapped[int] = mapped_column(ForeignKey("customer_notes.id", ondelete="CASCADE"), index=True)
    comment_id: Mapped[int | None] = mapped_column(ForeignKey("note_comments.id", ondelete="CASCADE"))
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    read_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_mentions_user_read", "user_id", "read_at"),)

    note = relationship("CustomerNote")
    author = relationship("User", foreign_keys=[author_id])
