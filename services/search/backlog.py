"""The search backlog's keys and what they change in the index (S4).

A key is (kind, id): a customer's entry, a note's entry, or the entries of all of
a customer's notes. Both the live updates (sync) and a rebuild's catch-up (build)
turn keys into Changes here, so neither depends on the other for it.
"""

from __future__ import annotations

from sqlalchemy import insert
from sqlalchemy.orm import Session

from extensions import db
from models import CustomerNote, SearchBacklog
from services.search import documents, store
from services.search import whoosh_internals as internals

CUSTOMER, NOTE, CUSTOMER_NOTES = "customer", "note", "customer_notes"


def record(session, connection, keys: set[tuple[str, int]]) -> None:
    """Write ``keys`` (kind, id) to the backlog in ``session``'s transaction, once each."""
    written = session.info.setdefault("search_written", set())
    new = keys - written
    if not new:
        return
    connection.execute(insert(SearchBacklog.__table__),
                       [{"kind": kind, "ref_id": ref_id, "applied_live": False} for kind, ref_id in sorted(new)])
    written.update(new)
    session.info["search_pending"] = True


class Changes:
    """What to delete from and add to each index for a set of backlog keys."""

    def __init__(self):
        self.delete = {store.CUSTOMERS: set(), store.NOTES: set()}  # (field, term)
        self.add = {store.CUSTOMERS: {}, store.NOTES: {}}  # key → document

    @classmethod
    def load(cls, session, keys) -> Changes:
        changes = cls()
        by_kind: dict[str, set[int]] = {CUSTOMER: set(), NOTE: set(), CUSTOMER_NOTES: set()}
        for kind, ref_id in keys:
            by_kind.setdefault(kind, set()).add(ref_id)
        for chunk in chunks(sorted(by_kind[CUSTOMER]), 500):
            found, _missing = documents.customer_documents(session, chunk)
            changes.delete[store.CUSTOMERS].update(("key", documents.customer_key(i)) for i in chunk)
            changes.add[store.CUSTOMERS].update((d["key"], d) for d in found)
        for chunk in chunks(sorted(by_kind[NOTE]), 500):
            changes.delete[store.NOTES].update(("key", documents.note_key(i)) for i in chunk)
            found = documents.note_documents(session, CustomerNote.id.in_(chunk))
            changes.add[store.NOTES].update((d["key"], d) for d in found)
        for chunk in chunks(sorted(by_kind[CUSTOMER_NOTES]), 100):
            changes.delete[store.NOTES].update(("scope", store.scope_term("customer", i)) for i in chunk)
            found = documents.note_documents(session, CustomerNote.customer_id.in_(chunk))
            changes.add[store.NOTES].update((d["key"], d) for d in found)
        return changes

    def apply(self, generation: str, base: str | None = None) -> list[list[int]]:
        """Write to the indexes of ``generation``, each change as a new segment (never
        merging: see sync.merge_small). Deletes first, then adds, so that a document
        listed twice ends up there once. Returns, for each index written, the
        document counts of its segments (for the caller to decide on a merge)."""
        written = []
        for which in (store.CUSTOMERS, store.NOTES):
            if not self.delete[which] and not self.add[which]:
                continue
            ix = store.open_index(which, generation, base)
            writer = store.writer(ix)
            try:
                for field, term in self.delete[which]:
                    writer.delete_by_term(field, term)
                for document in self.add[which].values():
                    writer.add_document(**document)
            except BaseException:
                store.discard(writer)
                raise
            written.append(internals.writer_segment_sizes(writer))
            store.commit(writer, merge=False)
            store.tidy(ix)
        return written


def chunks(items: list, size: int):
    """``items`` in slices of ``size`` (for IN lists of bounded length)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def reading_session() -> Session:
    return Session(db.engine)
