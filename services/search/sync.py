"""Keeping the index in step with the database (S4).

A change to a customer or note writes a row to ``search_backlog`` in the same
transaction (found by a flush hook, or marked by the services that change rows with
bulk statements). After the commit, the request applies the backlog to the index
under the index's write lock, then deletes the rows it applied. So the index changes
only after a successful commit, and a change whose index write could not happen
(lock held too long, process killed) stays in the backlog for the next writer,
``flask search check --fix``, or the nightly pool sweep.

A save writes its change as a new small segment and never merges: merging small
segments is Whoosh's slow part (tens to hundreds of milliseconds, growing with the
segments). Once MERGE_AFTER segments have piled up in an index, a background thread
of the process copies the small ones into one new segment without holding the write
lock, so saves go on meanwhile; it takes the lock only to swap the copy in, carrying
over the deletions saves made during the copy.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass

from flask import current_app, has_request_context
from sqlalchemy import delete, event, inspect, or_, select, update
from sqlalchemy.orm import Session
from whoosh import index

from extensions import db, reading_only
from models import Customer, CustomerNote, CustomerPhone, SearchBacklog
from services.search import build, documents, store
from services.search import whoosh_internals as internals
from services.search.backlog import (
    CUSTOMER, CUSTOMER_NOTES, NOTE, BulkWriters, Changes, chunks, reading_session, record)

log = logging.getLogger(__name__)

BATCH = 2000
# A bulk write (deferred) applies its backlog as one new segment per index for up to
# BULK_ROWS backlog rows (read BATCH at a time), with a writer given BULK_LIMIT_MB of
# memory, as a rebuild's: Whoosh's cost is per distinct term and segment, so 25
# segments of 2,000 imported customers cost about three times one of 50,000.
BULK_ROWS = 250_000
BULK_LIMIT_MB = 256
MERGE_AFTER = 8  # segments in an index (the built one included) before a background merge
MERGE_FANIN = 4  # segments of one size tier merged into one (see merge_point)
MERGE_MAX_DOCUMENTS = 10_000  # the most documents a background merge copies
MERGE_LOCK_TIMEOUT = 60.0  # how long a background merge waits for the write lock
# A bulk write naming this many customers or more has half of them indexed in a second
# process (a fresh interpreter: ~2 s to start), waited for ASIDE_TIMEOUT s plus 10 ms a customer.
ASIDE_MIN = 10_000
ASIDE_TIMEOUT = 120.0


# ---- recording changes --------------------------------------------------------------

def mark(kind: str, ids, session=None) -> None:
    """Record, in the current transaction, that the index entries of ``ids`` (of
    ``kind``) must be redone. Services call this after bulk UPDATE/DELETE statements,
    which the flush hook does not see."""
    session = session or db.session
    record(session, session.connection(), {(kind, int(i)) for i in ids})


def mark_customers(ids, *, with_notes: bool = False) -> None:
    """Record that these customers changed (and, ``with_notes``, that their notes
    must follow: a new owner, archived, notes moved by a merge)."""
    ids = list(ids)
    mark(CUSTOMER, ids)
    if with_notes:
        mark(CUSTOMER_NOTES, ids)


def _changed(obj, attribute: str) -> bool:
    return inspect(obj).attrs[attribute].history.has_changes()


def _keys_of(session) -> set[tuple[str, int]]:
    """The backlog keys of what a flush wrote. A new customer's notes are not
    redone: it has none in the index (notes saved with it are keys of their own). A
    customer changed in nothing its document holds (its stage, importance, pool
    clock) is not redone either: the same document written again cost a write of the
    customers index, an entry replaced (see build.Wear), and every process a reopen
    of its customer searchers."""
    keys = set()
    new, deleted = session.new, session.deleted
    for obj in list(new) + list(session.dirty) + list(deleted):
        if isinstance(obj, Customer) and obj.id is not None:
            if obj in new:
                keys.add((CUSTOMER, obj.id))
                continue
            if obj in deleted or any(_changed(obj, name) for name in documents.CUSTOMER_INDEXED):
                keys.add((CUSTOMER, obj.id))
            if obj in deleted or _changed(obj, "owner_id") or _changed(obj, "archived_at"):
                keys.add((CUSTOMER_NOTES, obj.id))
        elif isinstance(obj, CustomerPhone) and obj.customer_id is not None:
            keys.add((CUSTOMER, obj.customer_id))
            if _changed(obj, "customer_id"):
                old = inspect(obj).attrs["customer_id"].history.deleted
                keys.update((CUSTOMER, cid) for cid in old if cid)
        elif isinstance(obj, CustomerNote) and obj.id is not None:
            keys.add((NOTE, obj.id))
    return keys


def _after_flush(session, _flush_context) -> None:
    keys = _keys_of(session)
    if keys:
        record(session, session.connection(), keys)


def _after_commit(session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint was released; the transaction goes on
    session.info.pop("search_written", None)
    if session.info.get("search_deferred"):
        return  # a bulk write: applied once at its end (see deferred)
    if session.info.pop("search_pending", False):
        try:
            drain()
        except Exception:  # the backlog keeps the change; never fail a saved request
            log.exception("search index update failed; the change stays in the backlog")


def _after_rollback(session, previous) -> None:
    session.info.pop("search_written", None)  # rows a savepoint wrote are gone: record them again
    if not previous.nested:  # after a savepoint's rollback, what the transaction wrote before stays
        session.info.pop("search_pending", None)


@contextmanager
def deferred(every: int | None = None):
    """A bulk write (an import committing chunk after chunk): what its commits
    change is applied to the index once at the end of the block, in large segments,
    instead of after each commit. The changes wait in the backlog meanwhile, so
    nothing is lost if the process stops. Yields a function to call after a commit
    to apply the backlog now when ``every`` or more commits have waited."""
    session = db.session()
    session.info["search_deferred"] = True
    waiting = 0

    def committed() -> None:
        nonlocal waiting
        waiting += 1
        if every and waiting >= every and session.info.pop("search_pending", False):
            waiting = 0
            _drain_logged(bulk=True)

    try:
        yield committed
    finally:
        session.info.pop("search_deferred", None)
        if session.info.pop("search_pending", False) or waiting:
            _drain_logged(bulk=True)


def _drain_logged(*, bulk: bool = False) -> None:
    try:
        drain(bulk=bulk)
    except Exception:  # the backlog keeps the change; never fail a saved request
        log.exception("search index update failed; the change stays in the backlog")


_installed = False


def install() -> None:
    """Listen on every session (once per process)."""
    global _installed
    if _installed:
        return
    event.listen(Session, "after_flush", _after_flush)
    event.listen(Session, "after_commit", _after_commit)
    event.listen(Session, "after_soft_rollback", _after_rollback)
    _installed = True


# ---- applying the backlog -------------------------------------------------------------

def drain(timeout: float | None = None, *, batch: int = BATCH, bulk: bool = False) -> int | None:
    """Apply the backlog to the live index, a segment per ``batch`` rows (``bulk``:
    per BULK_ROWS rows). Returns how many rows were applied, or None when another
    writer held the lock past ``timeout`` seconds (default SEARCH_LOCK_TIMEOUT): the
    rows stay for the next writer."""
    timeout = current_app.config["SEARCH_LOCK_TIMEOUT"] if timeout is None else timeout
    if not has_request_context() and store.rebuild_wanted():
        start_rebuild()  # what a request asked for: the nightly job, or any command that saves
    try:
        with store.locked("write.lock", timeout):
            return _drain_locked(batch, bulk=bulk)
    except store.LockTimeout:
        log.warning("search index busy for %ss; changes stay in the backlog", timeout)
        return None


def _drain_locked(batch: int = BATCH, *, bulk: bool = False) -> int:
    generation = store.current_generation()
    if generation is None or not _readable(generation):
        start_rebuild(inside_write_lock=True)
        return 0
    rebuilding = store.rebuild_running()
    applied, merge_wanted, more = 0, False, True
    aside = _customers_aside(generation) if bulk else None
    try:
        while more:
            ids: list[int] = []
            # A save: one segment per ``batch`` rows. A bulk write: one segment per index
            # for up to BULK_ROWS rows, read ``batch`` rows at a time.
            with BulkWriters(generation, limitmb=BULK_LIMIT_MB if bulk else None) as writers:
                while True:
                    with reading_only(), reading_session() as session:
                        rows = session.execute(
                            select(SearchBacklog.id, SearchBacklog.kind, SearchBacklog.ref_id)
                            .where(SearchBacklog.applied_live.is_(False), SearchBacklog.id > (ids[-1] if ids else 0))
                            .order_by(SearchBacklog.id).limit(batch)
                        ).all()
                        changes = _changes(session, rows, aside)
                    writers.write(changes)
                    ids += [row.id for row in rows]
                    more = len(rows) == batch
                    if not more or not bulk or len(ids) >= BULK_ROWS:
                        break
            sizes = writers.sizes
            if aside is not None:  # its rows are among the first BULK_ROWS: all applied by now
                sizes = sizes + _take_aside(aside, generation, writers.added[store.CUSTOMERS])
                aside = None
            if not ids:
                break
            merge_wanted = merge_wanted or any(merge_point(counts) for counts in sizes)
            _settle(ids, keep=rebuilding)
            applied += len(ids)
    finally:
        if aside is not None:
            aside.process.stop()
        if bulk:
            shutil.rmtree(_aside_folder(generation), ignore_errors=True)
    if merge_wanted:  # after the writing: a merge meanwhile would wait for the write lock
        start_merge()
    if not rebuilding:
        if not applied:  # else _settle forgot them, in its transaction
            _forget_leftovers()
        store.remove_replaced_generations()
    return applied


# ---- a bulk write's customers, half of them indexed in a second process ----------------

@dataclass
class _Aside:
    """Customers a second process indexes during a bulk write: their ids, and the
    backlog rows (read at the start) that this process only deletes the old entries of."""

    process: build.Aside
    rows: set[int]


def _aside_folder(generation: str) -> str:
    return os.path.join(store.root(), generation, "adding-customers")


def _customers_aside(generation: str) -> _Aside | None:
    """When the first BULK_ROWS rows of the backlog name ASIDE_MIN customers or more,
    start indexing the later half of them in a second process (an import of many
    rows: two cores index it, not one). Only rows among the first BULK_ROWS, which
    the first bulk segment takes: a later one would delete what the second process
    added."""
    with reading_only(), reading_session() as session:
        rows = session.execute(
            select(SearchBacklog.id, SearchBacklog.kind, SearchBacklog.ref_id)
            .where(SearchBacklog.applied_live.is_(False)).order_by(SearchBacklog.id).limit(BULK_ROWS)).all()
    customers = sorted({row.ref_id for row in rows if row.kind == CUSTOMER})
    if len(customers) < ASIDE_MIN:
        return None
    apart = set(customers[len(customers) // 2 :])
    try:
        process = build.start_customers_aside(sorted(apart), _aside_folder(generation))
    except Exception:  # cannot start a process (limits): this one does it all
        log.exception("search: could not start a second process; one process indexes everything")
        return None
    return _Aside(process, {row.id for row in rows if row.kind == CUSTOMER and row.ref_id in apart})


def _changes(session, rows, aside: _Aside | None) -> Changes:
    """The Changes of backlog ``rows``; of the rows the second process indexes, only
    the deletion of their customers' old entries (unless another row names them)."""
    if aside is None:
        return Changes.load(session, {(row.kind, row.ref_id) for row in rows})
    keys = {(row.kind, row.ref_id) for row in rows if row.id not in aside.rows}
    changes = Changes.load(session, keys)
    apart = {row.ref_id for row in rows if row.id in aside.rows} - {i for kind, i in keys if kind == CUSTOMER}
    changes.delete[store.CUSTOMERS].update(("key", documents.customer_key(i)) for i in apart)
    return changes


