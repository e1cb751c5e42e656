"""The index on disk, and the locks that let several processes share it.

``<SEARCH_INDEX_DIR>/CURRENT`` names the live generation, a directory holding two
Whoosh indexes, ``customers`` and ``notes``. A rebuild writes a new generation beside
the live one and swaps ``CURRENT`` atomically; searchers notice on their next query.

Whoosh allows one writer per index. Every writer first takes ``write.lock`` (an OS
file lock, so it holds across processes), waiting at most a given time; a rebuild
holds ``rebuild.lock`` for as long as it runs, so that others can tell.

Files another process may still read are never deleted at once. Whoosh deletes, at
every commit, the table of contents (TOC) it replaces and the segments no longer
named; a searcher of another process that had read the old TOC then fails on a
segment file it had not opened yet. Here a commit deletes nothing: ``tidy`` removes
a TOC once it has been replaced for KEEP_REPLACED seconds, and the segments that no
remaining TOC names; the same for a generation a rebuild replaced.
"""

from __future__ import annotations

import gc
import logging
import math
import os
import secrets
import shutil
import threading
import time
import warnings
from contextlib import contextmanager
from datetime import datetime

from flask import current_app
from whoosh import columns, fields, index

from services.search import whoosh_internals as internals

log = logging.getLogger(__name__)

CUSTOMERS, NOTES = "customers", "notes"
KEEP_REPLACED = 120.0  # seconds the files of a replaced TOC or generation stay for searchers that read it
NAME_LENGTH, WHEN = "name_length", "when"  # the columns results are ordered by
RECORD = "record"  # the record's id: the last tie-break, the same in every segment


class IndexUnavailable(Exception):
    """The index is missing or cannot be read; search answers from the database."""


class LockTimeout(Exception):
    """Another process held one of the index's locks (its name is the argument) for
    longer than we would wait."""


def scope_term(name: str, value) -> str:
    """A term of the ``scope`` field, which holds what searches filter on (owner,
    author, customer, archived, tags) in one field: Whoosh looks up a field length
    for every posting it writes, and a field without lengths costs a file-system
    call each time — that made plain ID fields a third of the build time."""
    return f"{name}:{value}"


class TermsField(fields.TEXT):
    """A field given the list of its terms (made by services.search.analysis), so
    that indexing is one count per document rather than a token stream per term.
    No positions: nobody searches phrases, and the index is half the size without.
    (An index on disk names this class by its module: it stays here.)"""

    def __init__(self):
        super().__init__(phrase=False)

    def index(self, value, **kwargs):
        counts: dict[str, int] = {}
        for term in value:
            counts[term] = counts.get(term, 0) + 1
        encode = internals.encode_frequency
        for term, freq in counts.items():
            yield term.encode("utf-8"), freq, float(freq), encode(freq)


def _number_column():
    return fields.COLUMN(columns.NumericColumn("q", default=0))


def customer_schema() -> fields.Schema:
    return fields.Schema(
        key=fields.ID(unique=True, stored=True),
        name=TermsField(),
        phone=TermsField(),
        company=TermsField(),
        other=TermsField(),
        scope=TermsField(),
        name_length=_number_column(),
        record=_number_column(),
        stamp=fields.STORED,
    )


def note_schema() -> fields.Schema:
    return fields.Schema(
        key=fields.ID(unique=True, stored=True),
        body=TermsField(),
        scope=TermsField(),
        when=_number_column(),
        record=_number_column(),
        stamp=fields.STORED,
    )


SCHEMAS = {CUSTOMERS: customer_schema, NOTES: note_schema}


def root() -> str:
    return current_app.config.get("SEARCH_INDEX_DIR") or os.path.join(current_app.instance_path, "search")


def _current_file(base: str) -> str:
    return os.path.join(base, "CURRENT")


def current_generation(base: str | None = None) -> str | None:
    """The live generation's directory name, or None when there is no index."""
    try:
        with open(_current_file(base or root()), encoding="ascii") as handle:
            return handle.read().strip() or None
    except FileNotFoundError:
        return None


