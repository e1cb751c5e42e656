"""Building the index from the database, and checking it against the database."""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import shutil
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import cast

from flask import current_app, has_request_context
from sqlalchemy import delete, func, select
from whoosh import index

from extensions import db, read_only_request, reading_only
from models import CustomerNote, SearchBacklog
from services.search import documents, store
from services.search import whoosh_internals as internals
from services.search.backlog import Changes, chunks, reading_session

log = logging.getLogger(__name__)


class RebuildRunning(Exception):
    """Another process is rebuilding the index now."""


@dataclass
class BuildReport:
    customers: int = 0
    notes: int = 0
    seconds: float = 0.0
    size_bytes: int = 0
    generation: str = ""


# Every save of a customer or note deletes its old entry and adds the new one in a
# small segment. Deleted entries stay in the built segment, listed in each table of
# contents that searchers and writers read, and the small segments grow through
# merges, until the index is written anew: at 100,000 customers / 500,000 notes under
# bench/load.py's office mix, 1 % of the entries replaced took the server from 20 to
# 29 ms of CPU per request, and a rebuild brought it back. The nightly housekeeping
# rebuilds an index worn past WORN_SHARE of its entries (at least WORN_MIN of them).
WORN_SHARE = 0.005
WORN_MIN = 500


@dataclass(frozen=True)
class Wear:
    """One live index's wear: ``replaced`` entries deleted but still in its segments,
    ``added`` entries in segments other than its largest (written since it was
    built, or merged from such), of ``entries`` in all (live and deleted)."""

    entries: int
    replaced: int
    added: int
    segments: int

    @property
    def worn(self) -> bool:
        return self.replaced + self.added >= max(WORN_MIN, WORN_SHARE * self.entries)


def wear() -> dict[str, Wear]:
    """The wear of each live index. Raises IndexUnavailable."""
    found = {}
    for which in (store.CUSTOMERS, store.NOTES):
        _schema, segments = internals.read_segments(store.open_index(which))
        sizes = [internals.segment_size(segment) for segment in segments]
        found[which] = Wear(entries=sum(sizes), replaced=sum(internals.segment_deleted(s) for s in segments),
                            added=sum(sizes) - max(sizes, default=0), segments=len(segments))
    return found


def rebuild(*, inside_write_lock: bool = False, procs: int | None = None, progress=None) -> BuildReport:
    """Build a fresh index beside the live one and swap it in. Search keeps
    answering from the old index meanwhile, and changes made during the build are
    applied to the new index before the swap. With ``procs`` 2 (the default in a
    single-threaded process, such as the CLI) the customers are indexed in a second
    process while this one indexes the notes. Raises RebuildRunning."""
    if procs is None:
        procs = 2 if threading.active_count() == 1 and not has_request_context() else 1
    started = time.monotonic()
    try:
        with store.locked("rebuild.lock", 0):
            return _rebuild_locked(inside_write_lock, procs, progress, started)
    except store.LockTimeout:
        raise RebuildRunning() from None


def _rebuild_locked(inside_write_lock, procs, progress, started) -> BuildReport:
    # Passing through the write lock orders this build after any writer that is
    # applying changes now: those changes were committed, so the reads below see them.
    store.remove_unfinished_builds()  # a build killed with its process left its folder
    with _write_lock(inside_write_lock):
        generation = store.new_generation()
        store.mark_building(generation, True)
    report = BuildReport(generation=generation)
    try:
        if procs > 1:
            helper = _in_child_process(_fill_customers, generation)
            report.notes = _fill_notes(generation, progress)
            report.customers = helper()
        else:
            report.customers = _fill_customers(generation, progress)
            report.notes = _fill_notes(generation, progress)
        with _write_lock(inside_write_lock):
            _catch_up(generation)
            store.mark_building(generation, False)
            store.publish(generation)
            store.rebuild_done()
    except BaseException:
        store.mark_building(generation, False)
        _remove(generation)
        raise
    report.seconds = time.monotonic() - started
    report.size_bytes = _size(os.path.join(store.root(), generation))
    return report


class _write_lock:
    def __init__(self, already_held: bool):
        self.context = None if already_held else store.locked("write.lock", None)

    def __enter__(self):
        if self.context:
            self.context.__enter__()

    def __exit__(self, *exc):
        if self.context:
            return self.context.__exit__(*exc)
        return False


def _fill_customers(generation: str, progress=None) -> int:
    ix = store.open_index(store.CUSTOMERS, generation)
    writer = store.writer(ix, limitmb=256)
    count = 0
    with reading_only(), reading_session() as session:
        for ids in documents.all_customer_ids(session):
            found, _missing = documents.customer_documents(session, ids)
            for document in found:
                writer.add_document(**document)
            count += len(found)
            if progress:
                progress("customers", count)
    store.commit(writer)
    store.tidy(ix, unread=True)
    return count


