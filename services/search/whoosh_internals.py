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

import copy
import os
import re
import struct
import sys
import threading
import zlib
from array import array
from hashlib import md5
from itertools import accumulate, islice, repeat
from pickle import dumps

from whoosh.codec.whoosh3 import (
    LENGTHS_COLUMN,
    WHOOSH3_HEADER_MAGIC,
    W3Codec,
    W3FieldWriter,
    W3LeafMatcher,
    W3PerDocReader,
    W3TermInfo,
    W3TermsReader,
    _lenfield,
)
from whoosh.columns import NumericColumn
from whoosh.filedb.compound import CompoundStorage
from whoosh.filedb.filestore import FileStorage, RamStorage
from whoosh.filedb.filetables import md5_hash
from whoosh.index import TOC
from whoosh.matching.wrappers import FilterMatcher
from whoosh.reading import EmptyReader, MultiReader, SegmentReader
from whoosh.searching import Searcher
from whoosh.system import pack_int, pack_long, pack_uint, pack_ushort
from whoosh.util.filelock import FileLock
from whoosh.util.numeric import length_to_byte
from whoosh.writing import PostingPool, SegmentWriter

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
# A posting block smaller than this is written uncompressed (zlib makes it no smaller;
# Whoosh meant to skip compressing below 20 bytes, but its check is overwritten).
UNCOMPRESSED_BELOW = 64


# ---- fields ---------------------------------------------------------------------------

# The value Whoosh's Frequency format stores with a posting: what a field's ``index()``
# yields as the fourth item of each (term bytes, frequency, weight, value). Relies on
# ``whoosh.system.pack_uint`` being that encoding (an alias: called once per term).
encode_frequency = pack_uint


# ---- writers --------------------------------------------------------------------------

ONE_FILE_DOCS = 1000  # a new segment of at most this many documents is written as one file


class _KeepingWriter(SegmentWriter):
    """Whoosh's writer, except that a commit deletes no file (the caller tidies), and
    that a segment written in memory (see :class:`_StagedSegment`) is put on disk at
    its commit: as one compound file when it holds at most ONE_FILE_DOCS documents,
    as Lucene does with small segments; else as separate files. Overrides the
    private ``SegmentWriter._commit_toc``, which writes the TOC and then deletes the
    files no longer named, and ``_assemble_segment``."""

    def _commit_toc(self, segments):
        TOC(self.schema, segments, self.generation).write(self.storage, self.indexname)

    def _assemble_segment(self):
        storage = self.storage
        if not isinstance(storage, _StagedSegment):
            return  # written in place, as separate files
        segment, staged = self.get_segment(), storage.staged
        names = staged.list()
        if segment.doc_count_all() <= ONE_FILE_DOCS:
            compound = FileStorage.create_file(storage, segment.make_filename(segment.COMPOUND_EXT))
            CompoundStorage.assemble(compound, staged, names)  # closes it
            segment.compound = True
        else:
            for name in names:
                with FileStorage.create_file(storage, name) as f:
                    f.write(staged.files[name])
        storage.staged = RamStorage()


class _StagedSegment(FileStorage):
    """An index folder whose writer writes the files of its new segment in memory
    (``staged``), for ``_KeepingWriter._assemble_segment`` to put on disk at once,
    and keeps its temporary files in memory: a segment of one note is seven files
    (terms, postings, five columns), Whoosh adds a temporary folder and a file in it
    for every writer, and on some disks making a file or folder costs as much CPU
    as indexing a note. Reads find the staged files first, then the folder's.
    Overrides ``FileStorage``'s file methods and ``temp_storage``."""

    def __init__(self, folder: str, supports_mmap: bool = True):
        super().__init__(folder, supports_mmap=supports_mmap)
        self.staged = RamStorage()

    def temp_storage(self, name=None):
        return RamStorage()

    def _is_staged(self, name: str) -> bool:
        return self.staged.file_exists(name)

    def create_file(self, name, *args, **kwargs):
        if _SEGMENT_FILE.match(name):
            return self.staged.create_file(name)
        return super().create_file(name, *args, **kwargs)

    def open_file(self, name, *args, **kwargs):
        if self._is_staged(name):
            return self.staged.open_file(name)
        return super().open_file(name, *args, **kwargs)

    def file_exists(self, name):
        return self._is_staged(name) or super().file_exists(name)

    def file_length(self, name):
        return self.staged.file_length(name) if self._is_staged(name) else super().file_length(name)

    def file_modified(self, name):
        return self.staged.file_modified(name) if self._is_staged(name) else super().file_modified(name)

    def delete_file(self, name):
        if self._is_staged(name):
            return self.staged.delete_file(name)
        return super().delete_file(name)


