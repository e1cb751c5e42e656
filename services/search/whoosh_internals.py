"""Everything the search package needs from Whoosh below its public API, in one place.

Search is fast because it reads Whoosh's own structures directly: posting lists a
block at a time, numeric columns as one read of their file, the table of contents
(TOC) and segments of an index to merge and tidy them, and a writer that keeps the
files it replaces. Those structures are private to whoosh-reloaded and may change in
any release, so:

- the version is pinned in requirements.txt;
- nothing else in ``services/search`` touches them: the rest uses this module and
  Whoosh's public API (``PUBLIC_WHOOSH`` below; tests/services/test_search_adapter_boundary.py
  checks it);
- every reader here that can tell returns None when a structure is not as expected,
  and its caller answers through the public API instead;
- tests/services/test_search_contract.py compares the fast path, on random indexes and
  queries, with what Whoosh's own searcher finds, so an upgrade that changes a
  structure fails a test instead of returning wrong results.

Each function's docstring says what it returns and which private part it relies on.
"""

from __future__ import annotations

import re
import sys
from array import array
from itertools import accumulate, islice

from whoosh.codec.whoosh3 import W3Codec, W3LeafMatcher
from whoosh.columns import NumericColumn
from whoosh.index import TOC
from whoosh.matching.wrappers import FilterMatcher
from whoosh.reading import SegmentReader
from whoosh.system import pack_uint
from whoosh.util import fib
from whoosh.util.filelock import FileLock
from whoosh.writing import SegmentWriter

# The Whoosh modules (and, where a module also holds internals, the names) the rest of
# services/search may use: the documented API for schemas, columns, and creating and
# opening indexes. Objects reached through them (an index's ``storage`` and
# ``searcher()``, a searcher's ``reader()`` and its leaf readers' public methods such as
# ``doc_frequency``, ``postings``, ``column_reader``, ``stored_fields``) are public too.
PUBLIC_WHOOSH: dict[str, frozenset | None] = {
    "whoosh.fields": None,  # None: any name without a leading underscore
    "whoosh.columns": None,
    "whoosh.index": frozenset({"create_in", "open_dir", "exists_in", "EmptyIndexError", "IndexVersionError",
                               "LockError", "OutOfDateError"}),
}

POSTINGS_PER_BLOCK = 1024  # Whoosh's default is 128; reading whole lists is 1.7 times faster so


# ---- fields ---------------------------------------------------------------------------

# The value Whoosh's Frequency format stores with a posting: what a field's ``index()``
# yields as the fourth item of each (term bytes, frequency, weight, value). Relies on
# ``whoosh.system.pack_uint`` being that encoding (an alias: called once per term).
encode_frequency = pack_uint


# ---- writers --------------------------------------------------------------------------

class _KeepingWriter(SegmentWriter):
    """Whoosh's writer, except that a commit deletes no file (the caller tidies).
    Overrides the private ``SegmentWriter._commit_toc``, which writes the TOC and
    then deletes the files no longer named."""

    def _commit_toc(self, segments):
        TOC(self.schema, segments, self.generation).write(self.storage, self.indexname)


def segment_writer(ix, **kwargs):
    """A writer of ``ix`` whose commit deletes no file, with postings in blocks of
    POSTINGS_PER_BLOCK and each segment as separate files rather than one compound
    file (Whoosh reads a compound segment's file by copying it whole, on every open).
    ``kwargs`` as for ``ix.writer()``. Relies on ``SegmentWriter`` and ``W3Codec``."""
    return _KeepingWriter(ix, codec=W3Codec(blocklimit=POSTINGS_PER_BLOCK), compound=False, **kwargs)


def writer_segment_sizes(writer) -> list[int]:
    """The document counts (deleted ones included) of the segments ``writer`` will
    commit: the index's existing ones and the one it is writing. Relies on
    ``SegmentWriter.segments``."""
    return [segment.doc_count_all() for segment in writer.segments] + [writer.doc_count()]


def release_write_lock(writer) -> None:
    """Release ``writer``'s lock on its index if it still holds it (a cancel that
    failed half-way). Relies on ``SegmentWriter.is_closed`` and ``.writelock``."""
    if not writer.is_closed and writer.writelock:
        writer.writelock.release()


# ---- files of an index ----------------------------------------------------------------

_TOC_FILE = re.compile(r"^_MAIN_([0-9]+)\.toc$")
_SEGMENT_FILE = re.compile(r"^(MAIN_[0-9a-z]+)\.")
_LEFTOVER = re.compile(r"^(_MAIN_[0-9]+\.toc\..+|MAIN.*\.tmp)$")  # a TOC or writer's temporary file


def toc_generations(names) -> list[int]:
    """The generations of the TOC files among the file ``names`` of an index, oldest
    first. Relies on Whoosh's file naming (``_MAIN_<generation>.toc``)."""
    return sorted(int(m.group(1)) for m in map(_TOC_FILE.match, names) if m)