# How index terms are made, as far as an index must be remade when it changes: an
# index of another layout is rebuilt (its terms would not meet what queries look for).
# 2: traditional characters folded to simplified.
LAYOUT = "2"


def new_generation(base: str | None = None) -> str:
    """Create an empty generation directory with both indexes; returns its name."""
    base = base or root()
    name = datetime.now().strftime("gen-%Y%m%d-%H%M%S-") + secrets.token_hex(3)
    for which, schema in SCHEMAS.items():
        path = os.path.join(base, name, which)
        os.makedirs(path)
        index.create_in(path, schema())
    with open(_layout_file(base, name), "w", encoding="ascii") as handle:
        handle.write(LAYOUT)
    return name


def _layout_file(base: str, generation: str) -> str:
    return os.path.join(base, generation, "LAYOUT")


def _layout(base: str, generation: str) -> str | None:
    try:
        with open(_layout_file(base, generation), encoding="ascii") as handle:
            return handle.read().strip()
    except OSError:
        return None


def publish(name: str, base: str | None = None) -> None:
    """Make ``name`` the live generation (atomic rename). Older ones are marked
    replaced, and removed KEEP_REPLACED seconds later (remove_replaced_generations):
    a searcher of another process may have read CURRENT just before."""
    base = base or root()
    temporary = _current_file(base) + "." + secrets.token_hex(4)
    with open(temporary, "w", encoding="ascii") as handle:
        handle.write(name)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, _current_file(base))
    for entry in os.listdir(base):
        if entry.startswith("gen-") and entry != name and not _is_being_built(base, entry):
            _mark_replaced(base, entry)
    remove_replaced_generations(base)


def _mark_replaced(base: str, generation: str) -> None:
    flag = os.path.join(base, generation, "REPLACED")
    if not os.path.exists(flag):
        open(flag, "w").close()


def remove_replaced_generations(base: str | None = None, now: float | None = None) -> None:
    """Remove the generations replaced more than KEEP_REPLACED seconds ago."""
    base = base or root()
    now = time.time() if now is None else now
    for entry in os.listdir(base):
        try:
            replaced = os.path.getmtime(os.path.join(base, entry, "REPLACED"))
        except OSError:
            continue
        if entry.startswith("gen-") and now - replaced > KEEP_REPLACED and entry != current_generation(base):
            shutil.rmtree(os.path.join(base, entry), ignore_errors=True)


def _is_being_built(base: str, entry: str) -> bool:
    return os.path.exists(os.path.join(base, entry, "BUILDING"))


def remove_unfinished_builds(base: str | None = None) -> None:
    """Remove generations left marked as being built by a build whose process died.
    Only for the holder of the rebuild lock: no other build can be running then."""
    base = base or root()
    _remove_generations(base, keep=current_generation(base), being_built=True)


def remove_abandoned_builds(base: str) -> None:
    """At start: remove what a build cut off with its process (a stopped worker)
    left, unless a build runs now."""
    if not os.path.isdir(base):
        return
    try:
        with locked("rebuild.lock", 0, base):
            remove_unfinished_builds(base)
    except LockTimeout:
        pass


def _remove_generations(base: str, *, keep: str | None, being_built: bool) -> None:
    """Remove every generation but ``keep`` that is (or is not) marked as being built."""
    for entry in os.listdir(base):
        if entry.startswith("gen-") and entry != keep and _is_being_built(base, entry) == being_built:
            shutil.rmtree(os.path.join(base, entry), ignore_errors=True)


def mark_building(name: str, building: bool, base: str | None = None) -> None:
    flag = os.path.join(base or root(), name, "BUILDING")
    if building:
        open(flag, "w").close()
    elif os.path.exists(flag):
        os.remove(flag)


