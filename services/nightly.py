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
from flask_babel import force_locale
from flask_babel import lazy_gettext as _l

from extensions import database_url, db, reading_only, refresh_statistics
from models import User, utcnow
from services import audit, backup, backup_db, backup_worker, leases

log = logging.getLogger(__name__)

Echo = Callable[[str], None]
Details = dict  # {"code": one of DETAILS, and its numbers}

# What a run did, by code; put into words when shown, in the reader's language.
DETAILS = {
    "pool_recycled": _l("Recycled %(count)d customers."),
    "index_ok": _l("The index matches the database."),
    "index_rebuilt": _l("The index was unavailable; rebuilt: %(customers)d customers, %(notes)d notes."),
    "index_repaired": _l("Repaired %(count)d index entries; %(waiting)d changes still wait."),
    "index_compacted": _l("The index was written anew, without %(replaced)d replaced entries: "
                          "%(customers)d customers, %(notes)d notes."),
    "throttle_pruned": _l("Pruned %(count)d sign-in throttle rows."),
    "backup_made": _l("%(file)s, %(mb).1f MB, verified; %(rotated)d rotated away."),
    "failed": _l("Failed: %(error)s"),
}


def detail_text(details: Details | None, fallback: str = "") -> str:
    """A run's details in words, in the current language; ``fallback`` (the stored
    message) for a run recorded before details were, or an unknown code."""
    text = DETAILS.get(details.get("code", "")) if isinstance(details, dict) else None
    if text is None:
        return fallback
    try:
        return str(text) % details
    except (KeyError, TypeError, ValueError):
        return fallback


@dataclass(frozen=True)
class Job:
    name: str
    label: object  # lazy string, for the page
    work: Callable[..., Details]  # (echo, **options) -> what it did; raises when the job fails


@dataclass(frozen=True)
class Outcome:
    """What :func:`run` did: ``ran`` (then ``ok`` and ``message``), or not, because
    another process holds the lease (``held_by``) or the slot is served already."""

    name: str
    ran: bool
    ok: bool | None = None
    message: str = ""
    held_by: str | None = None
    details: Details | None = None


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
                actor_name: str = "scheduler", in_child: bool = True) -> Details:
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
    return {"code": "backup_made", "file": path.name, "mb": round(path.stat().st_size / 1e6, 1),
            "rotated": len(rotated)}


def _audit_backup(path: Path, manifest: dict, actor_id: int | None, actor_name: str) -> None:
    actor = db.session.get(User, actor_id) if actor_id else None
    audit.record("backup.create", actor, actor_name=None if actor else actor_name, file=path.name,
                 size=path.stat().st_size, database=manifest["database"],
                 schema_revision=manifest["schema_revision"])
    db.session.commit()


def sweep_pool(echo: Echo) -> Details:
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
    return {"code": "pool_recycled", "count": len(done)}


def tidy_search_index(echo: Echo) -> Details:
    """Apply what waits in the backlog (which also deletes replaced index files),
    then compare the index with the database and repair what differs; an index the
    day's saves have worn (see search.wear) is then written anew. A rebuild runs in a
    process of its own at a lower priority: this job runs in a serving worker."""
    from services import search

    search.drain()
    report = search.check()
    if report.unavailable:
        log.warning("search index unavailable (%s): rebuilding", report.unavailable)
        built = search.rebuild_in_child()
        return {"code": "index_rebuilt", "customers": built.customers, "notes": built.notes}
    details: Details = {"code": "index_ok"}
    if not report.ok or report.backlog:
        queued = search.fix(report)
        waiting = search.check().backlog
        echo(f"Repaired {queued} index entries" + (f"; {waiting} changes still wait" if waiting else "") + ".")
        details = {"code": "index_repaired", "count": queued, "waiting": waiting}
    wear = search.wear()
    if any(w.worn for w in wear.values()):
        replaced = sum(w.replaced for w in wear.values())
        try:
            built = search.rebuild_in_child()
        except search.RebuildRunning:  # another process is writing it anew already
            echo("The index is worn; another process is rebuilding it now.")
            return details
        echo(f"The index was written anew, without {replaced} replaced entries: "
             f"{built.customers} customers, {built.notes} notes, in {built.seconds:.0f} s.")
        return {"code": "index_compacted", "replaced": replaced, "customers": built.customers, "notes": built.notes}
    if details["code"] == "index_ok":
        echo("The index matches the database.")
    return details


def prune_throttle(echo: Echo) -> Details:
    """Delete sign-in throttle rows that hold nothing back any more."""
    from services import login_throttle

    pruned = login_throttle.prune_login_throttle(utcnow(), login_throttle.policy_from_config(current_app.config))
    db.session.commit()
    echo(f"Pruned {pruned} sign-in throttle rows.")
    return {"code": "throttle_pruned", "count": pruned}


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
    ok, details = False, {"code": "failed", "error": "interrupted"}
    try:
        with leases.heartbeat(name, holder):
            details = JOBS[name].work(echo, **options)
            db.session.commit()
            ok = True
    except Exception as failed:  # recorded for the page, the banner and the caller
        db.session.rollback()
        log.exception("nightly job %s failed", name)
        details = {"code": "failed", "error": str(failed) or type(failed).__name__}
    finally:
        if not ok:
            db.session.rollback()
        message = _message(details)
        details = details if isinstance(details, dict) else None
        leases.finish(name, holder, ok=ok, message=message, slot=slot, details=details)
    return Outcome(name, True, ok, message, details=details)


def _message(details: Details | str) -> str:
    """The English words of a run's details, for logs and scripts (pages show the
    details in the reader's language); a failure's is its error."""
    if not isinstance(details, dict):
        return str(details)
    if details.get("code") == "failed":
        return str(details.get("error", ""))
    with force_locale("en"):
        return detail_text(details)


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
