"""Customer imports (D3): each import is a batch, with what it did row by row (so
that an undo is exact), and the column mapping last used for a header row."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from extensions import Model
from models.base import utcnow


class ImportStatus:
    UPLOADED = "uploaded"  # stored, not checked yet
    CHECKING = "checking"  # the whole file is being checked (the preview and dry run)
    READY = "ready"  # checked: waiting for the user to confirm
    IMPORTING = "importing"
    DONE = "done"
    FAILED = "failed"
    UNDONE = "undone"
    # Its process died mid-check or mid-import (no heartbeat for IMPORT_STALE_SECONDS):
    # what earlier chunks wrote stays, to undo or resume.
    INTERRUPTED = "interrupted"
    RUNNING = frozenset({UPLOADED, CHECKING, IMPORTING})


class ImportBatch(Model):
    """One uploaded file and what became of it. ``options`` holds the choices
    (column mapping, duplicates, unknown tags, owner, limit override); ``counts`` the
    latest check's or the import's figures."""

    __tablename__ = "import_batches"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    file_name: Mapped[str] = mapped_column(String(255))
    file_kind: Mapped[str] = mapped_column(String(8))  # "csv" or "xlsx"
    stored_name: Mapped[str] = mapped_column(String(64))  # under instance/imports/
    headers: Mapped[list[str]] = mapped_column(JSON, default=list)
    total_rows: Mapped[int] = mapped_column(default=0)
    status: Mapped[str] = mapped_column(String(16), default=ImportStatus.CHECKING)
    progress: Mapped[int] = mapped_column(default=0)  # rows done of the current step
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    finished_at: Mapped[datetime | None]
    # Written every IMPORT_HEARTBEAT_SECONDS while a check or import runs.
    heartbeat_at: Mapped[datetime | None]
    undone_at: Mapped[datetime | None]
    undone_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    user = relationship("User", foreign_keys=[user_id])


class ImportRow(Model):
    """What an import did with one row of its file: created a customer, or filled
    empty fields of an existing one (``old_values`` holds what they were, and
    ``added`` the phones, tags and note it added)."""

    __tablename__ = "import_rows"
    __table_args__ = (Index("ix_import_rows_batch_row", "batch_id", "row_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("import_batches.id", ondelete="CASCADE"))
    row_number: Mapped[int]
    action: Mapped[str] = mapped_column(String(16))  # "created", "created_anyway", "filled"
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"), index=True)
    old_values: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    added: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ImportMapping(Model):
    """The column mapping last confirmed for a header row (office-wide), keyed by a
    digest of the normalised headers."""

    __tablename__ = "import_mappings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    mapping: Mapped[list[str]] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