def toc_file(indexname: str, generation: int) -> str:
    """The file name of the TOC ``generation``. Relies on the private ``TOC._filename``."""
    return TOC._filename(indexname, generation)


def segment_of_file(name: str) -> str | None:
    """The segment id a file of an index belongs to, or None (a TOC, a lock).
    Relies on Whoosh's file naming (``MAIN_<id>.<ext>``)."""
    match = _SEGMENT_FILE.match(name)
    return match.group(1) if match else None


def is_leftover(name: str) -> bool:
    """Whether a file is a temporary one a failed writer or commit left (a TOC not
    put in place, a ``.tmp``). Relies on Whoosh's file naming."""
    return bool(_LEFTOVER.match(name))


def is_temporary(name: str) -> bool:
    """Whether a segment's file is still being written. Relies on Whoosh's file naming."""
    return name.endswith(".tmp")


def segments_named(storage, generation: int) -> frozenset:
    """The ids of the segments the TOC ``generation`` of ``storage`` names. Relies on
    ``TOC.read`` and ``Segment.segment_id``."""
    toc = TOC.read(storage, "MAIN", generation)
    return frozenset(segment.segment_id() for segment in toc.segments)


def reads_latest_toc(ix, searcher) -> bool:
    """Whether ``searcher`` (of ``ix``) reads the newest TOC: its own is there and
    the next one is not (two file checks, where ``ix.latest_generation()`` lists the
    whole folder). Relies on ``Reader.generation()`` numbering TOCs one after
    another and on ``TOC._filename``."""
    generation = searcher.reader().generation()
    return (ix.storage.file_exists(toc_file(ix.indexname, generation))
            and not ix.storage.file_exists(toc_file(ix.indexname, generation + 1)))


def file_lock(path: str):
    """An OS file lock on ``path`` (``acquire(blocking=False)``, ``release()``),
    held across processes. Relies on ``whoosh.util.filelock.FileLock``."""
    return FileLock(path)


def merge_bound(n: int) -> int:
    """The ``n``-th Fibonacci number, the bound of Whoosh's MERGE_SMALL rule. Relies
    on ``whoosh.util.fib``."""
    return fib(n)


# ---- segments, for merging --------------------------------------------------------------

def read_segments(ix) -> tuple:
    """(schema, segments) of ``ix``'s current TOC, read once: another process's
    commit may replace the TOC meanwhile. Relies on the private ``FileIndex._read_toc``."""
    toc = ix._read_toc()
    return toc.schema, list(toc.segments)


def segment_id(segment) -> str:
    """A segment's id, also the prefix of its files. Relies on ``Segment.segment_id``."""
    return segment.segment_id()


def segment_size(segment) -> int:
    """A segment's document count, deleted ones included. Relies on ``Segment.doc_count_all``."""
    return segment.doc_count_all()


def copy_live_documents(storage, schema, segment, writer) -> dict[int, int]:
    """Add the live documents of ``segment`` (of the index in ``storage``) to
    ``writer``, in order. Returns, per document copied, its number in the writer's
    segment. Relies on ``SegmentReader``, ``Segment.is_deleted`` and on
    ``SegmentWriter.add_reader`` copying the live documents in order."""
    live = [docnum for docnum in range(segment.doc_count_all()) if not segment.is_deleted(docnum)]
    start = writer.doc_count()
    reader = SegmentReader(storage, schema, segment)
    try:
        writer.add_reader(reader)
    finally:
        reader.close()
    return {old: start + new for new, old in enumerate(live)}


def only_segment(ix):
    """The one segment of ``ix`` (an index a merge wrote). Relies on the private
    ``FileIndex._segments``."""
    (segment,) = ix._segments()
    return segment


def carry_deletions(writer, copied: list, merged, docmaps: dict[str, dict[int, int]]) -> bool:
    """Delete in the ``merged`` segment what was deleted from the ``copied`` ones
    since they were copied (``docmaps``: per copied segment id, where each of its
    documents went), as ``writer`` sees them now. False, changing nothing, when one
    of them is gone from ``writer``'s index. Relies on ``SegmentWriter.segments``,
    ``Segment.deleted_docs`` and ``Segment.delete_document``."""
    now = {segment.segment_id(): segment for segment in writer.segments}
    if not docmaps.keys() <= now.keys():
        return False
    for segment in copied:
        since = set(now[segment.segment_id()].deleted_docs()) - set(segment.deleted_docs())
        for docnum in since:
            merged.delete_document(docmaps[segment.segment_id()][docnum])
    return True


def replacing(segment_ids, merged):
    """A ``mergetype`` for ``writer.commit``: the index's segments without those of
    ``segment_ids``, plus ``merged``. Relies on the merge-policy protocol (a
    function of the writer and its segments) and ``Segment.segment_id``."""
    gone = set(segment_ids)
    return lambda _writer, segments: [s for s in segments if s.segment_id() not in gone] + [merged]


# ---- reading a segment ------------------------------------------------------------------