def open_index(which: str, generation: str | None = None, base: str | None = None):
    """The Whoosh index ``which`` of the live (or given) generation. Raises
    IndexUnavailable when it is missing or unreadable."""
    base = base or root()
    generation = generation or current_generation(base)
    if generation is None:
        raise IndexUnavailable("no index yet")
    try:
        ix = index.open_dir(os.path.join(base, generation, which))
    except Exception as error:  # whoosh raises many kinds for damaged files
        failure = f"{which} index unreadable: {error!r}"
    else:
        if _fields(ix.schema) == _fields(SCHEMAS[which]()) and _layout(base, generation) == LAYOUT:
            return ix
        failure = f"{which} index made by an older version of Deskbook"
    release_leaked_files()
    raise IndexUnavailable(failure)


def move_segment(segment, source: str, target: str) -> None:
    """Move the files of ``segment`` from the index folder ``source`` to ``target``,
    before a commit names it there (should the commit fail, tidy deletes them)."""
    for name in os.listdir(source):
        if internals.segment_of_file(name) == internals.segment_id(segment):
            os.replace(os.path.join(source, name), os.path.join(target, name))


def writer(ix, **kwargs):
    """A writer of ``ix`` whose commit deletes no file (call ``tidy(ix)`` after its
    commit, under the write lock):

    - postings in blocks of 1,024 rather than Whoosh's 128: services.search.matching
      reads whole posting lists, 1.7 times faster so;
    - a save's or a merge's segment written in memory and put on disk at its commit:
      one compound file when it is small (a save's: one file to make instead of
      seven), separate files when it is large, as a rebuild's and a bulk write's
      are written. Whoosh reads a file of a compound segment through
      ``BytesIO(memoryview)``, which copies it whole on every open: nothing for a
      save's few documents, tens of milliseconds for a large segment, on every
      searcher refresh. See ``internals.segment_writer``.
    """
    try:
        return internals.segment_writer(ix, **kwargs)
    except BaseException:  # a full disk: its temporary folder was made already
        _remove_leftovers(ix.storage)
        raise


def commit(writer, **kwargs) -> None:
    """Commit ``writer``; if that fails (a full disk), cancel it and remove its
    temporary files before raising."""
    try:
        writer.commit(**kwargs)
    except BaseException:
        discard(writer)
        raise


def discard(writer) -> None:
    """Cancel ``writer`` as far as it can be, and remove its temporary files (a
    TOC not put in place; the segment's files go at the next ``tidy``)."""
    try:
        writer.cancel()
    except Exception:  # cancelled already, or failing as the commit did
        pass
    internals.release_write_lock(writer)
    _remove_leftovers(writer.storage)
    _oldest_toc.pop(writer.storage.folder, None)  # its segment's files: the next tidy lists the folder


def _remove_leftovers(storage) -> None:
    for name in storage:
        if internals.is_leftover(name):
            _delete(os.path.join(storage.folder, name))


_segments_named: dict[tuple[str, int], frozenset] = {}  # (folder, TOC generation) → its segments


def tidy(ix, now: float | None = None, *, unread: bool = False) -> None:
    """Delete the TOCs of ``ix`` replaced more than KEEP_REPLACED seconds ago (every
    replaced one when ``unread``: an index being built, which no searcher reads),
    the segment files no remaining TOC names, and temporary files a failed writer
    left. Only under the write lock, or by the builder: no other writer of ``ix`` is
    at work then."""
    storage = ix.storage
    now = math.inf if unread else time.time() if now is None else now
    if _nothing_expired(storage, ix.indexname, now):
        return
    names = list(storage)
    generations = internals.toc_generations(names)
    expired = []
    for older, newer in zip(generations, generations[1:]):
        if now - storage.file_modified(internals.toc_file(ix.indexname, newer)) <= KEEP_REPLACED:
            break
        expired.append(older)
    if generations[len(expired):]:
        _oldest_toc[storage.folder] = generations[len(expired)]
    leftovers = [name for name in names if internals.is_leftover(name)]
    if not expired and not leftovers:
        return
    named = set()
    for generation in generations[len(expired):]:
        named |= _named(storage, generation)
    for generation in expired:
        storage.delete_file(internals.toc_file(ix.indexname, generation))
        _segments_named.pop((storage.folder, generation), None)
    for name in names:
        segment = internals.segment_of_file(name)
        if (segment and segment not in named and not internals.is_temporary(name)) or name in leftovers:
            _delete(os.path.join(storage.folder, name))


