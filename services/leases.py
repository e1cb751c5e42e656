"""Leases on the nightly jobs (D5): whatever the number of worker processes or
servers, one process runs a job at a time, and a job runs once per nightly slot.

Each job has a row in ``job_runs``. A process takes the job with one conditional
UPDATE — ``… WHERE expires_at IS NULL OR expires_at < now`` (and, for the nightly
run, ``done_slot`` is not tonight's) — whose row count says who won; the row is
created beforehand by an INSERT whose unique-key race is harmless (the loser's
insert fails, and the UPDATE decides). This works alike on SQLite (BEGIN
IMMEDIATE serialises the UPDATEs) and PostgreSQL (the row lock does).

The holder renews its lease every HEARTBEAT_SECONDS while the job runs; a process
that dies mid-job stops renewing, and another may take the job LEASE_SECONDS later.
Lease statements run on their own short connection and commit at once, apart from
the job's own transaction (the caller's ``db.session``).

Slots: the jobs are due every night at the hour set in ``jobs.nightly_hour``,
office time (OFFICE_TIMEZONE). The *slot* of a moment is the office date of the
latest such hour at or before it. A slot older than the job's row (``created_at``,
the day the app first knew the job) is not owed: a fresh install has no missed
night. Times are naive UTC (the servers' clocks are assumed to be in sync).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from extensions import db, reading_only
from models import JobRun, utcnow
from services import settings
from services.office_time import office_zone

log = logging.getLogger(__name__)

LEASE_SECONDS = 15 * 60
HEARTBEAT_SECONDS = 60
# A slot unserved this long after its hour is overdue (the banner).
OVERDUE_AFTER = timedelta(hours=3)


@dataclass(frozen=True)
class JobState:
    """A job's row as the data-safety page and the banners read it."""

    name: str
    running: bool
    holder: str | None
    started_at: datetime | None
    started_by: str
    finished_at: datetime | None
    ok: bool | None
    message: str
    done_slot: date | None
    attention: str | None  # "failed", "overdue" or None
    details: dict | None = None  # the codes and numbers of the message (services.nightly.detail_text)


def new_holder() -> str:
    """Who takes a lease: this machine and process, and one run of it."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(4)}"


def nightly_hour() -> int:
    return settings.get("jobs.nightly_hour")


def slot_start(slot: date, hour: int) -> datetime:
    """The moment (naive UTC) the nightly jobs of office date ``slot`` are due."""
    local = datetime.combine(slot, time(hour), tzinfo=office_zone())
    return local.astimezone(UTC).replace(tzinfo=None)


def current_slot(now: datetime, hour: int) -> date:
    """The office date of the latest nightly hour at or before ``now`` (naive UTC)."""
    local = now.replace(tzinfo=UTC).astimezone(office_zone())
    return local.date() if local.hour >= hour else local.date() - timedelta(days=1)


def next_run(now: datetime, hour: int) -> datetime:
    """When the next nightly slot begins (naive UTC)."""
    return slot_start(current_slot(now, hour) + timedelta(days=1), hour)


def ensure_jobs(names, now: datetime | None = None) -> None:
    """A row for each job in ``names`` (created_at = now when new)."""
    now = now or utcnow()
    with reading_only(), db.engine.connect() as connection:
        known = set(connection.scalars(select(JobRun.name).where(JobRun.name.in_(list(names)))))
    for name in names:
        if name in known:
            continue
        try:
            with db.engine.begin() as connection:
                connection.execute(insert(JobRun).values(name=name, created_at=now, started_by="", message=""))
        except IntegrityError:
            pass  # another process inserted it first: the same row


def take(name: str, holder: str, *, now: datetime, started_by: str, slot: date | None = None,
         owed_only: bool = False) -> bool:
    """Take the lease on job ``name`` for ``holder`` unless another process holds
    it. With ``slot``, only if the job has not yet run for that slot; with
    ``owed_only`` also, only if the slot is newer than the job's row (the
    scheduler: nothing is owed for nights before the app knew the job)."""
    ensure_jobs([name], now)
    free = or_(JobRun.expires_at.is_(None), JobRun.expires_at < now)
    condition = and_(JobRun.name == name, free)
    if slot is not None:
        condition = and_(condition, or_(JobRun.done_slot.is_(None), JobRun.done_slot != slot))
        if owed_only:
            condition = and_(condition, JobRun.created_at <= slot_start(slot, nightly_hour()))
    with db.engine.begin() as connection:
        taken = connection.execute(
            update(JobRun).where(condition).values(
                holder=holder, expires_at=now + timedelta(seconds=LEASE_SECONDS), started_at=now,
                started_by=started_by[:64])
        ).rowcount
    return taken == 1


def renew(engine, name: str, holder: str, now: datetime | None = None) -> bool:
    """Push the lease's expiry on; False when ``holder`` no longer holds it."""
    now = now or utcnow()
    with engine.begin() as connection:
        return connection.execute(
            update(JobRun).where(JobRun.name == name, JobRun.holder == holder)
            .values(expires_at=now + timedelta(seconds=LEASE_SECONDS))
        ).rowcount == 1


