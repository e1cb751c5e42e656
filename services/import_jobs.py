"""The customer import's two jobs, checking a file and importing it (D3), run in the
request for small files and in a background thread of the process for large ones
(more than IMPORT_BACKGROUND_ROWS rows), so that they go on when the browser is
closed; the batch row carries the status and progress the page polls.

Like a CLI command, a job commits: once per chunk of imports.CHUNK rows, so that
each chunk is one transaction and one search-index update (the backlog is applied
after each commit), and memory holds one chunk's objects at a time.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from itertools import islice
from typing import cast

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import update
from sqlalchemy.engine import CursorResult

from extensions import db, refresh_growing_statistics
from models import Customer, CustomerPhone, ImportBatch, ImportStatus, User, utcnow
from services import audit, customers, imports, leases, policy, pool, search
from services.errors import DomainError
from services.import_apply import TagResolver, action_for, classify, owner_for, write_chunk
from services.import_rows import Lookups, check_row

log = logging.getLogger(__name__)

CHECK, IMPORT = "check", "import"
# Chunks committed between two updates of the search index; None: once, at the end.
# 50,000 rows from a CSV: one update at the end took 189 s; one every 20 chunks, many
# times that (each update writes segments the next must look through, and merges pile up).
INDEX_EVERY: int | None = None
ANALYZE_AFTER = 1000  # customers created before the first refresh of the planner's statistics (PostgreSQL)
_threads: dict[int, threading.Thread] = {}


def _chunks(rows, size: int):
    rows = iter(rows)
    while chunk := list(islice(rows, size)):
        yield chunk


def _checked_chunks(batch: ImportBatch, lookups: Lookups, skip: int = 0):
    """The file's rows, checked and classified, a chunk at a time; the first
    ``skip`` rows (imported before the batch was interrupted) only count towards
    the duplicates within the file."""
    mapping, seen = batch.options["mapping"], set[tuple]()
    with imports.open_rows(batch) as sheet:
        for chunk in _chunks(sheet.rows, imports.CHUNK):
            checked = [check_row(number, cells, mapping, lookups) for number, cells in chunk]
            done, checked, skip = checked[:skip], checked[skip:], max(0, skip - len(checked))
            for row in done:
                if row.data is not None:
                    seen.update(customers.match_keys(row.data))
            if checked:
                yield classify(checked, seen)


def check_file(batch: ImportBatch) -> None:
    """Check every row (the preview and the dry run): counts by status, the first
    rows and every rejected row in the report, owners over their limit."""
    counts: Counter[str] = Counter()
    owners: Counter[int] = Counter()
    preview: list = []
    problems: list = []
    duplicates: list = []
    options = batch.options
    batch.status, batch.progress = ImportStatus.CHECKING, 0
    db.session.commit()
    for classified in _checked_chunks(batch, Lookups()):
        for row, status, matches in classified:
            counts[status] += 1
            if len(preview) < imports.PREVIEW_ROWS:
                preview.append(imports.row_record(row, status, matches))
            if status == "invalid":
                problems.append(imports.row_record(row, status, matches))
            elif status != "new" and len(duplicates) < imports.CHOICE_ROWS:
                duplicates.append({**imports.row_record(row, status, matches),
                                   "owner": owner_for(row, options["owner"])})
            if status != "invalid" and action_for(status, options["duplicates"]) == "create" and (
                    owner_id := owner_for(row, options["owner"])):
                owners[owner_id] += 1
        batch.progress += len(classified)
        db.session.commit()
    imports.write_report(batch, preview, problems, duplicates)
    batch.counts = {"rows": sum(counts.values()), **{k: counts[k] for k in
                    ("new", "duplicate", "file_duplicate", "invalid")}, "over_limit": _over_limit(owners),
                    "owners": {str(owner_id): n for owner_id, n in owners.items()}}
    batch.status = ImportStatus.READY
    db.session.commit()


def _over_limit(owners: Counter) -> list[dict]:
    """Owners who would own more customers than their limit (pool.max_owned or
    their own) after the import."""
    over = []
    for owner_id, adding in sorted(owners.items()):
        if adding <= 0:
            continue
        user = db.session.get_one(User, owner_id)
        owned, limit = pool.owned_count(owner_id), pool.owner_limit(user)
        if owned + adding > limit:
            over.append({"owner_id": owner_id, "name": user.display_name, "owned": owned,
                         "adding": adding, "limit": limit})
    return over


def _owners_with_choices(batch: ImportBatch) -> Counter[int]:
    """How many customers each owner gets, with the choices per duplicate row."""
    adding = Counter({int(k): n for k, n in batch.counts.get("owners", {}).items()})
    default, per_row = batch.options["duplicates"], batch.options.get("per_row", {})
    for record in imports.read_report(batch)["duplicates"]:
        before = action_for(record["status"], default) == "create"
        after = action_for(record["status"], per_row.get(str(record["number"]), default)) == "create"
        if record.get("owner") and before != after:
            adding[record["owner"]] += 1 if after else -1
    return adding


def confirm(actor: User | None, batch: ImportBatch, per_row: dict | None = None) -> None:
    """Mark a checked batch for importing, with ``per_row`` choices for duplicate
    rows of the preview ({row number: "skip", "fill" or "create"}; others take the
    batch's choice). Raises DomainError when it is not checked, or when owners
    would go over their limit without a manager's override."""
    if batch.status != ImportStatus.READY:
        raise DomainError(_l("Check the file first."))
    if per_row is not None:
        batch.options = {**batch.options, "per_row": imports.clean_per_row(batch, per_row)}
        if batch.options["per_row"]:
            batch.counts = {**batch.counts, "over_limit": _over_limit(_owners_with_choices(batch))}
    if batch.counts.get("over_limit") and not batch.options.get("override_limit"):
        raise DomainError(_l("Some owners would own more customers than allowed. Choose the pool, "
                             "another owner, or override the limit."), "owner")
    batch.status, batch.progress, batch.heartbeat_at = ImportStatus.IMPORTING, 0, utcnow()
    db.session.flush()


def resume(actor: User | None, batch: ImportBatch) -> None:
    """Mark an interrupted import for going on after the rows it had imported, with
    an audit line of its own (who, the file, the rows done before). Raises
    DomainError when the batch is not an interrupted import."""
    if batch.status != ImportStatus.INTERRUPTED:
        raise DomainError(_l("Only an interrupted import can be resumed."))
    batch.status, batch.heartbeat_at, batch.finished_at, batch.error = ImportStatus.IMPORTING, utcnow(), None, ""
    audit.record("customer.import_resume", actor, actor_name=None if actor else "cli", target=batch,
                 file=batch.file_name, rows_done=batch.progress, rows=batch.total_rows)
    db.session.flush()


def import_file(actor: User | None, batch: ImportBatch) -> None:
    """Import the rows of a confirmed batch, a chunk per transaction; the search
    index takes them in one go at the end (see INDEX_EVERY), and is current when the
    batch says done. A resumed batch goes on after the ``progress`` rows done."""
    totals: Counter[str] = Counter({k: batch.counts.get(k, 0) for k in ("created", "filled", "skipped", "rejected")})
    resolver = TagResolver(actor, lookups := Lookups(), create=batch.options["tags"] == "create")
    analyzed_at = 0  # rows created when the tables' statistics were last refreshed
    with search.deferred(every=INDEX_EVERY) as committed:
        for classified in _checked_chunks(batch, lookups, skip=batch.progress):
            totals.update(write_chunk(actor, batch, classified, resolver))
            batch.progress += len(classified)
            batch.counts = {**batch.counts, **totals, "imported": totals["created"] + totals["filled"]}
            _still_running(batch)
            if totals["created"] >= 2 * analyzed_at + ANALYZE_AFTER:  # 1,000, 3,000, 7,000 … created
                refresh_growing_statistics(Customer, CustomerPhone)
                analyzed_at = totals["created"]
            db.session.commit()
            committed()
    batch.status, batch.finished_at = ImportStatus.DONE, utcnow()
    imports.audit_import(actor, batch)
    db.session.commit()


class Interrupted(Exception):
    """The batch was declared interrupted while this process still ran it."""


def _still_running(batch: ImportBatch) -> None:
    """In the chunk's transaction: the heartbeat, only while the batch is still
    importing. Raises Interrupted when another process declared it interrupted
    (its heartbeat had stopped for too long), so that the chunk is not written."""
    beat = cast(CursorResult, db.session.execute(update(ImportBatch).where(
        ImportBatch.id == batch.id, ImportBatch.status == ImportStatus.IMPORTING)
        .values(heartbeat_at=utcnow()).execution_options(synchronize_session=False)))
    if beat.rowcount != 1:
        raise Interrupted


def _beat(engine, batch_id: int) -> bool:
    """Write the batch's heartbeat on a connection of its own; False when the batch
    no longer runs."""
    with engine.begin() as connection:
        return connection.execute(update(ImportBatch).where(
            ImportBatch.id == batch_id, ImportBatch.status.in_(ImportStatus.RUNNING))
            .values(heartbeat_at=utcnow())).rowcount == 1


def heartbeat(batch_id: int, every: float | None = None):
    """Write the batch's heartbeat now and every IMPORT_HEARTBEAT_SECONDS in a
    thread while the block runs (a context manager, as for the nightly jobs'
    leases), so that a batch whose process died shows as interrupted
    (imports.settle_interrupted); the beats stop once the batch no longer runs."""
    engine = db.engine
    _beat(engine, batch_id)
    return leases.beating(every or current_app.config["IMPORT_HEARTBEAT_SECONDS"],
                          lambda: _beat(engine, batch_id), name=f"import-heartbeat-{batch_id}")


def run(step: str, batch_id: int, actor_id: int | None) -> None:
    """Run ``step`` on the batch; a failure marks it failed with a message (what
    earlier chunks imported stays, and can be undone)."""
    try:
        batch = db.session.get_one(ImportBatch, batch_id)
        actor = db.session.get(User, actor_id) if actor_id else None
        db.session.commit()  # the heartbeat writes on a connection of its own
        with heartbeat(batch_id):
            (check_file if step == CHECK else lambda b: import_file(actor, b))(batch)
    except Interrupted:
        db.session.rollback()
        log.warning("import %s was declared interrupted while it ran; stopped", batch_id)
    except Exception as error:
        db.session.rollback()
        if not isinstance(error, DomainError):
            log.exception("import %s of batch %s failed", step, batch_id)
        batch = db.session.get_one(ImportBatch, batch_id)
        batch.status, batch.finished_at = ImportStatus.FAILED, utcnow()
        batch.error = error.message if isinstance(error, DomainError) else str(
            _l("The import stopped on an unexpected error (it is in the server log)."))
        db.session.commit()


def start(step: str, batch: ImportBatch, actor: User | None) -> bool:
    """Run ``step`` now, or in a background thread for a large file. The caller has
    committed. Returns True when it runs in the background."""
    actor_id, batch_id = actor.id if actor else None, batch.id
    if batch.total_rows <= current_app.config["IMPORT_BACKGROUND_ROWS"]:
        run(step, batch_id, actor_id)
        return False
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    db.session.commit()  # end the read transaction: on SQLite it would hold the lock the job needs

    def work():
        with app.app_context():
            try:
                run(step, batch_id, actor_id)
            finally:
                db.session.remove()

    thread = threading.Thread(target=work, name=f"import-{batch_id}", daemon=True)
    _threads[batch_id] = thread
    thread.start()
    return True


def wait(batch_id: int, timeout: float) -> bool:
    """Wait for a background job of the batch in this process; True when none runs."""
    thread = _threads.get(batch_id)
    if thread is not None:
        thread.join(timeout)
        if thread.is_alive():
            return False
        _threads.pop(batch_id, None)
    return True


def may_override(actor: User | None) -> bool:
    return policy.may(actor, "pool.assign")