def segment_writer(ix, **kwargs):
    """A writer of ``ix`` whose commit deletes no file, with postings in blocks of
    POSTINGS_PER_BLOCK, writing its terms with :class:`_TermsWriter`. ``kwargs`` as
    for ``ix.writer()``. A writer given ``limitmb`` (a rebuild's, a bulk write's)
    writes its segment as separate files, in place, and its temporary files on disk.
    Any other (a save's, a merge's) writes its segment in memory, then as one file
    when it is small (see _KeepingWriter); its temporary files stay in memory. A
    large segment is never one compound file: Whoosh reads a compound segment's
    files by copying each whole on every open. Relies on ``SegmentWriter``, its
    ``fieldwriter`` attribute, ``W3Codec``, on writers getting their temporary
    storage from ``ix.storage.temp_storage``, and on ``CompoundStorage.assemble``."""
    if "limitmb" not in kwargs:
        ix = copy.copy(ix)
        ix.storage = _StagedSegment(ix.storage.folder, supports_mmap=ix.storage.supports_mmap)
    writer = _KeepingWriter(ix, codec=W3Codec(blocklimit=POSTINGS_PER_BLOCK), compound=False, **kwargs)
    if type(writer.fieldwriter) is W3FieldWriter and type(writer.pool) is PostingPool:
        writer.fieldwriter.__class__ = _TermsWriter  # no state of its own: only a faster method
        writer.pool = _TermsPool()
    return writer


class _TermsPool:
    """Whoosh's posting pool (``SegmentWriter.pool``: every posting of the segment
    being written, handed to the field writer sorted by field, term and document),
    kept in memory grouped by term, a document number each. Whoosh's pool keeps a
    5-tuple per posting (~210 bytes) and, past ``limitmb``, sorts and pickles runs to
    temporary files and merges them back item by item: at 50,000 customers that
    spilling took more time than writing the index. Here a term in one document
    costs ~130 bytes and every further posting 4, unless its weight and value
    differ from what most of its field's postings have (a frequency above one).
    Relies on ``PostingPool``'s protocol: ``add((field, term bytes, docnum, weight,
    value))``, ``iter_postings()``, ``cleanup()``."""

    def __init__(self):
        self.fields: dict[str, dict[bytes, int | array]] = {}
        self.usual: dict[str, tuple[float, bytes]] = {}  # per field: the weight and value most postings have
        self.unusual: dict[tuple[str, bytes, int], tuple[float, bytes]] = {}

    def add(self, item) -> None:
        name, text, docnum, weight, value = item
        if docnum < 0:  # a spelling word (none here): Whoosh's field writer skips them
            return
        if value is None:  # as Whoosh's field writer takes it
            value = b""
        terms = self.fields.get(name)
        if terms is None:
            terms = self.fields[name] = {}
            self.usual[name] = (weight, value)
        usual_weight, usual_value = self.usual[name]
        if weight != usual_weight or value != usual_value:
            self.unusual[name, text, docnum] = (weight, value)
        held = terms.get(text)
        if held is None:
            terms[text] = docnum
        elif isinstance(held, int):
            terms[text] = array("I", (held, docnum))
        else:
            held.append(docnum)

    def iter_postings(self) -> _Pooled:
        return _Pooled(self)

    def cleanup(self) -> None:
        self.fields, self.unusual = {}, {}


