"""The public pool's history (P6) and the office settings an admin edits (P8)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from extensions import Model
from models.base import utcnow


class PoolEventKind(StrEnum):
    CREATE_IN_POOL = "create_in_pool"
    CLAIM = "claim"  # 领取
    RELEASE = "release"  # 退回公海
    ASSIGN = "assign"  # 分配
    RECYCLE = "recycle"  # 自动回收
    HANDOVER = "handover"  # 离职交接
    RELEASE_UNDONE = "release_undone"  # the releaser's Undo, within a minute


class PoolEvent(Model):
    """Who moved a customer into, out of or within the pool: when, from whom, to whom, why."""

    __tablename__ = "pool_events"
    __table_args__ = (
        Index("ix_pool_events_customer_at", "customer_id", "at"),
        # Daily claim limit: one user's claims since the start of the day.
        Index("ix_pool_events_actor_kind_at", "actor_id", "kind", "at"),
        # Re-claim lock: what a user released or lost, recently.
        Index("ix_pool_events_from_kind_at", "from_user_id", "kind", "at"),
        Index("ix_pool_events_kind_at", "kind", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    from_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    to_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reason: Mapped[str] = mapped_column(String(300), default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    customer = relationship("Customer")
    actor = relationship("User", foreign_keys=[actor_id])
    from_user = relationship("User", foreign_keys=[from_user_id])
    to_user = relationship("User", foreign_keys=[to_user_id])


class Setting(Model):
    """One office-wide setting (services.settings holds the defaults and types)."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
