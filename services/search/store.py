"""The index on disk, and the locks that let several processes share it.

``<SEARCH_INDEX_DIR>/CURRENT`` names the live generation, a directory holding two
Whoosh indexes, ``customers`` and ``notes``. A rebuild writes a new generation beside
the live one and swaps ``CURRENT`` atomically; searchers notice on their next query.

Whoosh allows one writer per index. Every writer first takes ``write.lock`` (an OS
file lock, so it holds across processes), waiting at most a given time; a rebuild
holds ``rebuild.lock`` for as long as it runs, so that others can tell.
"""

from __future__ import annotations

import gc
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
from whoosh.codec.whoosh3 import W3Codec
from whoosh.system import pack_uint
from whoosh.util.filelock import FileLock

CUSTOMERS, NOTES = "customers", "notes"
NAME_LENGTH, WHEN = "name_length", "when"  # the columns results are ordered by


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
    No positions: nobody searches phrases, and the index is half the size without."""

    def __init__(self):
        super().__init__(phrase=False)

    def index(self, value, **kwargs):
        counts: dict[str, int] = {}
        for term in value:
            counts[term] = counts.get(term, 0) + 1
        for term, freq in counts.items():
            yield term.encode("utf-8"), freq, float(freq), pack_uint(freq)


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
        stamp=fields.STORED,
    )


def note_schema() -> fields.Schema:
    return fields.Schema(
        key=fields.ID(unique=True, stored=True),
        body=TermsField(),
        scope=TermsField(),
        when=_number_column(),
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
    """Make ``name`` the live generation (atomic rename) and remove older ones.
    Searchers that still read an old one keep their open files until they refresh."""
    base = base or root()
    temporary = _current_file(base) + "." + secrets.token_hex(4)
    with open(temporary, "w", encoding="ascii") as handle:
        handle.write(name)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, _current_file(base))
    _remove_generations(base, keep=name, being_built=False)


def _is_being_built(base: str, entry: str) -> bool:
    return os.path.exists(os.path.join(base, entry, "BUILDING"))


def remove_unfinished_builds(base: str | None = None) -> None:
    """Remove generations left marked as being built by a build whose process died.
    Only for the holder of the rebuild lock: no other build can be running then."""
    base = base or root()
    _remove_generations(base, keep=current_generation(base), being_built=True)


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


def writer(ix, **kwargs):
    """A writer of ``ix``:

    - postings in blocks of 1,024 rather than Whoosh's 128: services.search.matching
      reads whole posting lists, 1.7 times faster so;
    - segments as separate files, not one compound file: Whoosh reads a file of a
      compound segment through ``BytesIO(memoryview)``, which copies it whole on
      every open — tens of milliseconds for a large segment, on every write (the
      writer opens a reader to delete the old entry) and every searcher refresh.
    """
    return ix.writer(codec=W3Codec(blocklimit=1024), compound=False, **kwargs)


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
    quietly, rather than have it warn at some later garbage collection."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


# ---- searchers, shared by the threads of a process ------------------------------------

_pool_lock = threading.Lock()
_idle: dict[tuple[str, str], list] = {}  # (root, which) → [(generation, ix, searcher)] not in use
MAX_IDLE = 8  # per index; more idle searchers are closed


@contextmanager
def searching(which: str):
    """An up-to-date searcher of the live index ``which`` for this block, taken
    from the process's idle ones (opening an index reads its files) and given back
    after. One thread at a time uses a
    searcher: its open files have one read position each. Raises IndexUnavailable."""
    base = root()
    generation = current_generation(base)
    if generation is None:
        raise IndexUnavailable("no index yet")
    key = (base, which)
    entry = _take(key, generation)
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
    # Not Searcher.refresh(): it reuses the readers of unchanged segments, and a
    # segment that only had documents deleted looks unchanged to it.
    if entry is not None and _current(entry):
        return entry
    if entry is not None:
        entry[2].close()
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
    try:
        return entry[1].latest_generation() == entry[2].reader().generation()
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
    lock = FileLock(os.path.join(base, name))
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


def rebuild_running(base: str | None = None) -> bool:
    """Whether some process holds the rebuild lock now."""
    try:
        with locked("rebuild.lock", 0, base):
            return False
    except LockTimeout:
        return True