_oldest_toc: dict[str, int] = {}  # folder → its oldest TOC generation when this process last listed it


def _nothing_expired(storage, indexname: str, now: float) -> bool:
    """Whether, by what this process saw when it last listed the folder, no TOC can
    have expired since (the oldest one still there, and the one after it replaced it
    less than KEEP_REPLACED ago) and no failed writer left files: then ``tidy`` has
    nothing to do and need not list a folder of thousands of files on every save."""
    oldest = _oldest_toc.get(storage.folder)
    if oldest is None or not storage.file_exists(internals.toc_file(indexname, oldest)):
        return False
    following = internals.toc_file(indexname, oldest + 1)
    try:
        return not storage.file_exists(following) or now - storage.file_modified(following) <= KEEP_REPLACED
    except OSError:  # removed meanwhile by another process's tidy
        return False


def _delete(path: str) -> None:
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        os.remove(path)


def _named(storage, generation: int) -> frozenset:
    """The segments the TOC ``generation`` names (read once: a TOC never changes)."""
    key = (storage.folder, generation)
    if key not in _segments_named:
        if len(_segments_named) > 10000:
            _segments_named.clear()
        _segments_named[key] = internals.segments_named(storage, generation)
    return _segments_named[key]


def allow_open_files(wanted: int = 8192) -> None:
    """Raise this process's soft limit of open files towards ``wanted`` (within the
    hard limit). Each open segment holds six files, per index and per thread that
    searches; 1,024, a common default, is too few for a threaded server."""
    try:
        import resource
    except ImportError:  # not on this platform
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass


def _fields(schema) -> list[tuple[str, str]]:
    return sorted((name, type(schema[name]).__name__) for name in schema.names())


def release_leaked_files() -> None:
    """Whoosh leaves a damaged file open when it fails to read it. Collect it now,
    quietly, rather than have it warn at some later garbage collection; and the
    terms readers kept for deleting (one of them may be what failed)."""
    internals.release_held_terms()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


# ---- searchers, shared by the threads of a process ------------------------------------

_pool_lock = threading.Lock()
_idle: dict[tuple[str, str], list] = {}  # (root, which) → [(generation, ix, searcher)] not in use


def _forget_searchers() -> None:
    """In a forked child (gunicorn --preload): the parent's idle searchers' open files
    share their read positions with it, so the child starts with none."""
    global _pool_lock
    _pool_lock = threading.Lock()
    _idle.clear()


os.register_at_fork(after_in_child=_forget_searchers)
MAX_IDLE = 8  # per index; more idle searchers are closed


def search(which: str, read):
    """``read(searcher)`` with a searcher of the live index ``which``; if that fails,
    once more with a searcher opened afresh (the first may have met a passing
    state). Raises IndexUnavailable when the second fails too."""
    for fresh in (False, True):
        try:
            with searching(which, fresh=fresh) as searcher:
                return read(searcher)
        except Exception as error:  # a damaged file can fail in many ways
            # Logged without the traceback: it holds the damaged file open.
            log.warning("search index %s failed%s: %r", which, " again" if fresh else "", error)
            failure = repr(error)
    release_leaked_files()
    raise IndexUnavailable(failure)


@contextmanager
def searching(which: str, *, fresh: bool = False):
    """An up-to-date searcher of the live index ``which`` for this block, taken
    from the process's idle ones (opening an index reads its files; ``fresh``: not
    taken, opened) and given back after. One thread at a time uses a
    searcher: its open files have one read position each. Raises IndexUnavailable."""
    base = root()
    generation = current_generation(base)
    if generation is None:
        raise IndexUnavailable("no index yet")
    key = (base, which)
    entry = _open(key, generation) if fresh else _take(key, generation)
    try:
        yield entry[2]
    except BaseException:
        entry[2].close()  # it may be what failed
        raise
    _give_back(key, entry)


