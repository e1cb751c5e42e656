"""The nightly jobs (D5): the pool sweep, search-index housekeeping, pruning the
sign-in throttle, and the backup. Each runs under its lease (:mod:`services.leases`),
whoever starts it: the app's scheduler (:mod:`services.scheduler`), the ``flask
jobs`` / ``pool recycle`` / ``backup create`` commands (cron), or "Back up now".

:func:`run` takes the job's lease, runs it, records the result and gives the lease
back; it never raises for a job that fails (the result says so). It commits: each
job is its own transaction(s), and must be called with nothing pending in
``db.session``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from flask import current_app
from flask_babel import lazy_gettext as _l

from extensions import database_url, db, reading_only, refresh_statistics
from models import User, utcnow
from services import audit, backup, backup_db, backup_worker, leases

log = logging.getLogger(__name__)

Echo = Callable[[str], None]


@dataclass(frozen=True)
class Job:
    name: str
    label: object  # lazy string, for the page
    work: Callable[..., str]  # (echo, **options) -> summary; raises when the job fails


@dataclass(frozen=True)
class Outcome:
    """What :func:`run` did: ``ran`` (then ``ok`` and ``message``), or not, because
    another process holds the lease (``held_by``) or the slot is served already."""

    name: str
    ran: bool
    ok: bool | None = None
    message: str = ""
    held_by: str | None = None


# ---- the jobs ---------------------------------------------------------------------------

def backup_folder() -> Path:
    """BACKUP_DIR, by default instance/backups."""
    return Path(current_app.config["BACKUP_DIR"] or Path(current_app.instance_path) / "backups")


def configured_database() -> backup_db.Database:
    """The app's database as :mod:`services.backup` sees it. Raises BackupError."""
    return backup_db.database_for(database_url(current_app),
                                  busy_timeout_ms=current_app.config["SQLITE_BUSY_TIMEOUT_MS"])


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def make_backup(echo: Echo, *, folder: Path | None = None, actor_id: int | None = None,
                actor_name: str = "scheduler", in_child: bool = True) -> str:
    """Back up, verify the new file, rotate the folder, audit (``backup.create``).
    ``in_child``: the work runs in a process of its own at a lower priority
    (services.backup_worker), so a serving process keeps answering; the CLI runs it
    in-process. Raises BackupError when no backup was made or it does not verify."""
    folder = folder or backup_folder()
    config, started = current_app.config, time.monotonic()
    settings_file = Path(current_app.instance_path) / "config.py"
    keep = {"daily": config["BACKUP_KEEP_DAILY"], "weekly": config["BACKUP_KEEP_WEEKLY"],
            "monthly": config["BACKUP_KEEP_MONTHLY"]}
    if in_child:
        answer = backup_worker.run_in_child(database_url(current_app), folder, settings_file,
                                            config["SQLITE_BUSY_TIMEOUT_MS"], **keep)
        if "error" in answer:
            raise backup.BackupError(f"No backup made: {answer['error']}")
        path, manifest, problems = Path(answer["path"]), answer["manifest"], answer["problems"]
        rotated = answer["rotated"]
    else:
        try:
            path, manifest = backup.create(configured_database(), folder, settings_file)
        except (backup.BackupError, OSError) as failed:
            raise backup.BackupError(f"No backup made: {failed}") from None
        problems = None
    _audit_backup(path, manifest, actor_id, actor_name)
    echo(f"Wrote {path} ({_megabytes(path.stat().st_size)}, {sum(manifest['row_counts'].values())} rows in "
         f"{len(manifest['row_counts'])} tables) in {time.monotonic() - started:.1f} s.")
    if problems is None:
        problems = backup.verify(path).problems  # a few seconds even for 100,000 notes
        rotated = [] if problems else [item.name for item in backup.rotate(folder, **keep)]
    if problems:
        raise backup.BackupError(f"{path.name} does not verify: {'; '.join(problems)}")
    echo(f"Verified {path.name}.")
    for name in rotated:
        echo(f"  rotated away {name}")
    return f"{path.name}, {_megabytes(path.stat().st_size)}, verified; {len(rotated)} rotated away"


def _audit_backup(path: Path, manifest: dict, actor_id: int | None, actor_name: str) -> None:
    actor = db.session.get(User, actor_id) if actor_id else None
    audit.record("backup.create", actor, actor_name=None if actor else actor_name, file=path.name,
                 size=path.stat().st_size, database=manifest["database"],
                 schema_revision=manifest["schema_revision"])
    db.session.commit()