def _take_aside(aside: _Aside, generation: str, added: set[str]) -> list[list[int]]:
    """Add the second process's segment to the customers index (this process's own
    segment is committed already: its writing overlapped the other's), dropping the
    customers this process ``added`` itself; if the other process failed, index its
    customers here instead. Returns the new segment sizes (see BulkWriters.sizes)."""
    timeout = ASIDE_TIMEOUT + len(aside.process.ids) / 100
    try:
        keys = aside.process.keys(timeout)
    except RuntimeError:
        log.exception("search: the second process failed; its customers are indexed here")
        with reading_only(), reading_session() as session:
            changes = Changes.load(session, {(CUSTOMER, i) for i in aside.process.ids})
        with BulkWriters(generation, limitmb=BULK_LIMIT_MB) as writers:
            writers.write(changes)
        return writers.sizes
    with BulkWriters(generation) as writers:
        writers.add_segment(store.CUSTOMERS, aside.process.folder, keys, drop=added)
    return writers.sizes


# ---- merging small segments, in the background -----------------------------------------

_merging = threading.Lock()  # one background merge per process at a time


def start_merge() -> None:
    """Merge the live indexes' small segments in a background thread, unless this
    process is merging already."""
    if not _merging.acquire(blocking=False):
        return
    try:
        _in_background("search-merge", merge_small, then=_merging.release)
    except BaseException:
        _merging.release()
        raise


