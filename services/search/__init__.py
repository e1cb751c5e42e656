"""Search (S1–S4): the one module the rest of the app calls to find customers and
notes. The engine is Whoosh, on disk in the instance folder; nothing outside this
package knows that.

- :func:`search_customers`, :func:`search_notes`: what a user may find for a typed text.
- :func:`drain`: apply committed changes to the index (done after every commit).
- :func:`rebuild`, :func:`check`, :func:`fix`: the ``flask search`` commands.

What someone typed is never parsed as query syntax: it is cut into terms by
:mod:`services.search.analysis` and the query is built from those. Permissions come
from the policy module's scopes, applied inside the index query (so counts and
pages are right) and again on the rows read back from the database (so a stale
index entry cannot show anything it should not).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import select
from whoosh import query as wq

from extensions import db
from models import Customer, CustomerNote
from services import policy
from services.search import analysis, store, sync
from services.search.analysis import QueryWords
from services.search.documents import owner_term
from services.search.build import BuildReport, CheckReport, RebuildRunning, check, fix, rebuild
from services.search.sync import drain, mark, mark_customers

log = logging.getLogger(__name__)

__all__ = [
    "BuildReport", "CheckReport", "Found", "QueryWords", "RebuildRunning", "check", "drain", "fix",
    "init_app", "mark", "mark_customers", "rebuild", "search_customers", "search_notes",
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

    @property
    def has_next(self) -> bool:
        return self.page * self.per_page < self.total and self.page < MAX_PAGE

    @property
    def has_prev(self) -> bool:
        return self.page > 1


def init_app(app) -> None:
    sync.install()
    from services.tags import tags_changed

    tags_changed.connect(_on_tags_changed, weak=False)


def _on_tags_changed(_sender, customer_ids=(), note_ids=(), **_extra) -> None:
    """A tag was renamed, merged or deleted: redo the entries that carry it."""
    if customer_ids:
        mark(sync.CUSTOMER, customer_ids)
    if note_ids:
        mark(sync.NOTE, note_ids)


# ---- queries ---------------------------------------------------------------------------

def _term_query(field_name: str, run: str) -> wq.Query:
    """A CJK run: its single character, or all of its pairs."""
    terms = list(dict.fromkeys(analysis.cjk_terms(run, unigrams=False)))
    return wq.And([wq.Term(field_name, term) for term in terms]) if len(terms) > 1 else wq.Term(field_name, terms[0])


def customer_query(words: QueryWords) -> wq.Query | None:
    """Every part of the typed text must match some field of the customer."""
    parts = []
    if words.phone:
        parts.append(wq.Or([wq.Term("phone", words.phone[-analysis.EDGE_MAX:]),
                            wq.Term("other", words.phone[: analysis.EDGE_MAX])]))
    for run in words.cjk:
        parts.append(wq.Or([_term_query(name, run) for name in ("name", "other")]))
    for word in words.usable_words:
        options = [wq.Term("name", word), wq.Term("other", word)]
        if word.isdigit() and len(word) >= analysis.PHONE_SUFFIX_MIN:
            options.append(wq.Term("phone", word))
        parts.append(wq.Or(options))
    return _all_of(parts)


def note_query(words: QueryWords) -> wq.Query | None:
    """Every part of the typed text must be in the note (text or tags)."""
    parts = [wq.Term("body", words.phone[: analysis.EDGE_MAX])] if words.phone else []
    parts += [_term_query("body", run) for run in words.cjk]
    parts += [wq.Term("body", word) for word in words.usable_words]
    return _all_of(parts)


def _all_of(parts: list) -> wq.Query | None:
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else wq.And(parts)


def _scoped(main: wq.Query, scope: policy.Scope, *, archived: bool, tag_ids, notes: bool) -> wq.Query:
    """``main`` restricted to what ``scope`` allows, to archived or active records,
    and to records carrying every tag in ``tag_ids``. The restrictions weigh next
    to nothing, so they do not change the order. Active records are "not archived"
    (AndNot), so that the large set of active ones is never listed."""
    restrictions = [_scope("tag", tag_id) for tag_id in tag_ids]
    if archived:
        restrictions.append(_scope("archived", "1"))
    if not scope.everything:
        allowed = [_scope("owner", owner_term(owner)) for owner in sorted(scope.owners, key=str)]
        if notes:
            allowed += [_scope("author", author) for author in sorted(scope.authors)]
        restrictions.append(wq.Or(allowed))
    query = wq.And([main, *restrictions]) if restrictions else main
    return query if archived else wq.AndNot(query, _scope("archived", "1"))


# Not 0: Whoosh skips documents whose best possible score is 0, and a restriction
# of boost 0 inside an Or then loses matches. (ConstantScoreQuery, the other way
# not to score, lists every document id on every query.)
_RESTRICTION_BOOST = 1e-9


def _scope(name: str, value) -> wq.Term:
    return wq.Term("scope", store.scope_term(name, value), boost=_RESTRICTION_BOOST)


@dataclass(frozen=True)
class _Kind:
    """What differs between searching customers and searching notes."""

    index: str
    query: object  # QueryWords -> whoosh query | None
    scope: object  # user -> policy.Scope
    visible: object  # user -> select() of the rows the user may see
    model: type
    notes: bool
    order: tuple = ()


_CUSTOMERS = _Kind(store.CUSTOMERS, customer_query, policy.customer_scope,
                   lambda user: policy.visible_customers(user, select(Customer)), Customer, notes=False)
_NOTES = _Kind(store.NOTES, note_query, policy.note_scope,
               lambda user: policy.readable_notes(user, select(CustomerNote)), CustomerNote, notes=True,
               order=(("sortedby", "when"), ("reverse", True)))


def search_customers(user, text: str | None, *, archived: bool = False, tag_ids=(), page: int = 1,
                     per_page: int = 10) -> Found:
    """The customers ``user`` may see that match ``text``, best first. Archived ones
    instead of active ones when ``archived`` and the policy allows it."""
    return _search(_CUSTOMERS, user, text, archived, tag_ids, page, per_page)


def search_notes(user, text: str | None, *, archived: bool = False, tag_ids=(), page: int = 1,
                 per_page: int = 10) -> Found:
    """The notes ``user`` may read that contain ``text``, newest first; notes of
    archived customers instead when ``archived`` and the policy allows it."""
    return _search(_NOTES, user, text, archived, tag_ids, page, per_page)


def _search(kind: _Kind, user, text, archived: bool, tag_ids, page: int, per_page: int) -> Found:
    words = QueryWords(text)
    found = Found(page=max(1, min(int(page or 1), MAX_PAGE)), per_page=per_page, words=words)
    scope = kind.scope(user)
    archived = archived and policy.may_search_archived(user)
    main = kind.query(words)
    if main is None or scope.nothing:
        return found
    try:
        query = _scoped(main, scope, archived=archived, tag_ids=tag_ids, notes=kind.notes)
        ids, found.total = _indexed(kind.index, query, found.page, per_page, **dict(kind.order))
    except store.IndexUnavailable as error:
        return _from_database(kind, user, found, archived, tag_ids, error)
    found.items = _load_in_order(kind.visible(user), kind.model.id, ids)
    return found


def _indexed(which: str, query: wq.Query, page: int, per_page: int, **order) -> tuple[list[int], int]:
    """(ids on ``page``, total) from the index. Raises IndexUnavailable for any
    failure of the index, so that the database answers instead of an error page."""
    try:
        searcher = store.searcher(which)
        results = searcher.search(query, limit=page * per_page, **order)
        ids = [int(hit["key"][1:]) for hit in results[(page - 1) * per_page :]]
        # Skipping blocks that cannot reach the top leaves len(results) short of
        # the real count (Whoosh's ResultsPage pages by it); count the matches
        # then, without scoring them.
        if results.has_exact_length():
            return ids, len(results)
        return ids, len(searcher.search(query, limit=None, scored=False))
    except store.IndexUnavailable:
        raise
    except Exception as error:  # a damaged file can fail in many ways
        # Logged without the traceback: it holds the damaged file open.
        log.warning("search index %s failed: %r", which, error)
        failure = repr(error)
    store.release_leaked_files()
    raise store.IndexUnavailable(failure)


def _load_in_order(query, id_column, ids: list[int]) -> list:
    """The rows of ``query`` with ``ids``, in the order of ``ids``; rows the query
    (the policy) leaves out are left out."""
    if not ids:
        return []
    rows = {row.id: row for row in db.session.scalars(query.where(id_column.in_(ids)))}
    return [rows[i] for i in ids if i in rows]


# ---- answering from the database while the index is unavailable -------------------------

def _from_database(kind: _Kind, user, found: Found, archived: bool, tag_ids, error) -> Found:
    from services.search import fallback

    log.warning("search index unavailable (%s); answering from the database", error)
    try:
        sync.start_rebuild()
    except Exception:
        log.exception("could not start rebuilding the search index")
    scan = fallback.notes if kind.notes else fallback.customers
    found.from_database = True
    found.items, found.total = scan(user, found.words, archived=archived, tag_ids=tag_ids,
                                    page=found.page, per_page=found.per_page)
    return found