def sweep_pool(echo: Echo) -> str:
    """The pool sweep (P5), then the planner's statistics (ANALYZE)."""
    from services import pool, settings

    done = pool.recycle_due_customers()
    db.session.commit()
    days = settings.get("pool.recycle_days")
    for customer, clock in done:
        owner = customer.owner.username if customer.owner else "?"
        echo(f"  #{customer.id} {customer.name} (owner {owner}): no effective follow-up since "
             f"{clock.started_at:%Y-%m-%d %H:%M} UTC, more than {days} days")
    refresh_statistics()
    echo(f"Recycled {len(done)} customers.")
    return f"Recycled {len(done)} customers."


def tidy_search_index(echo: Echo) -> str:
    """Apply what waits in the backlog (which also deletes replaced index files),
    then compare the index with the database and repair what differs."""
    from services import search

    search.drain()
    report = search.check()
    if report.unavailable:
        built = search.rebuild()
        return f"The index was unavailable ({report.unavailable}); rebuilt: {built.customers} customers, " \
               f"{built.notes} notes."
    if report.ok and not report.backlog:
        echo("The index matches the database.")
        return "The index matches the database."
    queued = search.fix(report)
    waiting = search.check().backlog
    message = f"Repaired {queued} index entries" + (f"; {waiting} changes still wait" if waiting else "") + "."
    echo(message)
    return message


def prune_throttle(echo: Echo) -> str:
    """Delete sign-in throttle rows that hold nothing back any more."""
    from services import login_throttle

    pruned = login_throttle.prune_login_throttle(utcnow(), login_throttle.policy_from_config(current_app.config))
    db.session.commit()
    echo(f"Pruned {pruned} sign-in throttle rows.")
    return f"Pruned {pruned} sign-in throttle rows."


# In this order: the sweep's changes reach the index, and the backup comes last.
JOBS: dict[str, Job] = {job.name: job for job in (
    Job("pool_sweep", _l("Pool sweep (automatic recycling)"), sweep_pool),
    Job("search", _l("Search index housekeeping"), tidy_search_index),
    Job("prune", _l("Pruning old sign-in throttle rows"), prune_throttle),
    Job("backup", _l("Backup"), make_backup),
)}


# ---- running them ---------------------------------------------------------------------

def run(name: str, *, force: bool = False, owed_only: bool = False, now: datetime | None = None,
        started_by: str = "scheduler", echo: Echo = log.info, **options) -> Outcome:
    """Run job ``name`` under its lease. Unless ``force``, only when it has not run
    for the current nightly slot (and, with ``owed_only``, only for a slot newer than
    the job's row). Never raises for the job's own failure: it is recorded."""
    now = now or utcnow()
    with reading_only():
        slot = leases.current_slot(now, leases.nightly_hour())
    db.session.commit()  # end the read: lease statements use their own connection
    holder = leases.new_holder()
    if not leases.take(name, holder, now=now, started_by=started_by, slot=None if force else slot,
                       owed_only=owed_only):
        with reading_only():
            running = leases.states([name], now)[name]
        db.session.commit()
        return Outcome(name, False, held_by=running.holder if running.running else None)
    ok, message = False, "interrupted"
    try:
        with leases.heartbeat(name, holder):
            message = JOBS[name].work(echo, **options)
            db.session.commit()
            ok = True
    except Exception as failed:  # recorded for the page, the banner and the caller
        db.session.rollback()
        log.exception("nightly job %s failed", name)
        message = str(failed) or type(failed).__name__
    finally:
        if not ok:
            db.session.rollback()
        leases.finish(name, holder, ok=ok, message=message, slot=slot)
    return Outcome(name, True, ok, message)


def run_due(*, now: datetime | None = None, started_by: str = "scheduler", force: bool = False,
            owed_only: bool = True, echo: Echo = log.info) -> list[Outcome]:
    """Each job that is due, in order. Stops at a job another process is running,
    so the order holds (the next tick goes on where it stopped)."""
    outcomes = []
    for name in JOBS:
        outcome = run(name, force=force, owed_only=owed_only, now=now, started_by=started_by, echo=echo)
        outcomes.append(outcome)
        if outcome.held_by:
            break
    return outcomes