class _Pooled:
    """The postings of a _TermsPool in Whoosh's order: as 5-tuples when iterated,
    by term from ``terms()``."""

    def __init__(self, pool: _TermsPool):
        self.pool = pool

    def terms(self):
        """(field, term bytes, docnums, weights, values) per term, in order."""
        pool = self.pool
        unusual = pool.unusual
        odd_fields = {name for name, _text, _docnum in unusual}
        for name in sorted(pool.fields):
            terms, (weight, value) = pool.fields[name], pool.usual[name]
            odd = name in odd_fields
            for text in sorted(terms):
                held = terms[text]
                ids = [held] if type(held) is int else sorted(held)
                if odd:
                    found = [unusual.get((name, text, docnum), (weight, value)) for docnum in ids]
                    yield name, text, ids, [w for w, _v in found], [v for _w, v in found]
                else:
                    yield name, text, ids, [weight] * len(ids), [value] * len(ids)

    def __iter__(self):
        for name, text, ids, weights, values in self.terms():
            yield from zip(repeat(name), repeat(text), ids, weights, values)


def _by_term(items):
    """Postings given as Whoosh's 5-tuples, sorted, grouped as ``_Pooled.terms()``
    gives them (docnum -1, a spelling word, skipped as Whoosh does)."""
    name = text = None
    ids: list[int] = []
    weights: list[float] = []
    values: list[bytes] = []
    for field, btext, docnum, weight, value in items:
        if btext != text or field != name:
            if ids:
                yield name, text, ids, weights, values
                ids, weights, values = [], [], []
            if field == name and btext < text:
                raise ValueError(f"term {btext!r} after {text!r} in field {field!r}")
            name, text = field, btext
        if docnum == -1:
            continue
        ids.append(docnum)
        weights.append(weight)
        values.append(value if value is not None else b"")
    if ids:
        yield name, text, ids, weights, values