def _take(key, generation: str):
    stale = []
    with _pool_lock:
        idle = _idle.get(key, [])
        while idle:
            entry = idle.pop()
            if entry[0] == generation:
                break
            stale.append(entry)
        else:
            entry = None
    for old in stale:
        old[2].close()
    if entry is None:
        return _open(key, generation)
    if _current(entry):
        return entry
    # Not Searcher.refresh(): it reuses the readers of unchanged segments as they
    # were, and a segment that only had documents deleted looks unchanged to it.
    try:
        return generation, entry[1], internals.reopened_searcher(entry[1], entry[2])
    except Exception:
        log.warning("search: reopening a searcher failed; opening a new one", exc_info=True)
        try:
            entry[2].close()
        except Exception:
            pass  # a reader already closed
    return _open(key, generation)


def _open(key, generation: str):
    try:
        ix = open_index(key[1], generation, key[0])
        return generation, ix, ix.searcher()
    except IndexUnavailable:
        raise
    except Exception as error:
        failure = repr(error)
    release_leaked_files()
    raise IndexUnavailable(failure)


def _current(entry) -> bool:
    """Is the searcher's table of contents still the newest? Its own TOC is there
    and the next one is not: two file checks. (Whoosh's latest_generation() lists
    the folder, where replaced TOCs and segments now stay KEEP_REPLACED seconds: a
    burst of saves made that listing cost 2 ms a query.) Commits number their TOCs
    one after another, and a TOC is removed only after a newer one exists."""
    try:
        return internals.reads_latest_toc(entry[1], entry[2])
    except Exception:
        return False


def _give_back(key, entry) -> None:
    """Keep ``entry`` for the next search (``_take`` checks it is still current)."""
    with _pool_lock:
        idle = _idle.setdefault(key, [])
        if len(idle) < MAX_IDLE:
            idle.append(entry)
            return
    entry[2].close()


def forget_searchers() -> None:
    """Close every idle searcher of this process (tests; after a fork)."""
    with _pool_lock:
        entries = [entry for idle in _idle.values() for entry in idle]
        _idle.clear()
    for entry in entries:
        entry[2].close()


# ---- locks -------------------------------------------------------------------------

@contextmanager
def locked(name: str, timeout: float | None, base: str | None = None):
    """Hold the OS file lock ``name`` (in the index folder), waiting at most
    ``timeout`` seconds (None: as long as it takes). Raises LockTimeout."""
    base = base or root()
    os.makedirs(base, exist_ok=True)
    lock = internals.file_lock(os.path.join(base, name))
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.002
    while not lock.acquire(blocking=False):
        if deadline is not None and time.monotonic() >= deadline:
            raise LockTimeout(name)
        time.sleep(delay)
        delay = min(delay * 2, 0.01)
    try:
        yield
    finally:
        lock.release()


# ---- a rebuild wanted -------------------------------------------------------------

_WANTED = "REBUILD_WANTED"


def want_rebuild(base: str | None = None) -> None:
    """Record, for every process, that the index must be rebuilt (a request found
    it missing or damaged, and the database is too large to rebuild there)."""
    base = base or root()
    os.makedirs(base, exist_ok=True)
    with open(os.path.join(base, _WANTED), "w", encoding="ascii") as handle:
        handle.write(datetime.now().isoformat(timespec="seconds"))


def rebuild_wanted(base: str | None = None) -> bool:
    """Whether a rebuild was asked for and has not been done since."""
    return os.path.exists(os.path.join(base or root(), _WANTED))


def rebuild_done(base: str | None = None) -> None:
    try:
        os.remove(os.path.join(base or root(), _WANTED))
    except FileNotFoundError:
        pass


def rebuild_running(base: str | None = None) -> bool:
    """Whether some process holds the rebuild lock now."""
    try:
        with locked("rebuild.lock", 0, base):
            return False
    except LockTimeout:
        return True