def _in_child_process(function, *args):
    """Run ``function(*args)`` in a forked process (with its own database
    connections); returns a function that waits for its result. Raises
    RuntimeError (when waited on) if the child failed."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)

    def child():
        db.engine.dispose(close=False)  # the parent's connections are not ours to use
        try:
            sender.send(("ok", function(*args)))
        except BaseException as error:  # reported to the parent, which raises
            sender.send(("error", repr(error)))

    process = context.Process(target=child, daemon=True)
    process.start()

    def result():
        status, value = receiver.recv() if receiver.poll(None) else ("error", "no answer")
        process.join()
        if status != "ok":
            raise RuntimeError(f"indexing in the second process failed: {value}")
        return value

    return result


class Aside:
    """Customers being indexed in a second process (start_customers_aside), as one
    segment in an index of its own in ``folder``."""

    def __init__(self, ids: list[int], folder: str):
        self.ids, self.folder = ids, folder
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: this process may run threads
        self._receiver, sender = context.Pipe(duplex=False)
        factory = current_app.extensions["search.app_factory"]
        self._process = context.Process(target=_index_customers_aside,
                                        args=(sender, factory, _portable_config(), folder, ids),
                                        name="search-aside", daemon=True)
        self._process.start()
        sender.close()

    def keys(self, timeout: float) -> list[str]:
        """The keys of the documents written, in document order, once the process
        has ended. Raises RuntimeError if it failed or did not answer in ``timeout``
        seconds (it is stopped then)."""
        try:
            answered = self._receiver.poll(timeout)
            status, value = self._receiver.recv() if answered else ("error", f"no answer in {timeout:.0f} s")
        except EOFError:
            status, value = "error", "it ended without answering"
        finally:
            self.stop()
        if status != "ok":
            raise RuntimeError(f"indexing customers in a second process failed: {value}")
        return list(value)

    def stop(self) -> None:
        if self._process.is_alive():
            self._process.terminate()
        self._process.join(10)
        self._receiver.close()


def start_customers_aside(ids: list[int], folder: str) -> Aside:
    """Start indexing the customers ``ids`` in a second process, so that a bulk
    write (an import) uses both cores: this process indexes the rest meanwhile.
    Raises RuntimeError when the app did not say how it was made (init_app's factory)."""
    if not current_app.extensions.get("search.app_factory"):
        raise RuntimeError("no app factory to start a second process with")
    shutil.rmtree(folder, ignore_errors=True)  # left by a process that died
    os.makedirs(folder)
    return Aside(ids, folder)


def _portable_config() -> dict:
    """This app's settings that a new process can be given (every one that pickles),
    with its instance folder: enough for create_app to make the same app."""
    config = {}
    for key, value in current_app.config.items():
        try:
            pickle.dumps(value)
        except Exception:
            continue
        config[key] = value
    config["INSTANCE_PATH"] = current_app.instance_path
    return config


def _index_customers_aside(sender, factory, config: dict, folder: str, ids: list[int]) -> None:
    """In the second process: the app ``factory(config)`` makes, the customers
    ``ids`` into a new index in ``folder``; sends ("ok", keys in document order) or
    ("error", what went wrong)."""
    try:
        with factory(config).app_context():
            writer = store.writer(index.create_in(folder, store.SCHEMAS[store.CUSTOMERS]()), limitmb=256)
            keys: list[str] = []
            try:
                with reading_only(), reading_session() as session:
                    for chunk in chunks(ids, 500):
                        found, _missing = documents.customer_documents(session, chunk)
                        for document in found:
                            writer.add_document(**document)
                            keys.append(document["key"])
            except BaseException:
                store.discard(writer)
                raise
            store.commit(writer, merge=False)
            db.engine.dispose()
        sender.send(("ok", keys))
    except BaseException as error:  # reported to the parent, which indexes them itself
        sender.send(("error", repr(error)))


NICENESS = 10  # a rebuild in a process of its own yields the cores to the serving ones
CHILD_TIMEOUT = 3600.0  # seconds; a full-size rebuild takes minutes


def rebuild_in_child() -> BuildReport:
    """:func:`rebuild` in a process of its own at a lower CPU priority, waited for:
    the nightly job runs in a thread of a serving worker, and a rebuild at full size
    (a minute or two) held that worker's interpreter meanwhile. In this process when
    the app did not say how it was made (init_app's factory). Raises RebuildRunning,
    or RuntimeError when the process failed or did not answer within CHILD_TIMEOUT
    seconds (it is stopped then; the next start removes what it had built)."""
    factory = current_app.extensions.get("search.app_factory")
    if not factory:
        return rebuild()
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: this process runs threads
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_rebuild_in_child, args=(sender, factory, _portable_config()),
                              name="search-rebuild", daemon=True)
    process.start()
    sender.close()
    answered = False
    try:
        answered = receiver.poll(CHILD_TIMEOUT)
        status, value = receiver.recv() if answered else ("error", f"no answer in {CHILD_TIMEOUT:.0f} s")
    except EOFError:
        status, value = "error", f"it ended without answering (exit status {process.exitcode})"
    finally:
        if not answered and process.is_alive():
            process.terminate()
        process.join(30)
        receiver.close()
    if status == "running":
        raise RebuildRunning()
    if status != "ok":
        raise RuntimeError(f"rebuilding the index in a process of its own failed: {value}")
    return BuildReport(**cast(dict, value))  # its fields, as _rebuild_in_child sent them