class _TermsWriter(W3FieldWriter):
    """Whoosh 3's field writer, writing what it writes, faster.

    Most terms of the customer index are in one document (a phone number's endings
    and beginnings: 30 of a customer's ~100 terms), and Whoosh's writer spends ~40 µs
    of Python on each: a block object, statistics kept posting by posting, a
    field-length lookup per posting, a zlib call on a 25-byte block. This one collects
    a term's postings in plain lists and writes its one block directly, uncompressed
    when it is small (UNCOMPRESSED_BELOW; the block says so, any Whoosh reads it); a
    term with more postings than one block holds goes through Whoosh's own code.
    Field lengths are read once per field. tests/services/test_search_writer.py checks
    that the terms and postings read back are those Whoosh's writer writes, and the
    files byte for byte when nothing is small enough to be left uncompressed.
    Overrides ``FieldWriter.add_postings``; relies on W3's block layout
    (``W3PostingsWriter._write_block``), ``W3TermInfo``'s byte layout (``_struct``
    followed by offset and length), the terms table's keys (field number + term
    bytes) and the private ``_fieldid``, ``_format``, ``_postfile``, ``_tindex`` and
    ``_codec._blocklimit/_compression``."""

    def add_postings(self, schema, lengths, items):
        field_name = length_bytes = size = None
        terms = items.terms() if isinstance(items, _Pooled) else _by_term(items)
        for name, text, ids, weights, values in terms:
            if name != field_name:
                if field_name is not None:
                    self.finish_field()
                self.start_field(name, schema[name])
                length_bytes, size = _length_bytes(lengths, name), self._format.fixed_value_size()
                field_name = name
            key = pack_ushort(self._fieldid) + text
            if len(ids) == 1 and weights[0] == 1.0:  # most terms: one block of one posting, weight 1
                self._write_one(key, ids[0], values[0], length_bytes, size)
            else:
                self._write_term(key, ids, weights, values, length_bytes, size)
        if field_name is not None:
            self.finish_field()

    def _write_one(self, key: bytes, docnum: int, value: bytes, length_bytes, size) -> None:
        """``_write_term`` for a term in one document, with weight 1."""
        length = length_bytes(docnum)
        packed_value: bytes | tuple | None = None  # as _block packs one value
        if size is None or size < 0:
            packed_value = (value,) if value else ()
        elif size > 0:
            packed_value = value
        data = dumps(((docnum,), None, packed_value), 2)
        compression = self._codec._compression if len(data) >= UNCOMPRESSED_BELOW else 0
        if compression:
            data = zlib.compress(data, compression)
        info = dumps((1, docnum, 1.0, compression, length, length), 2)
        written = WHOOSH3_HEADER_MAGIC + pack_int(-(len(info) + len(data))) + info + data
        postfile = self._postfile
        start = postfile.tell()
        postfile.write(written)
        terminfo = _TERMINFO.pack(False, 1.0, 1, length, length, 1.0, docnum, docnum)
        _add_term(self._tindex, key, terminfo + pack_long(start) + pack_int(len(written)))

    def _write_term(self, key: bytes, ids, weights, values, length_bytes, size) -> None:
        """A term's postings in blocks of ``blocklimit``, as ``W3PostingsWriter``
        writes them, and its row in the terms table (``key``: field number and term
        bytes), as ``W3TermInfo.to_bytes`` and ``OrderedHashWriter.add`` write it."""
        if not ids:
            raise ValueError(f"term {key!r} has no postings")
        weights = array("f", weights)  # Whoosh keeps weights as 32-bit floats
        blocklimit, postfile = self._codec._blocklimit, self._postfile
        start = postfile.tell()
        blocks, smallest, largest, top = [WHOOSH3_HEADER_MAGIC], 0, 0, 0.0
        for first in range(0, len(ids), blocklimit):
            last = first + blocklimit >= len(ids)
            block, low, high, heaviest = _block(ids[first : first + blocklimit], weights[first : first + blocklimit],
                                                values[first : first + blocklimit], length_bytes, size,
                                                self._codec._compression, last)
            blocks.append(block)
            smallest = low if not smallest or (low and low < smallest) else smallest
            largest, top = max(largest, high), max(top, heaviest)
        written = b"".join(blocks)
        postfile.write(written)
        terminfo = _TERMINFO.pack(False, sum(weights), len(ids), smallest, largest, top, ids[0], ids[-1])
        _add_term(self._tindex, key, terminfo + pack_long(start) + pack_int(len(written)))


def _block(ids, weights, values, length_bytes, size, compression: int, last: bool) -> tuple[bytes, int, int, float]:
    """A posting block as ``W3PostingsWriter._write_block`` writes it, and its
    smallest and largest length bytes (0: none) and largest weight."""
    if len(ids) == 1:
        gaps, top = (ids[0],), max(0.0, weights[0])
        smallest = largest = length_bytes(ids[0])
        packed_weights = None if top == 1.0 else weights[0]
    else:
        gaps = tuple(b - a for a, b in zip([0, *ids], ids))
        top = max(0.0, max(weights))
        nonzero = [b for b in map(length_bytes, ids) if b]
        smallest, largest = (min(nonzero), max(nonzero)) if nonzero else (0, 0)
        if all(weight == 1.0 for weight in weights):
            packed_weights = None
        elif all(weight == weights[0] for weight in weights):
            packed_weights = weights[0]
        else:
            packed_weights = tuple(weights)
    if size == 0:
        packed_values = None
    else:
        kept = [value for value in values if value]
        packed_values = tuple(kept) if size is None or size < 0 else b"".join(kept)
    data = dumps((gaps, packed_weights, packed_values), 2)
    if len(data) < UNCOMPRESSED_BELOW:
        compression = 0
    if compression:
        data = zlib.compress(data, compression)
    info = dumps((len(ids), ids[-1], top, compression, smallest, largest), 2)
    length = len(info) + len(data)
    return pack_int(-length if last else length) + info + data, smallest, largest, top


