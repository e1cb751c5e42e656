"""Helpers for the nightly jobs' tests: put a job's night in the past."""

from __future__ import annotations

from datetime import UTC, timedelta

from flask import g
from sqlalchemy import update

from extensions import db
from models import JobRun, Setting, utcnow
from services import leases
from services.office_time import office_zone


def set_nightly_hour(hour: int) -> None:
    row = db.session.get(Setting, "jobs.nightly_hour") or Setting(key="jobs.nightly_hour")
    row.value = hour
    db.session.add(row)
    db.session.commit()
    g.pop("deskbook_settings", None)


def make_overdue(name: str, hours_ago: int = 4) -> None:
    """Job ``name`` known for three days, and tonight's hour ``hours_ago`` hours ago
    (more than leases.OVERDUE_AFTER), with no run since: overdue, whenever the test runs."""
    now = utcnow()
    db.session.commit()  # lease statements use their own connection: no write may be pending
    leases.ensure_jobs([name], now - timedelta(days=3))
    db.session.execute(update(JobRun).where(JobRun.name == name).values(
        created_at=now - timedelta(days=3), done_slot=None, ok=None))
    db.session.commit()
    local_hour = now.replace(tzinfo=UTC).astimezone(office_zone()).hour
    set_nightly_hour((local_hour - hours_ago) % 24)


def block_backups(app, tmp_path) -> None:
    """BACKUP_DIR names a file: every backup fails (in the backup process too)."""
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("x")
    app.config["BACKUP_DIR"] = str(blocked)
