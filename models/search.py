"""The search index's to-do list (S4)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from extensions import Model
from models.base import utcnow


class SearchBacklog(Model):
    """A customer or note whose index entry must be brought up to date. Written in
    the same transaction as the change, so a change that was committed is never lost
    to the index; deleted once the index has it. ``kind`` is "customer", "note" or
    "customer_notes" (every note of a customer: its owner or archiving changed).
    ``applied_live`` marks a row already applied to the live index while a rebuild
    runs: the rebuild applies it once more to the index it is building."""

    __tablename__ = "search_backlog"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    ref_id: Mapped[int]
    applied_live: Mapped[bool] = mapped_column(default=False, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