def segment_key(reader) -> str:
    """An id of the segment a leaf reader reads, the same for as long as the
    segment exists (its deletions aside). Relies on ``SegmentReader.segment()``."""
    return reader.segment().segment_id()


def deleted_docs(reader):
    """The deleted document numbers of a leaf reader's segment, as a (frozen) set.
    Relies on ``SegmentReader.deleted_docs_set``."""
    return reader.deleted_docs_set


def _leaf(reader, field_name: str, term: str):
    """The term's posting list, deletions not filtered. From the segment's own terms
    (the private ``SegmentReader._terms`` and ``._text_to_bytes``) when the reader
    has them: ``postings()`` wraps the list in a ``FilterMatcher`` of the deletions,
    which decodes its first block, in Python, at once."""
    terms, to_bytes = getattr(reader, "_terms", None), getattr(reader, "_text_to_bytes", None)
    if terms is not None and to_bytes is not None:
        return terms.matcher(field_name, to_bytes(field_name, term), reader.schema[field_name].format)
    matcher = reader.postings(field_name, term)
    return matcher.child if isinstance(matcher, FilterMatcher) else matcher


def posting_ids(reader, field_name: str, term: str, wanted: list[int] | None = None) -> list[int] | None:
    """The document numbers posted under the term in a leaf reader's segment,
    deleted ones included, ascending, read a block at a time (``all_ids()`` steps a
    Python call per posting). With ``wanted`` (sorted), only the blocks whose range
    holds one of them are decoded, so the list may lack postings outside them.
    None when the posting list is not a Whoosh 3 one, or a block does not end where
    its header says. Relies on ``W3LeafMatcher``'s private ``_maxid``,
    ``_next_block``, ``_read_data``, ``_data`` and ``_byteids``."""
    matcher = _leaf(reader, field_name, term)
    if not isinstance(matcher, W3LeafMatcher):
        return None
    ids: list[int] = []
    i, previous = 0, -1
    while matcher.is_active():
        last = matcher._maxid
        if wanted is not None:
            while i < len(wanted) and wanted[i] <= previous:
                i += 1
            if i == len(wanted):
                break
            if wanted[i] > last:  # no wanted document in this block
                previous = last
                matcher._next_block()
                continue
        matcher._read_data()
        block = matcher._data[0]
        block = block if matcher._byteids else list(accumulate(block))
        if not block or block[-1] != last:
            return None
        ids.extend(block)
        previous = last
        matcher._next_block()
    return ids


# Gaps between neighbouring postings, as the bytes they stand for.
_GAPS = [b""] + [bytes(gap - 1) + b"\1" for gap in range(1, 513)]


def posting_marks(reader, field_name: str, term: str, frequency: int) -> bytes | None:
    """The term's posting list in a leaf reader's segment as one byte per document
    of the segment (``reader.doc_count_all()``), 1 where posted, deleted documents
    included; built from each block's gaps between postings. None when the list is
    not a Whoosh 3 one, a block does not end where its header says, or the postings
    do not add up to ``frequency``. Relies on the same privates as ``posting_ids``."""
    matcher = _leaf(reader, field_name, term)
    if not isinstance(matcher, W3LeafMatcher):
        return None
    count = reader.doc_count_all()
    pieces, previous, posted = [], -1, 0
    while matcher.is_active():
        matcher._read_data()
        gaps = matcher._data[0]
        if matcher._byteids or not gaps or gaps[0] <= previous or sum(gaps) != matcher._maxid:
            return None
        pieces.append(bytes(gaps[0] - previous - 1) + b"\1")  # the first is a document number
        try:
            pieces.append(b"".join(map(_GAPS.__getitem__, islice(gaps, 1, None))))
        except IndexError:
            pieces.append(b"".join(bytes(gap - 1) + b"\1" for gap in islice(gaps, 1, None)))
        posted += len(gaps)
        previous = matcher._maxid
        matcher._next_block()
    marks = b"".join(pieces)
    if posted != frequency or len(marks) > count:
        return None
    return marks + bytes(count - len(marks))


def numeric_column(reader, name: str) -> array | None:
    """A leaf reader's whole numeric column, one value per document of the segment,
    read from its file at once rather than value by value. None when the column is
    not a ``NumericColumn`` or its file is not laid out as expected. Relies on
    ``NumericColumn.Reader``'s private ``_typecode``, ``_dbfile``, ``_basepos``,
    ``_count``, ``_fixedlen`` and ``_default``, and on values in network order."""
    column = reader.column_reader(name, translate=False)
    if not isinstance(column, NumericColumn.Reader):
        return None
    try:
        values = array(column._typecode, column._dbfile.get(column._basepos, column._count * column._fixedlen))
        if sys.byteorder == "little":
            values.byteswap()
        values.extend([column._default] * (reader.doc_count_all() - len(values)))
    except (AttributeError, TypeError, ValueError):
        return None
    return values if len(values) == reader.doc_count_all() else None