def _add_term(table, key: bytes, value: bytes) -> None:
    """``table.add(key, value)`` of an ``OrderedHashWriter`` (the terms table), in
    one write and with the key's MD5 hash taken as ``md5_hash`` takes it. Relies on
    its private ``dbfile``, ``index``, ``buckets``, ``lastkey`` and ``hashfn``."""
    if table.hashfn is not md5_hash or key <= table.lastkey:
        table.add(key, value)  # not the table expected, or out of order: Whoosh's own checks
        return
    dbfile = table.dbfile
    position = dbfile.tell()
    table.index.append(position)
    dbfile.write(_KEY_VALUE_LENGTHS.pack(len(key), len(value)) + key + value)
    hashed = int.from_bytes(md5(key, usedforsecurity=False).digest()[-4:], "big")
    table.buckets[hashed & 255].append((hashed, position))
    table.lastkey = key


_KEY_VALUE_LENGTHS = struct.Struct("!ii")  # as whoosh.filedb.filetables writes them


_TERMINFO = W3TermInfo._struct  # flags, weight, doc frequency, min and max length bytes, max weight, first and last id


def _length_bytes(lengths, field_name: str):
    """A function of a document number giving its length in ``field_name`` as
    Whoosh stores it (one byte, 0 for none), as Whoosh's writer looks it up
    (``doc_field_length``), from the length column read whole when ``lengths`` is
    the new segment's own per-document reader. Relies on
    ``W3PerDocReader._cached_reader``, ``_lenfield``, ``LENGTHS_COLUMN`` and
    ``NumericColumn.Reader``'s private ``_typecode``, ``_dbfile``, ``_basepos``,
    ``_count`` and ``_default``."""
    if lengths is None:
        return lambda _docnum: 0
    if type(lengths) is W3PerDocReader:
        column = lengths._cached_reader(_lenfield(field_name), LENGTHS_COLUMN)
        if column is None:
            return lambda _docnum: 0
        if type(column) is NumericColumn.Reader and column._typecode == "B":
            raw = bytes(column._dbfile.get(column._basepos, column._count)) + bytes([column._default or 0])
            last = len(raw) - 1
            return lambda docnum: raw[docnum if docnum < last else last]
    return lambda docnum: length_to_byte(lengths.doc_field_length(docnum, field_name))


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


_LATEST: dict[tuple[str | None, str], int] = {}  # (folder, index name) → the newest TOC generation seen


def _latest_generation(storage, indexname: str) -> int:
    """The newest TOC generation of an index, as ``TOC._latest_generation`` finds it
    by listing the folder and matching every name — a folder holds thousands of
    files while replaced ones wait out KEEP_REPLACED, and every writer lists it
    twice. From the newest generation seen before, if its TOC is still there, the
    next ones are looked for by name instead: TOCs are numbered one after another
    and only the oldest are ever deleted (``store.tidy``; Whoosh's own writer deletes
    all but the newest), so the ones there form an unbroken run. Installed in place
    of ``TOC._latest_generation`` (a private classmethod) below."""
    folder = getattr(storage, "folder", None)
    key = (folder, indexname)
    generation = _LATEST.get(key) if folder is not None else None
    if generation is None or not storage.file_exists(toc_file(indexname, generation)):
        generation = _listed_latest_generation(storage, indexname)
    else:
        while storage.file_exists(toc_file(indexname, generation + 1)):
            generation += 1
    if folder is not None and generation >= 0:
        if len(_LATEST) > 1000:
            _LATEST.clear()
        _LATEST[key] = generation
    return generation


_listed_latest_generation = TOC._latest_generation
TOC._latest_generation = staticmethod(_latest_generation)  # type: ignore[method-assign,assignment]


