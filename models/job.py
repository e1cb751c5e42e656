"""The nightly jobs' leases and results (D5): one row per job."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from extensions import Model
from models.base import utcnow


class JobRun(Model):
    """A nightly job's lease and its last run. The process whose ``holder`` is set and
    whose ``expires_at`` lies ahead is running the job; anyone else may take the row
    once ``expires_at`` has passed (services.leases takes it with one conditional
    UPDATE). ``done_slot`` is the office date of the nightly slot the last finished
    run counted for, so a second worker does not run the job again that night."""

    __tablename__ = "job_runs"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(120))
    expires_at: Mapped[datetime | None]
    # When the app first knew of this job: nightly slots before it are not owed
    # (a fresh install has no missed night).
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    started_by: Mapped[str] = mapped_column(String(64), default="")
    finished_at: Mapped[datetime | None]
    ok: Mapped[bool | None]
    message: Mapped[str] = mapped_column(String(1000), default="")  # English, for the log
    # What the last run did as a code and its numbers ({"code": "recycled", "count": 3}),
    # put into words in the reader's language when shown (services.job_text).
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    done_slot: Mapped[date | None]
