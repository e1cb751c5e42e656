"""Which documents of the live index match a query, how many, and which come first.

Whoosh's own ``Searcher.search`` walks the matches one posting at a time in Python,
scoring or sorting each one: quick for a name that a few customers have, slow for a
word in 45,000 notes, and several times slower again once the owner filter of a
sales account is intersected posting by posting. Here every term's postings are
read a block at a time into a set of document numbers, and the query's "all of",
"any of" and "none of" are set operations, done in C. Counts are exact.

Results are ordered without scoring (``Query.primary`` below): notes newest first;
customers that match in their name or phone before those that match only in the
company, email, address or tags, shorter names first. Ties go to the newer record
(the larger id, from a column of each document): the same order in every segment
and after any merge, so that a merge between two pages of results moves no record
from one page to the other.

Segments of an index never change after they are written (only their list of
deleted documents grows), so what is read from a segment once is kept per segment
and reused until the segment is merged away: the documents of a user's scope
filter, the ordering column, and the documents of frequent terms (有限, 公司, 客户:
a sixteenth of the segment or more), which would otherwise be decoded again for
every query that names them. Those are kept as one byte per document
(:class:`_Dense`), so that combining them is done on whole integers. A rarer term
is read afresh by each query: its list is short.

Reading posting blocks and columns relies on Whoosh's private structures: that is
done in :mod:`services.search.whoosh_internals`, whose readers answer None when a
structure is not as expected (the slower public API answers then).
"""

from __future__ import annotations

import heapq
import threading
from array import array
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass
from functools import reduce
from itertools import compress, filterfalse, islice, repeat

from services.search import whoosh_internals as internals

SCOPE = "scope"


@dataclass(frozen=True)
class Terms:
    """Every one of ``terms`` in ``field``."""

    field: str
    terms: tuple[str, ...]


@dataclass(frozen=True)
class Query:
    """What to match. Every part must match through one of its alternatives.

    ``require``: groups of ``scope`` terms; a match carries at least one term of each
    group (the user's owners/authors, each required tag, ``archived:1``).
    ``exclude``: ``scope`` terms a match must not carry (``archived:1``).
    ``primary``: fields that make a better match (customers: name and phone); the
    more parts matched through them, the earlier the record comes.
    """

    parts: tuple[tuple[Terms, ...], ...]
    require: tuple[frozenset, ...] = ()
    exclude: frozenset = frozenset()
    primary: frozenset = frozenset()

    def terms(self):
        """Every (field, term) the query looks up, restrictions left out."""
        return [(option.field, term) for part in self.parts for option in part for term in option.terms]

    def restricted(self, *, require=(), exclude=()) -> Query:
        return Query(self.parts, tuple(frozenset(group) for group in require), frozenset(exclude), self.primary)


@dataclass(frozen=True)
class Ranking:
    """Orders one segment's matches: by the number of primary parts matched (most
    first), then ascending (``newest=False``) or descending by the ``column``, then
    by the ``ties`` column (the record's id), largest first."""

    column: str
    ties: str
    newest: bool = False


@dataclass
class Matched:
    docnums: list[int]  # the first ``limit`` matches, in order
    total: int  # how many match
    counts: dict[str, int]  # per ``scope`` term asked for, how many of the matches carry it


def search(searcher, query: Query, ranking: Ranking, limit: int, count_terms=()) -> Matched:
    """The first ``limit`` matches of ``query`` in the index of ``searcher``, in
    ``ranking`` order, with the total and the counts of ``count_terms``."""
    total, ranked, counts = 0, [], dict.fromkeys(count_terms, 0)
    for reader, offset in _leaves(searcher):
        docs, primary = _matches(reader, query)
        if docs:
            total += len(docs)
            ranked += _first(reader, offset, docs, primary, ranking, limit)
            for term in counts:
                counts[term] += _overlap(docs, _scope_docs(reader, term))
    ranked.sort()
    return Matched([docnum for _key, docnum in ranked[:limit]], total, counts)


def all_matches(searcher, query: Query) -> set[int]:
    """Every matching document number (the benchmark's recall; tests)."""
    found: set[int] = set()
    for reader, offset in _leaves(searcher):
        docs, _primary = _matches(reader, query)
        found.update(d + offset for d in docs)
    return found


def matching_records(searcher, query: Query, ranking: Ranking, limit: int) -> list[int] | None:
    """The record ids (``ranking.ties``) of every match of ``query``, unordered, or
    None when there are more than ``limit``."""
    records: list[int] = []
    for reader, _offset in _leaves(searcher):
        docs, _primary = _matches(reader, query)
        if len(records) + len(docs) > limit:
            return None
        column = _records(reader, ranking)
        records.extend(map(column.__getitem__, docs))
    return records