def reopened_searcher(ix, searcher):
    """A searcher of ``ix``'s newest table of contents that takes over from
    ``searcher`` (of an older one of the same index, neither used nor closed after
    this) the readers of the segments both name. Opening a segment's reader opens and
    reads its terms files: most of what opening a searcher costs, and a save adds one
    small segment while the others stay. Each reader taken over is given the new TOC's
    segment, whose deleted documents may have grown (the segment's files never
    change); the readers of segments gone are closed. On failure the readers opened
    here are closed, and ``searcher`` is the caller's to close. Relies on
    ``FileIndex._read_toc``, ``SegmentReader``'s ``_segment``, ``_gen``, ``_perdoc``
    (and its ``_segment``) and cached ``deleted_docs_set``, and on ``MultiReader``."""
    toc = ix._read_toc()
    held = {reader.segment().segment_id(): reader for reader, _offset in searcher.reader().leaf_readers()
            if reader.segment() is not None}  # an index of no segment: an EmptyReader, nothing to keep
    readers, opened = [], []
    try:
        for segment in toc.segments:
            old = held.pop(segment.segment_id(), None)
            if old is None:
                opened.append(SegmentReader(ix.storage, toc.schema, segment, generation=toc.generation))
                readers.append(opened[-1])
            else:
                readers.append(_given_segment(old, segment, toc.generation))
    except BaseException:
        for reader in opened:
            reader.close()
        raise
    for reader in held.values():
        reader.close()
    if not readers:
        return Searcher(EmptyReader(toc.schema), fromindex=ix)
    reader = readers[0] if len(readers) == 1 else MultiReader(readers, generation=toc.generation)
    return Searcher(reader, fromindex=ix)


def _given_segment(reader, segment, generation: int):
    """A reader of ``segment`` on ``reader``'s open files (those of the same segment
    as an older TOC listed it), reading ``segment``'s deleted documents."""
    given = SegmentReader.__new__(SegmentReader)
    given.__dict__.update(reader.__dict__)
    given.__dict__.pop("deleted_docs_set", None)  # a cached_property: the old deletions
    perdoc = copy.copy(reader._perdoc)
    perdoc._segment = segment
    given._segment, given._perdoc, given._gen = segment, perdoc, generation
    return given


_held_terms: dict[str, dict[str, W3TermsReader]] = {}  # index folder → {segment id: its terms reader}
_held_terms_lock = threading.Lock()


def live_documents_holding(writer, terms) -> list[int]:
    """The numbers (as ``writer`` numbers them) of the documents of the segments
    ``writer`` started from, deleted neither before nor by ``writer``, that hold one of
    ``terms`` ((field, text) pairs). Each segment's terms table is looked up through a
    reader this process keeps open for it (a segment's files never change): opening
    every segment's terms files on every save, to find the entries it replaces, was
    most of what deleting them cost. The readers of segments no longer in the index,
    and of another generation's folders (a replaced one), are closed; both indexes of
    the current generation keep theirs, as a save writes to both. Relies on
    ``SegmentWriter.segments``, ``Segment.is_compound``, ``open_compound_file``,
    ``is_deleted`` and ``doc_count_all``, the codec's ``terms_reader`` and its
    ``matcher``, and the fields' ``to_bytes`` and ``format``."""
    storage, schema = writer.storage, writer.schema
    segments = list(writer.segments)
    found: list[int] = []
    with _held_terms_lock:
        generation = os.path.dirname(storage.folder)
        for folder in [folder for folder in _held_terms if os.path.dirname(folder) != generation]:
            _close_all(_held_terms.pop(folder))
        held = _held_terms.setdefault(storage.folder, {})
        named = {segment.segment_id() for segment in segments}
        _close_all({key: held.pop(key) for key in [key for key in held if key not in named]})
        offset = 0
        for segment in segments:
            reader = held.get(segment.segment_id())
            if reader is None:
                files = segment.open_compound_file(storage) if segment.is_compound() else storage
                reader = held[segment.segment_id()] = segment.codec().terms_reader(files, segment)
            for field, text in terms:
                if field not in schema:
                    continue
                term = (field, schema[field].to_bytes(text))
                if term in reader:
                    found.extend(offset + docnum for docnum in reader.matcher(*term, schema[field].format).all_ids()
                                 if not segment.is_deleted(docnum))
            offset += segment.doc_count_all()
    return sorted(set(found))  # a document holding two of the terms, once


