"""Search (S1–S4): the one module the rest of the app calls to find customers and
notes. The engine is Whoosh, on disk in the instance folder; nothing outside this
package knows that.

- :func:`search_customers`, :func:`search_notes`: what a user may find for a typed text.
- :func:`drain`: apply committed changes to the index (done after every commit);
  :func:`deferred`: a bulk write applies them in large batches instead.
- :func:`rebuild`, :func:`check`, :func:`fix`: the ``flask search`` commands;
  :func:`wear`: whether the nightly housekeeping should write the index anew, which it
  does with :func:`rebuild_in_child`.

What someone typed is never parsed as query syntax: it is cut into terms by
:mod:`services.search.analysis` and the query is built from those. Permissions come
from the policy module's scopes, applied inside the index query (so counts and
pages are right) and again on the rows read back from the database (so a stale
index entry cannot show anything it should not).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import joinedload, lazyload, selectinload

from extensions import db
from models import Customer, CustomerNote
from services import policy
from services.search import analysis, backlog, matching, store, sync
from services.search.analysis import QueryWords
from services.search.matching import Query, Terms
from services.search.documents import owner_term
from services.search.build import (
    BuildReport, CheckReport, RebuildRunning, Wear, check, rebuild, rebuild_in_child, wear,
)
from services.search.sync import deferred, drain, fix, mark, mark_customers

log = logging.getLogger(__name__)

__all__ = [
    "BuildReport", "CheckReport", "Found", "QueryWords", "RebuildRunning", "Wear", "check", "deferred", "drain",
    "fix", "init_app", "mark", "mark_customers", "rebuild", "rebuild_in_child", "search_customers", "search_notes",
    "wear",
]

MAX_PAGE = 50


@dataclass
class Found:
    """One page of what a search found: the records (read from the database, in
    rank order), how many there are in all, and what to highlight."""

    items: list = field(default_factory=list)
    total: int = 0
    page: int = 1
    per_page: int = 10
    words: QueryWords | None = None
    from_database: bool = False  # the index was unavailable; a slower scan answered
    tag_counts: dict[int, int] | None = None  # per tag asked for, how many of all the matches carry it

    @property
    def has_next(self) -> bool:
        return self.page * self.per_page < self.total and self.page < MAX_PAGE

    @property
    def has_prev(self) -> bool:
        return self.page > 1


def init_app(app, factory=None) -> None:
    """``factory``: what made ``app`` (create_app), for a second process to make the
    same app (an import's customers indexed on both cores, see sync.ASIDE_MIN)."""
    app.extensions["search.app_factory"] = factory
    sync.install()
    store.allow_open_files()
    store.remove_abandoned_builds(app.config.get("SEARCH_INDEX_DIR") or os.path.join(app.instance_path, "search"))
    from services.tags import tags_changed

    tags_changed.connect(_on_tags_changed, weak=False)


def _on_tags_changed(_sender, customer_ids=(), note_ids=(), **_extra) -> None:
    """A tag was renamed, merged or deleted: redo the entries that carry it."""
    if customer_ids:
        mark(backlog.CUSTOMER, customer_ids)
    if note_ids:
        mark(backlog.NOTE, note_ids)


# ---- queries ---------------------------------------------------------------------------

def _cjk(field_name: str, run: str) -> Terms:
    """A CJK run: its single character, or all of its pairs."""
    return Terms(field_name, tuple(dict.fromkeys(analysis.cjk_terms(run, unigrams=False))))


# The index field holding each customer field a text may match (policy.Scope.fields).
INDEX_FIELDS = {"name": "name", "phones": "phone", "company": "company", "email": "other",
                "address": "other", "tags": "other"}


def _text_fields(scope: policy.Scope | None) -> list[str]:
    """The index fields a typed text may match for ``scope`` (all without one),
    besides name and phone."""
    names = INDEX_FIELDS if scope is None else scope.fields
    return sorted({INDEX_FIELDS[name] for name in names if name in INDEX_FIELDS} - {"name", "phone"})


def customer_query(words: QueryWords, scope: policy.Scope | None = None) -> Query | None:
    """Every part of the typed text must match some field of the customer that
    ``scope`` lets it match (front desk: name, company, phone); those matching in
    the name or phone come first."""
    parts, others = [], _text_fields(scope)
    if words.phone:
        parts.append((Terms("phone", (words.phone[-analysis.EDGE_MAX:],)),
                      *(Terms(name, (words.phone[: analysis.EDGE_MAX],)) for name in others)))
    for run in words.cjk:
        parts.append((_cjk("name", run), *(_cjk(name, run) for name in others)))
    for word in words.usable_words:
        options = [Terms("name", (word,)), *(Terms(name, (word,)) for name in others)]
        if word.isdigit() and len(word) >= analysis.PHONE_SUFFIX_MIN:
            options.append(Terms("phone", (word,)))
        parts.append(tuple(options))
    return Query(tuple(parts), primary=frozenset({"name", "phone"})) if parts else None


def note_query(words: QueryWords, _scope: policy.Scope | None = None) -> Query | None:
    """Every part of the typed text must be in the note (text or tags)."""
    parts = [(Terms("body", (words.phone[: analysis.EDGE_MAX],)),)] if words.phone else []
    parts += [(_cjk("body", run),) for run in words.cjk]
    parts += [(Terms("body", (word,)),) for word in words.usable_words]
    return Query(tuple(parts)) if parts else None


def _scoped(main: Query, scope: policy.Scope, *, archived: bool, tag_ids, notes: bool) -> Query:
    """``main`` restricted to what ``scope`` allows, to archived or active records,
    and to records carrying every tag in ``tag_ids``."""
    require = [[_scope("tag", tag_id)] for tag_id in tag_ids]
    if archived:
        require.append([_scope("archived", "1")])
    if not scope.everything:
        allowed = [_scope("owner", owner_term(owner)) for owner in scope.owners]
        if notes:
            allowed += [_scope("author", author) for author in scope.authors]
        require.append(allowed)
    return main.restricted(require=require, exclude=() if archived else [_scope("archived", "1")])


def _scope(name: str, value) -> str:
    return store.scope_term(name, value)


@dataclass(frozen=True)
class _Kind:
    """What differs between searching customers and searching notes."""

    index: str
    query: object  # (QueryWords, policy.Scope) -> matching.Query | None
    scope: object  # user -> policy.Scope
    visible: object  # user -> select() of the rows the user may see
    model: type
    notes: bool
    ranking: matching.Ranking
    shown: tuple  # loader options: what a result list shows, read with the rows in one query
    tags: object  # the model's tags relationship: read only when asked for (a second query)


_CUSTOMERS = _Kind(store.CUSTOMERS, customer_query, policy.customer_scope,
                   lambda user: policy.visible_customers(user, select(Customer)), Customer, notes=False,
                   ranking=matching.Ranking(store.NAME_LENGTH, ties=store.RECORD),
                   shown=(joinedload(Customer.phones),), tags=Customer.tags)
# A note in a result list shows its customer's name and its author, not its tags or comments.
_NOTES = _Kind(store.NOTES, note_query, policy.note_scope,
               lambda user: policy.readable_notes(user, select(CustomerNote)), CustomerNote, notes=True,
               ranking=matching.Ranking(store.WHEN, ties=store.RECORD, newest=True),
               shown=(joinedload(CustomerNote.customer).options(lazyload(Customer.owner), lazyload(Customer.phones),
                                                                lazyload(Customer.tags)),
                      lazyload(CustomerNote.comments)),
               tags=CustomerNote.tags)


def search_customers(user, text: str | None, *, archived: bool = False, tag_ids=(), page: int = 1,
                     per_page: int = 10, count_tags=(), with_tags: bool = False) -> Found:
    """The customers ``user`` may see that match ``text``: those matching in their
    name or phone first, shorter names first. Archived ones instead of active ones
    when ``archived`` and the policy allows it. With ``count_tags``, also how many
    of them carry each of those tags (not when the database answered).

    The customers come with their owner and phones; with their tags too only when
    ``with_tags`` (one more query: the results page shows them, the dropdown does
    not). Without it, each customer's tags are read when first used, one query
    per customer: a list that shows them asks for them."""
    return _search(_CUSTOMERS, user, text, archived, tag_ids, page, per_page, count_tags, with_tags)


def search_notes(user, text: str | None, *, archived: bool = False, tag_ids=(), page: int = 1,
                 per_page: int = 10, count_tags=(), with_tags: bool = False) -> Found:
    """The notes ``user`` may read that contain ``text``, newest first; notes of
    archived customers instead when ``archived`` and the policy allows it.
    ``count_tags`` and ``with_tags`` as for search_customers; each note comes with
    its customer and author."""
    return _search(_NOTES, user, text, archived, tag_ids, page, per_page, count_tags, with_tags)


def _search(kind: _Kind, user, text, archived: bool, tag_ids, page: int, per_page: int, count_tags=(),
            with_tags: bool = False) -> Found:
    words = QueryWords(text)
    found = Found(page=max(1, min(int(page or 1), MAX_PAGE)), per_page=per_page, words=words)
    scope = kind.scope(user)
    if not kind.notes and "tags" not in scope.fields:
        tag_ids = count_tags = ()  # a customer's tags are not on this user's card: no filtering by them
    archived = archived and policy.may_search_archived(user)
    main = kind.query(words, scope)
    if main is None or scope.nothing:
        return found
    try:
        query = _scoped(main, scope, archived=archived, tag_ids=tag_ids, notes=kind.notes)
        ids, found.total, found.tag_counts = _indexed(kind, query, found.page, per_page, count_tags)
    except store.IndexUnavailable as error:
        return _from_database(kind, user, found, archived, tag_ids, error)
    tags = selectinload(kind.tags) if with_tags else lazyload(kind.tags)
    found.items = _load_in_order(kind.visible(user).options(*kind.shown, tags), kind.model.id, ids)
    return found


def _indexed(kind: _Kind, query: Query, page: int, per_page: int, count_tags) -> tuple[list[int], int, dict]:
    """(ids on ``page``, total, count per tag) from the index. Raises
    IndexUnavailable for any failure of the index (twice: see store.search), so
    that the database answers instead of an error page."""
    terms = {_scope("tag", tag_id): tag_id for tag_id in count_tags}

    def read(searcher):
        matched = matching.search(searcher, query, kind.ranking, limit=page * per_page, count_terms=terms)
        docnums = matched.docnums[(page - 1) * per_page :]
        ids = [int(searcher.stored_fields(docnum)["key"][1:]) for docnum in docnums]
        return ids, matched.total, {terms[term]: n for term, n in matched.counts.items()}

    return store.search(kind.index, read)


def _load_in_order(query, id_column, ids: list[int]) -> list:
    """The rows of ``query`` with ``ids``, in the order of ``ids``; rows the query
    (the policy) leaves out are left out."""
    if not ids:
        return []
    rows = {row.id: row for row in db.session.scalars(query.where(id_column.in_(ids))).unique()}
    return [rows[i] for i in ids if i in rows]


# ---- narrowing the customer list's text filter --------------------------------------------

# The customer list's text filter (services.customers) is plain matching in the
# database: a name or company holding the text as typed, a phone number ending in
# its digits. Without help that reads every customer's name and company and every
# phone number. For the texts whose every match the index is sure to hold, these
# give the ids of a few customers among which all the matches are; the database
# then tests only those. More candidates than this, and the scan is cheaper.
LIST_CANDIDATES_MAX = 2000


def customers_possibly_named(text: str) -> set[int] | None:
    """A set of customer ids (any owner, archived or not) holding every customer
    whose name or company contains ``text`` as typed, when ``text`` is Chinese
    characters only: the index holds each character of both fields and each pair
    of adjacent ones, folded as the query is. None when the index cannot say
    (see :func:`_candidates`), or for any other text."""
    if not analysis.cjk_only(text):
        return None
    words = QueryWords(text)
    if len(words.cjk) != 1:
        return None
    run = words.cjk[0]
    return _candidates(Query(((_cjk("name", run), _cjk("company", run)),)))


def customers_possibly_with_phone_ending(digits: str) -> set[int] | None:
    """A set of customer ids holding every customer with a phone number ending in
    ``digits`` (four or more: the index holds every ending of four digits or
    more of each number). None when the index cannot say (see :func:`_candidates`)."""
    if len(digits) < analysis.PHONE_SUFFIX_MIN or not digits.isdigit():
        return None
    return _candidates(Query(((Terms("phone", (digits,)),),)))


def _candidates(query: Query) -> set[int] | None:
    """The ids of the customers matching ``query`` in the live index; None when
    they are more than LIST_CANDIDATES_MAX, the index is unavailable, or a
    committed change to a customer is not in the index yet. The backlog is read in
    the caller's transaction before the index is opened: on SQLite (one snapshot
    per transaction) a change the caller's snapshot holds is then either waiting in
    the backlog (None) or already in the searcher's index, which is at least as new.
    PostgreSQL reads each statement at its own snapshot: a customer renamed in the
    few milliseconds between the backlog's read and the list's may be left out of
    that one list."""
    if backlog.customers_pending(db.session):
        return None
    try:
        records = store.search(store.CUSTOMERS, lambda searcher: matching.matching_records(
            searcher, query, _CUSTOMERS.ranking, LIST_CANDIDATES_MAX))
    except store.IndexUnavailable:
        return None
    return None if records is None else set(records)


# ---- answering from the database while the index is unavailable -------------------------

def _from_database(kind: _Kind, user, found: Found, archived: bool, tag_ids, error) -> Found:
    from services.search import fallback

    log.warning("search index unavailable (%s); answering from the database", error)
    try:
        sync.rebuild_if_damaged()
    except Exception:
        log.exception("could not start rebuilding the search index")
    scan = fallback.notes if kind.notes else fallback.customers
    found.from_database = True
    found.items, found.total = scan(user, found.words, archived=archived, tag_ids=tag_ids,
                                    page=found.page, per_page=found.per_page)
    return found