def _leaves(searcher):
    return searcher.reader().leaf_readers()


# ---- matching one segment ----------------------------------------------------------

def _matches(reader, query: Query) -> tuple[set[int] | _Dense, list | None]:
    """The segment's matching documents, and per part those it matched through a
    primary field (None when the query has no primary fields)."""
    docs = None
    primary = []
    frequency = _Frequencies(reader)
    for part in sorted(query.parts, key=lambda p: _part_size(frequency, p)):
        best, found = set(), set()
        for option in part:
            matched = _all_terms(reader, option, docs, frequency)
            found = _or(found, matched)
            if option.field in query.primary:
                best = _or(best, matched)
        docs = found
        primary.append(best)
        if not docs:
            return set(), None
    docs = docs or set()
    for group in query.require:
        docs = reduce(_or, (_and(docs, _scope_docs(reader, term)) for term in group), set())
    for term in query.exclude:
        docs = _minus(docs, _scope_docs(reader, term))
    deleted = internals.deleted_docs(reader)
    if deleted and docs:
        docs = _minus(docs, deleted)
    return docs, [_and(best, docs) for best in primary] if query.primary else None


class _Frequencies(dict):
    """In how many of the segment's documents (deleted ones included) each term is
    posted, 0 if in none: looked up in the terms file once per query."""

    def __init__(self, reader):
        super().__init__()
        self.reader = reader

    def __call__(self, field_name: str, term: str) -> int:
        key = (field_name, term)
        if key not in self:
            self[key] = self.reader.doc_frequency(field_name, term)
        return self[key]


def _part_size(frequency: _Frequencies, part) -> int:
    """A cheap upper bound of a part's matches, to intersect the smallest first."""
    return sum(min((frequency(option.field, term) for term in option.terms), default=0) for option in part)


def _all_terms(reader, option: Terms, within, frequency: _Frequencies):
    """The documents (of ``within``, if given) that have every term of ``option``."""
    docs = within
    for term in sorted(option.terms, key=lambda t: frequency(option.field, t)):
        docs = _postings(reader, option.field, term, among=docs, frequency=frequency(option.field, term))
        if not docs:
            break
    return docs or set()


# Below one candidate per this many postings, only the blocks that may hold a
# candidate are decoded (a block's header tells its last document number).
_SPARSE = 16


def _postings(reader, field_name: str, term: str, among=None, frequency: int | None = None):
    """The document numbers posted under the term, deleted ones included: all of
    them, or those of ``among``. A set, or for a frequent term the kept _Dense.
    (``frequency``: the term's document frequency, if looked up already.)"""
    if frequency is None:
        frequency = reader.doc_frequency(field_name, term)
    if not frequency:
        return set()
    if frequency >= _dense_minimum(reader):
        dense = _kept.get((internals.segment_key(reader), field_name, term),
                          lambda: _read_dense(reader, field_name, term, frequency))
        return dense if among is None else _and(among, dense)
    sparse = among is not None and len(among) * _SPARSE < frequency
    ids = internals.posting_ids(reader, field_name, term, sorted(among) if sparse else None)
    if ids is not None and (sparse or len(ids) == frequency):
        return set(ids) if among is None else _and(among, ids)
    found = set(reader.postings(field_name, term).all_ids())  # unexpected layout: the slow way
    return found if among is None else _and(among, found)


# A term posted in this share of a segment's documents or more is kept as a _Dense,
# if it is in DENSE_FLOOR documents or more (a small segment keeps none).
DENSE_SHARE = 16
DENSE_FLOOR = 4096