def finish(name: str, holder: str, *, ok: bool, message: str, slot: date, details: dict | None = None) -> bool:
    """Give the lease back and record the result, and that ``slot`` is served.
    False when the lease was lost meanwhile (expired and taken by another)."""
    with db.engine.begin() as connection:
        done = connection.execute(
            update(JobRun).where(JobRun.name == name, JobRun.holder == holder).values(
                holder=None, expires_at=None, finished_at=utcnow(), ok=ok, message=message[:1000],
                done_slot=slot, details=details)
        ).rowcount == 1
    if not done:
        log.warning("job %s: the lease of %s had expired and was taken over", name, holder)
    return done


@contextmanager
def beating(every: float, beat: Callable[[], bool], *, name: str):
    """Call ``beat`` every ``every`` seconds in a thread (named ``name``) while the
    block runs, until it returns False; the thread stops when the block ends.
    An OperationalError of a beat (the database busy for a moment) is logged, not
    raised, and the next beat tries again: what a heartbeat bounds is long."""
    stop = threading.Event()

    def run():
        while not stop.wait(every):
            try:
                if not beat():
                    return
            except OperationalError:
                log.warning("%s: missed a beat (the database was busy)", name, exc_info=True)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)


def heartbeat(name: str, holder: str, every: float = HEARTBEAT_SECONDS):
    """Renew the lease every ``every`` seconds in a thread while the block runs
    (a context manager); the renewing stops when the lease is lost."""
    engine = db.engine

    def renewed() -> bool:
        if renew(engine, name, holder):
            return True
        log.warning("job %s: lost the lease of %s", name, holder)
        return False

    return beating(every, renewed, name=f"deskbook-lease-{name}")


def state(row: JobRun | None, name: str, now: datetime, hour: int) -> JobState:
    """What the page and the banners need to know of job ``name``."""
    if row is None:
        return JobState(name, False, None, None, "", None, None, "", None, None)
    running = row.holder is not None and row.expires_at is not None and row.expires_at >= now
    return JobState(name, running, row.holder if running else None, row.started_at, row.started_by,
                    row.finished_at, row.ok, row.message, row.done_slot, _attention(row, running, now, hour),
                    row.details)


def _attention(row: JobRun, running: bool, now: datetime, hour: int) -> str | None:
    """"failed" when the last run failed; "overdue" when a slot the app knew of
    passed OVERDUE_AFTER ago and no run served it; otherwise None."""
    if row.ok is False and not running:
        return "failed"
    slot = current_slot(now, hour)
    start = slot_start(slot, hour)
    if start < row.created_at or (row.done_slot is not None and row.done_slot >= slot):
        return None
    return "overdue" if now - start > OVERDUE_AFTER else None


def states(names, now: datetime | None = None) -> dict[str, JobState]:
    """Every job in ``names`` by name, read with one query."""
    now = now or utcnow()
    rows = {row.name: row for row in db.session.scalars(select(JobRun).where(JobRun.name.in_(list(names))))}
    hour = nightly_hour()
    return {name: state(rows.get(name), name, now, hour) for name in names}


def attention(name: str, now: datetime | None = None) -> str | None:
    """"failed", "overdue" or None for job ``name`` (None for a job never seen)."""
    return states([name], now)[name].attention