_background: set[threading.Thread] = set()  # running, started by _in_background
_background_lock = threading.Lock()
# A CLI command or a worker that ends lets a merge or rebuild finish first, for a
# while: a merge cut off only leaves files the next commit deletes, a rebuild a
# generation marked as being built, which the next rebuild removes.
atexit.register(lambda: wait_for_background(10))


def _in_background(name: str, work, *, then=None) -> None:
    """Run ``work()`` in a daemon thread, in this app's context; a failure is
    logged. ``then()`` runs afterwards, whatever happened."""
    app = current_app._get_current_object()

    def run():
        try:
            with app.app_context():
                work()
        except Exception:
            log.exception("%s failed", name)
        finally:
            if then is not None:
                then()
            with _background_lock:
                _background.discard(thread)

    thread = threading.Thread(target=run, name=name, daemon=True)
    with _background_lock:
        _background.add(thread)
    thread.start()


def wait_for_background(timeout: float | None = None) -> bool:
    """Whether no background work (a merge, a rebuild) runs in this process, after
    waiting up to ``timeout`` seconds for it to end: for tests, the benchmark and
    shutdown."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        with _background_lock:
            running = list(_background)
        if not running:
            return True
        for thread in running:  # one may start another (a rebuild's drain, a merge)
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                return False


def merge_point(sizes: list[int]) -> int:
    """How many of the smallest segments (given their document counts) to merge into
    one, once there are MERGE_AFTER segments; 0: none. Segments fall in tiers by size
    (1–3 documents, 4–15, 16–63, …: powers of MERGE_FANIN), and the smallest tier
    holding MERGE_FANIN segments is merged, with the fewer smaller ones below it, into
    one of the next tier up: each document is copied again about once per tier, as a
    counter carries. Whoosh's MERGE_SMALL rule (a Fibonacci bound), used before,
    copied each document of one-document saves about 7.8 times in the first 1,000
    saves and 9.5 times in 20,000; this one 3.7 and 5.8 times, in a third more
    merges, with about one segment more on average (8 and 12). Whoosh's rule also
    left segments of similar size unmerged for good ([1, 3, 40, 40, 40, 40, 40]).
    Segments of more than MERGE_MAX_DOCUMENTS together (the built one, a bulk
    import's) are left as they are: a merge runs in a web worker's thread.
    bench/merges.py measures what the writes and searches cost."""
    if len(sizes) < MERGE_AFTER:
        return 0
    ordered = sorted(sizes)
    tiers = [_tier(size) for size in ordered]
    total = 0
    for count, (size, tier) in enumerate(zip(ordered, tiers), 1):
        total += size
        if total > MERGE_MAX_DOCUMENTS:
            return 0
        if tiers.count(tier) >= MERGE_FANIN and (count == len(tiers) or tiers[count] != tier):
            return count
    return 0


def _tier(size: int) -> int:
    tier = 0
    while size >= MERGE_FANIN:
        size //= MERGE_FANIN
        tier += 1
    return tier


def merge_small(timeout: float | None = None) -> None:
    """Merge the small segments of each live index (see merge_point), again and
    again while saves pile up more. One process merges at a time (``merge.lock``);
    another that wants to merge meanwhile waits, then merges what is left, or after
    ``timeout`` seconds (default MERGE_LOCK_TIMEOUT) leaves it to the one merging.
    The copying holds no other lock: saves go on. Swapping a copy in waits up to
    ``timeout`` for the write lock, else raises LockTimeout, changing nothing."""
    timeout = MERGE_LOCK_TIMEOUT if timeout is None else timeout
    try:
        with store.locked("merge.lock", timeout):
            while _merge_all(timeout):
                pass
    except store.LockTimeout as busy:
        if busy.args != ("merge.lock",):
            raise
        log.info("search: another process has been merging for %ss; left to it", timeout)


def _merge_all(timeout: float) -> bool:
    generation = store.current_generation()
    if generation is None or not _readable(generation):
        return False
    merged = [_merge(which, generation, timeout) for which in (store.CUSTOMERS, store.NOTES)]  # both, always
    return any(merged)


def _merge(which: str, generation: str, timeout: float) -> bool:
    """Merge the small segments of one index, if it has a merge point. Returns
    whether it did."""
    source = store.open_index(which, generation)
    schema, segments = internals.read_segments(source)  # once: see read_segments
    ordered = sorted(segments, key=internals.segment_size)
    chosen = ordered[: merge_point([internals.segment_size(segment) for segment in ordered])]
    if not chosen:
        return False
    folder = os.path.join(store.root(), generation, f"merging-{which}")
    shutil.rmtree(folder, ignore_errors=True)  # left by a merge whose process died
    try:
        merged, docmaps = _copy(source.storage, schema, which, chosen, folder)
        with store.locked("write.lock", timeout):
            return _swap(which, generation, chosen, merged, docmaps, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _copy(storage, schema, which: str, chosen: list, folder: str):
    """Copy the live documents of the ``chosen`` segments (of the index in
    ``storage``, of ``schema``) into one new segment, written in an index of its own in ``folder`` (files in the
    live index's folder that no TOC names would be deleted by the next save). Returns
    the new segment and, for each segment copied, where each of its documents went."""
    os.makedirs(folder)
    writer = store.writer(index.create_in(folder, store.SCHEMAS[which]()))
    docmaps: dict[str, dict[int, int]] = {}
    try:
        for segment in chosen:
            docmaps[internals.segment_id(segment)] = internals.copy_live_documents(storage, schema, segment, writer)
    except BaseException:
        store.discard(writer)
        raise
    store.commit(writer, merge=False)
    return internals.only_segment(index.open_dir(folder)), docmaps


def _swap(which: str, generation: str, chosen: list, merged, docmaps, folder: str) -> bool:
    """Under the write lock: put the ``merged`` segment in place of the ``chosen``
    ones, deleting in it what saves deleted from them since they were copied."""
    if store.current_generation() != generation:
        return False  # a rebuild replaced the index meanwhile
    ix = store.open_index(which, generation)
    writer = store.writer(ix)
    try:
        if not internals.carry_deletions(writer, chosen, merged, docmaps):
            log.info("search %s segments changed during a merge; it is dropped", which)
            store.discard(writer)
            return False
        store.move_segment(merged, folder, ix.storage.folder)
    except BaseException:
        store.discard(writer)
        raise
    store.commit(writer, mergetype=internals.replacing(docmaps.keys(), merged))
    store.tidy(ix)
    return True


def _settle(ids: list[int], *, keep: bool) -> None:
    """Rows applied: delete them, or — while a rebuild runs — mark them, for the
    rebuild to apply to the index it is building. When none runs, the same statement
    deletes the rows marked by one that ended without applying them (see
    _forget_leftovers): one transaction per save, not two more."""
    with reading_session() as session:
        for n, chunk in enumerate(chunks(ids, 500)):
            if keep:
                session.execute(update(SearchBacklog).where(SearchBacklog.id.in_(chunk)).values(applied_live=True))
            else:
                applied = SearchBacklog.id.in_(chunk)
                session.execute(delete(SearchBacklog).where(
                    or_(applied, SearchBacklog.applied_live.is_(True)) if n == 0 else applied))
        session.commit()


def _forget_leftovers() -> None:
    """Rows marked during a rebuild that ended without applying them (it was
    stopped): the live index has them already."""
    with reading_only(), reading_session() as session:
        leftover = session.scalar(select(SearchBacklog.id).where(SearchBacklog.applied_live.is_(True)).limit(1))
    if leftover is not None:
        with reading_session() as session:
            session.execute(delete(SearchBacklog).where(SearchBacklog.applied_live.is_(True)))
            session.commit()


_readable_generations: set[tuple[str, str]] = set()


def _readable(generation: str) -> bool:
    """Whether both indexes of ``generation`` open. Checked once per generation and
    process, not on every save: opening an index reads its files. (A generation
    damaged later fails its next write or search, which rebuilds it.)"""
    key = (store.root(), generation)
    if key in _readable_generations:
        return True
    try:
        for which in (store.CUSTOMERS, store.NOTES):
            store.open_index(which, generation).doc_count()
    except store.IndexUnavailable:
        return False
    _readable_generations.add(key)
    return True


def _intact(generation: str) -> bool:
    """Whether both indexes of ``generation`` open and every segment reads (its
    terms, its first document's stored fields)."""
    def read(searcher):
        for reader, _offset in searcher.reader().leaf_readers():
            next(iter(reader.all_terms()), None)
            if reader.doc_count_all():
                reader.stored_fields(0)

    try:
        for which in (store.CUSTOMERS, store.NOTES):
            with store.open_index(which, generation).searcher() as searcher:
                read(searcher)
    except store.IndexUnavailable:
        return False
    except Exception:  # a damaged file can fail in many ways
        store.release_leaked_files()
        return False
    return True


# ---- fixing what a check found ----------------------------------------------------

def fix(report: build.CheckReport) -> int:
    """Queue every difference in ``report`` for the index and apply them, with
    the rest of the backlog (rows left by a rebuild that could not delete them are
    applied once more and deleted). Returns how many entries were queued."""
    keys = {_backlog_key(key) for key in report.missing + report.stale + report.extra}
    with reading_session() as session:
        if keys:
            record(session, session.connection(), keys)
        # rows marked applied by a rebuild that did not end: apply them again
        session.execute(update(SearchBacklog).values(applied_live=False))
        session.commit()
    drain()
    return len(keys)


def _backlog_key(key: str) -> tuple[str, int]:
    return (CUSTOMER if key[0] == "c" else NOTE, int(key[1:]))


# ---- rebuilding a missing index ------------------------------------------------------

def record_count() -> int:
    with reading_only(), reading_session() as session:
        customers = session.scalar(select(db.func.count()).select_from(Customer))
        notes = session.scalar(select(db.func.count()).select_from(CustomerNote))
    return customers + notes


def rebuild_if_damaged() -> bool:
    """Start rebuilding the live index (start_rebuild) if it is missing or damaged,
    not merely because a search failed: that can be a passing state, and a rebuild
    at full size costs minutes of a worker's time. Returns whether it started one."""
    generation = store.current_generation()
    if generation is not None and _intact(generation):
        return False
    start_rebuild()
    return True


def start_rebuild(*, inside_write_lock: bool = False) -> None:
    """Rebuild a missing or unreadable index, at once: when the database is small
    (SEARCH_INLINE_REBUILD_MAX records or fewer), or outside a web request (a CLI
    command, the nightly ``pool recycle``). A request that finds a larger one
    missing only records that a rebuild is wanted (store.want_rebuild): at full size
    a rebuild takes minutes of a worker's time. ``flask search rebuild`` or the next
    command that saves (the nightly job) runs it; search answers from the database
    meanwhile."""
    if store.rebuild_running():
        return
    if has_request_context() and record_count() > current_app.config["SEARCH_INLINE_REBUILD_MAX"]:
        if not store.rebuild_wanted():
            log.warning("search index missing or unreadable: rebuild wanted (flask search rebuild, "
                        "or the nightly pool recycle); search answers from the database meanwhile")
            store.want_rebuild()
        return
    try:
        build.rebuild(inside_write_lock=inside_write_lock)
    except build.RebuildRunning:
        pass