def _dense_minimum(reader) -> int:
    return max(DENSE_FLOOR, reader.doc_count_all() // DENSE_SHARE)


class _Dense:
    """Some of a segment's documents as one byte per document, 1 for a member.
    Membership and walks are C calls on the bytes (``map.__getitem__``); two of them
    meet as whole integers (``number``): ``&``, ``|`` and ``& ~`` over every
    document at once."""

    __slots__ = ("map", "_number", "_size")

    def __init__(self, map_: bytes, number: int | None = None):
        self.map, self._number, self._size = map_, number, None

    @classmethod
    def of_number(cls, number: int, count: int) -> _Dense:
        return cls(number.to_bytes(count, "little"), number)

    @classmethod
    def of_members(cls, members, count: int) -> _Dense:
        marks = bytearray(count)
        _mark(marks, members, 1)
        return cls(bytes(marks))

    @property
    def number(self) -> int:
        if self._number is None:
            self._number = int.from_bytes(self.map, "little")
        return self._number

    def __len__(self) -> int:
        if self._size is None:
            self._size = self.number.bit_count()
        return self._size

    def __iter__(self):
        return compress(range(len(self.map)), self.map)


def _mark(marks: bytearray, members, value: int) -> None:
    deque(map(marks.__setitem__, members, repeat(value)), maxlen=0)  # a loop in C


def _and(a, b):
    """The documents in both (sets, _Dense or, for ``b``, any iterable)."""
    if isinstance(a, _Dense) and isinstance(b, _Dense):
        return _Dense.of_number(a.number & b.number, len(a.map))
    if isinstance(a, _Dense):
        a, b = b, a
    if isinstance(b, _Dense):
        return set(filter(b.map.__getitem__, a))
    return a.intersection(b)


def _or(a, b):
    if not b:
        return a
    if not a:
        return b
    if isinstance(a, _Dense) and isinstance(b, _Dense):
        return _Dense.of_number(a.number | b.number, len(a.map))
    if isinstance(b, _Dense):
        a, b = b, a
    if isinstance(a, _Dense):
        marks = bytearray(a.map)
        _mark(marks, b, 1)
        return _Dense(bytes(marks))
    return a.union(b)


def _minus(a, b):
    """The documents of ``a`` not in ``b``."""
    if not b or not a:
        return a
    if isinstance(a, _Dense) and isinstance(b, _Dense):
        return _Dense.of_number(a.number & ~b.number, len(a.map))
    if isinstance(a, _Dense):
        marks = bytearray(a.map)
        _mark(marks, b, 0)
        return _Dense(bytes(marks))
    if isinstance(b, _Dense):
        return set(filterfalse(b.map.__getitem__, a))
    return a.difference(b)


def _overlap(a, b) -> int:
    """How many documents are in both."""
    if isinstance(a, _Dense) and isinstance(b, _Dense):
        return (a.number & b.number).bit_count()
    return len(_and(a, b))


def _read_dense(reader, field_name: str, term: str, frequency: int) -> _Dense:
    marks = internals.posting_marks(reader, field_name, term, frequency)
    if marks is None:  # unexpected layout: the slow way
        return _Dense.of_members(reader.postings(field_name, term).all_ids(), reader.doc_count_all())
    return _Dense(marks)


# ---- what is kept per segment ------------------------------------------------------

class _SegmentCache:
    """Least recently used sets and arrays, keyed by segment, bounded by about the
    memory they take (``capacity`` bytes)."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.size = 0
        self.entries: OrderedDict = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key, make):
        with self.lock:
            if key in self.entries:
                self.entries.move_to_end(key)
                return self.entries[key]
        value = make()
        with self.lock:
            if key not in self.entries:
                self.entries[key] = value
                self.size += _weight(value)
                while self.size > self.capacity and len(self.entries) > 1:
                    _key, old = self.entries.popitem(last=False)
                    self.size -= _weight(old)
        return value

    def clear(self, which=None) -> None:
        """Drop every entry, or those for which ``which(key, value)`` is true."""
        with self.lock:
            for key in [key for key, value in self.entries.items() if which is None or which(key, value)]:
                self.size -= _weight(self.entries.pop(key))


def _weight(value) -> int:
    """About the bytes ``value`` takes: a set of document numbers ~64 per member,
    an array of 64-bit numbers 8, a _Dense 2 per document (its bytes and, once
    used, the same as a number)."""
    if isinstance(value, _Dense):
        return 2 * len(value.map)
    return 8 * len(value) if isinstance(value, array) else 64 * len(value)


# A user's scope (owner:pool, owner:<id>, author:<id>, archived:1) is a few terms
# shared by many users; at 500k notes the largest, owner:pool, is ~10 MB.
_kept = _SegmentCache(capacity=64 * 2**20)


def _scope_docs(reader, term: str):
    """A scope term's documents, kept however few (the same users ask again and again)."""
    frequency = reader.doc_frequency(SCOPE, term)
    if frequency >= _dense_minimum(reader):
        return _postings(reader, SCOPE, term, frequency=frequency)  # kept there
    return _kept.get((internals.segment_key(reader), SCOPE, term), lambda: frozenset(_postings(reader, SCOPE, term)))


# Record ids are below this (PostgreSQL's integer), and column values below 2**32
# (a note's time in seconds, until 2106): a rank key fits in 64 bits.
_RECORDS = 2**31


def _rank_keys(reader, ranking: Ranking) -> array:
    """Per document of the segment, one integer, larger first: the column's value
    (negated for ascending order) times ``_RECORDS``, plus the record's id — distinct
    per live document. (``_value`` gives the column's value back.)"""

    def make():
        values, records = _column(reader, ranking.column), _records(reader, ranking)
        sign = 1 if ranking.newest else -1
        return array("q", [sign * value * _RECORDS + record for value, record in zip(values, records)])

    return _kept.get((internals.segment_key(reader), "rank", ranking.column, ranking.newest), make)


def _rank_order(reader, ranking: Ranking) -> array:
    """The segment's document numbers, first (largest key) first."""
    return _kept.get((internals.segment_key(reader), "order", ranking.column, ranking.newest),
                     lambda: _order_of(_rank_keys(reader, ranking)))


def _records(reader, ranking: Ranking) -> array:
    """Per document of the segment, its record's id."""
    return _kept.get((internals.segment_key(reader), "column", ranking.ties), lambda: _column(reader, ranking.ties))


def _record_order(reader, ranking: Ranking) -> array:
    """The segment's document numbers, the newest record first."""
    return _kept.get((internals.segment_key(reader), "order", ranking.ties),
                     lambda: _order_of(_records(reader, ranking)))


def _order_of(keys: array) -> array:
    return array("q", sorted(range(len(keys)), key=keys.__getitem__, reverse=True))


def _value(key: int, record: int, ranking: Ranking) -> int:
    return (key - record) // _RECORDS if ranking.newest else (record - key) // _RECORDS


# A step of a walk costs about half what a member costs a heap (C against Python).
_WALK_STEPS_PER_MEMBER = 2


def _top(docs, limit: int, count: int, keys=None, order=None) -> list[int]:
    """The ``limit`` members of ``docs`` with the largest ``keys`` (by default the
    largest document numbers), largest first. When ``docs`` is a large part of the
    segment's ``count`` documents, walking the segment's order (in C) meets them
    soonest; otherwise a heap over ``docs`` (in Python) is quicker. The walk gives
    up after as many steps as the heap would cost, for members that sit late in the
    order: a character common in three-character names lies past every
    two-character name."""
    size = len(docs)
    if size * size >= limit * count:
        if isinstance(docs, _Dense):
            member = docs.map.__getitem__
        else:
            member = (docs if isinstance(docs, (set, frozenset)) else set(docs)).__contains__
        walk = range(count - 1, -1, -1) if order is None else order
        steps = _WALK_STEPS_PER_MEMBER * size
        found = list(islice(filter(member, islice(walk, steps)), limit))
        if len(found) == limit or steps >= count:
            return found
    return heapq.nlargest(limit, docs, key=None if keys is None else keys.__getitem__)


def _column(reader, name: str) -> array:
    """The segment's whole numeric column (zeros where it has none: an index built
    before the column existed is rebuilt, meanwhile it still answers)."""
    count = reader.doc_count_all()
    if not reader.has_column(name):
        return array("q", bytes(8 * count))
    values = internals.numeric_column(reader, name)
    if values is None:  # unexpected layout: value by value
        column = reader.column_reader(name, translate=False)
        values = array("q", (column[d] for d in range(count)))
    return values


def forget(*, terms_only: bool = False) -> None:
    """Drop what is kept, or only the frequent terms of what users type (tests; the
    benchmark's first-use figures)."""
    _kept.clear((lambda key, value: isinstance(value, _Dense) and key[1] != SCOPE) if terms_only else None)


# ---- ordering ----------------------------------------------------------------------

def _first(reader, offset: int, docs, primary: list | None, ranking: Ranking,
           limit: int) -> list:
    """The segment's first ``limit`` matches as (sort key, document number) pairs;
    the keys compare across segments. ``primary`` is None for notes; for customers,
    per part the matches through a primary field."""
    keys, records, count = _rank_keys(reader, ranking), _records(reader, ranking), reader.doc_count_all()
    tiers: dict = {}
    if primary and len(primary) == 1:  # one part: matched through a primary field or not
        tiers[1] = primary[0]
    elif primary:
        counts = Counter()
        for best in primary:
            counts.update(best)
        for docnum, n in counts.items():
            tiers.setdefault(n, []).append(docnum)
    rest = reduce(_minus, tiers.values(), docs)
    if primary is None and rest:  # notes: all by the column
        tiers[0] = rest
    out = []
    for n, members in tiers.items():
        order = _rank_order(reader, ranking) if len(members) ** 2 >= limit * count else None
        for docnum in _top(members, limit, count, keys, order):
            value = _value(keys[docnum], records[docnum], ranking)
            out.append(((-n, -value if ranking.newest else value, -records[docnum]), docnum + offset))
    if primary is not None and rest:  # customers matched only through other fields: the newest first
        order = _record_order(reader, ranking) if len(rest) ** 2 >= limit * count else None
        out += [((0, 0, -records[docnum]), docnum + offset) for docnum in _top(rest, limit, count, records, order)]
    return out