def _rebuild_in_child(sender, factory, config: dict) -> None:
    """In the child: the app ``factory(config)`` makes, rebuilt on this one core (a
    daemon process may start no other); sends ("ok", the BuildReport's fields),
    ("running", None) or ("error", what went wrong)."""
    try:
        os.nice(NICENESS)
    except OSError:
        pass
    try:
        with factory(config).app_context():
            built = rebuild(procs=1)
            db.engine.dispose()
        sender.send(("ok", asdict(built)))
    except RebuildRunning:
        sender.send(("running", None))
    except BaseException as error:
        sender.send(("error", repr(error)))


def _fill_notes(generation: str, progress) -> int:
    ix = store.open_index(store.NOTES, generation)
    writer = store.writer(ix, limitmb=256)
    count = 0
    with reading_only(), reading_session() as session:
        for ids in documents.all_note_ids(session):
            for document in documents.note_documents(session, CustomerNote.id.in_(ids)):
                writer.add_document(**document)
                count += 1
            if progress:
                progress("notes", count)
    store.commit(writer)
    store.tidy(ix, unread=True)
    return count


def _catch_up(generation: str) -> None:
    """Apply every backlog row to the new index, and delete them: the new index is
    about to be the live one. (A rebuild started by a search, in a request that may
    not write, leaves them for the next writer, which applies them once more.)"""
    with reading_only(), reading_session() as session:
        rows = session.execute(select(SearchBacklog.id, SearchBacklog.kind, SearchBacklog.ref_id)).all()
        if rows:
            Changes.load(session, {(row.kind, row.ref_id) for row in rows}).apply(generation)
    if rows and not read_only_request():
        with reading_session() as session:
            ids = [row.id for row in rows]
            for start in range(0, len(ids), 500):
                session.execute(delete(SearchBacklog).where(SearchBacklog.id.in_(ids[start : start + 500])))
            session.commit()


def _remove(generation: str) -> None:
    shutil.rmtree(os.path.join(store.root(), generation), ignore_errors=True)


def _size(path: str) -> int:
    total = 0
    for folder, _dirs, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(folder, name)) for name in files)
    return total


# ---- check -------------------------------------------------------------------------

@dataclass
class CheckReport:
    """Differences between index and database, as index keys."""

    missing: list[str] = field(default_factory=list)  # in the database, not in the index
    stale: list[str] = field(default_factory=list)  # in both, but different
    extra: list[str] = field(default_factory=list)  # in the index only
    backlog: int = 0  # changes waiting to be applied
    unavailable: str = ""

    @property
    def ok(self) -> bool:
        return not (self.missing or self.stale or self.extra or self.unavailable)


def check() -> CheckReport:
    """Compare every customer and note in the database with its index entry."""
    report = CheckReport()
    try:
        indexed = {which: _indexed_stamps(which) for which in (store.CUSTOMERS, store.NOTES)}
    except store.IndexUnavailable as error:
        report.unavailable = str(error)
        return report
    with reading_only(), reading_session() as session:
        report.backlog = session.scalar(select(func.count()).select_from(SearchBacklog))
        expected: dict[str, str] = {}
        for ids in documents.all_customer_ids(session):
            found, _missing = documents.customer_documents(session, ids)
            expected.update((d["key"], d["stamp"]) for d in found)
        for ids in documents.all_note_ids(session):
            expected.update((d["key"], d["stamp"])
                            for d in documents.note_documents(session, CustomerNote.id.in_(ids)))
    actual = {**indexed[store.CUSTOMERS], **indexed[store.NOTES]}
    report.missing = sorted(expected.keys() - actual.keys())
    report.extra = sorted(actual.keys() - expected.keys())
    report.stale = sorted(key for key in expected.keys() & actual.keys() if expected[key] != actual[key])
    return report


def _indexed_stamps(which: str) -> dict[str, str]:
    ix = store.open_index(which)
    try:
        with ix.searcher() as searcher:
            return {fields["key"]: fields.get("stamp", "") for fields in searcher.all_stored_fields()}
    except Exception as error:
        raise store.IndexUnavailable(repr(error)) from error
