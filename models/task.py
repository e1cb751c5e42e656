"""Follow-up tasks (跟进任务): from a note's next-follow-up date or on their own."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from extensions import Model
from models.base import utcnow


class FollowUpTask(Model):
    __tablename__ = "follow_up_tasks"
    __table_args__ = (Index("ix_follow_up_tasks_assignee_open", "assignee_id", "done_at", "due_date"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    assignee_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    note_id: Mapped[int | None] = mapped_column(ForeignKey("customer_notes.id", ondelete="SET NULL"))
    title: Mapped[str] = mapped_column(String(200))
    due_date: Mapped[date]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    done_at: Mapped[datetime | None]
    done_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    customer = relationship("Customer", lazy="joined")
    assignee = relationship("User", foreign_keys=[assignee_id], lazy="joined")

    @property
    def done(self) -> bool:
        return self.done_at is not None