def _forget_held_terms() -> None:
    """In a forked child (gunicorn --preload forks the app's process): the parent's
    open files share their read positions with it, so the child keeps none of them
    (dropped, they close the child's copies only)."""
    global _held_terms_lock
    _held_terms_lock = threading.Lock()
    _held_terms.clear()


os.register_at_fork(after_in_child=_forget_held_terms)


def release_held_terms() -> None:
    """Close every terms reader :func:`live_documents_holding` keeps open."""
    with _held_terms_lock:
        while _held_terms:
            _close_all(_held_terms.popitem()[1])


def _close_all(readers: dict) -> None:
    for reader in readers.values():
        try:
            reader.close()
        except Exception:  # already closed, or its file gone bad: nothing left to free
            pass


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


def segment_deleted(segment) -> int:
    """How many of a segment's documents are deleted. Relies on ``Segment.deleted_count``."""
    return segment.deleted_count()


def copy_live_documents(storage, schema, segment, writer) -> dict[int, int]:
    """Add the live documents of ``segment`` (of the index in ``storage``) to
    ``writer``, in order, as ``SegmentWriter.add_reader`` does. Returns, per document
    copied, its number in the writer's segment. The postings are read a block at a
    time, term after term down the segment's terms table (see _term_blocks), where
    add_reader looks every term up again and steps a matcher, wrapped in one that
    skips deleted documents, posting by posting: most of a merge's time.
    tests/services/test_search_writer.py checks that the segment written holds what
    add_reader's holds. Relies on ``SegmentReader``, ``Segment.is_deleted``, and
    ``SegmentWriter``'s ``_check_state``, ``write_per_doc``, ``pool`` and ``_added``."""
    live = [docnum for docnum in range(segment.doc_count_all()) if not segment.is_deleted(docnum)]
    start = writer.doc_count()
    docmap = {old: start + new for new, old in enumerate(live)}
    reader = SegmentReader(storage, schema, segment)
    try:
        writer._check_state()
        target = writer.schema
        writer.write_per_doc(set(target.names()) | {n for n in reader.indexed_field_names() if n in target}, reader)
        add, moved = writer.pool.add, docmap.get
        for name, text, ids, weights, values in _term_blocks(reader):
            if name in target:
                for docnum, weight, value in zip(ids, weights, values):
                    new = moved(docnum)
                    if new is not None:  # else deleted
                        add((name, text, new, weight, value))
        writer._added = True
    finally:
        reader.close()
    return docmap


def _term_blocks(reader):
    """(field, term bytes, ids, weights, values) per posting block of every term of a
    segment reader, in the terms table's order, deleted documents included; values
    and weights as Whoosh's matchers give them. Raises ValueError at a posting list
    kept in the terms table itself (inlined), which Whoosh 3's writer does not write
    (its ``inlinelimit`` of 1 inlines none). Relies on the private
    ``SegmentReader._terms``, its ``_tindex``, ``_keydecoder`` and ``_postfile``, on
    ``W3TermInfo``, and on ``W3LeafMatcher``'s ``_read_ids``, ``_read_weights``,
    ``_read_values``, ``_ids``, ``_weights``, ``_values`` and ``_next_block``."""
    terms, schema = reader._terms, reader.schema
    for key, info_bytes in terms._tindex.items():
        name, text = terms._keydecoder(key)
        if name not in schema:
            continue
        info = W3TermInfo.from_bytes(info_bytes)
        if info.is_inlined():
            raise ValueError(f"the posting list of {name}:{text!r} is inlined")
        matcher = W3LeafMatcher(terms._postfile, *info.extent(), schema[name].format, term=(name, text))
        while matcher.is_active():
            matcher._read_ids()
            matcher._read_weights()
            matcher._read_values()
            yield name, text, matcher._ids, matcher._weights, matcher._values
            matcher._next_block()


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
