"""The search backlog's keys and what they change in the index (S4).

A key is (kind, id): a customer's entry, a note's entry, or the entries of all of
a customer's notes. Both the live updates (sync) and a rebuild's catch-up (build)
turn keys into Changes here, so neither depends on the other for it.
"""

from __future__ import annotations

import logging

from sqlalchemy import insert
from sqlalchemy.orm import Session
from whoosh import index

from extensions import db
from models import CustomerNote, SearchBacklog
from services.search import documents, store
from services.search import whoosh_internals as internals

log = logging.getLogger(__name__)

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


def customers_pending(session) -> bool:
    """Whether a committed change to a customer (``session``'s snapshot) is not in
    the live index yet: its row waits in the backlog."""
    from sqlalchemy import select

    return session.scalar(select(SearchBacklog.id).where(
        SearchBacklog.kind == CUSTOMER, SearchBacklog.applied_live.is_(False)).limit(1)) is not None


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
        with BulkWriters(generation, base) as writers:
            writers.write(self)
        return writers.sizes


class BulkWriters:
    """One writer per index of ``generation``, opened when first needed, taking the
    Changes of many chunks of backlog keys and committing them as one new segment per
    index (never merging): a bulk write (an import) costs about what building that
    many documents costs, where a segment per chunk made Whoosh sort and write each
    term again per segment. Each chunk's deletes reach only the segments committed
    before (never what an earlier chunk added), so a document two chunks name (a note,
    and all notes of its customer) is added once, by the first. ``sizes`` after the
    block: per index written, the document counts of its segments. A failure
    discards every writer: nothing of the block is committed."""

    def __init__(self, generation: str, base: str | None = None, *, limitmb: int | None = None):
        self.generation, self.base, self.limitmb = generation, base, limitmb
        self.writers: dict[str, tuple] = {}  # which → (ix, writer)
        self.added: dict[str, set[str]] = {store.CUSTOMERS: set(), store.NOTES: set()}
        self.sizes: list[list[int]] = []
        self.written_apart: dict[str, tuple] = {}  # which → (segment, its folder)

    def __enter__(self) -> BulkWriters:
        return self

    def write(self, changes: Changes) -> None:
        for which in (store.CUSTOMERS, store.NOTES):
            if not changes.delete[which] and not changes.add[which]:
                continue
            writer = self._writer(which)
            delete_terms(writer, changes.delete[which])
            added = self.added[which]
            for key, document in changes.add[which].items():
                if key not in added:
                    added.add(key)
                    writer.add_document(**document)

    def add_segment(self, which: str, folder: str, keys: list[str], drop: set[str]) -> None:
        """Commit with this block the one segment of the index in ``folder`` (written
        by another process; ``keys``: its documents' keys in order), without those of
        its documents whose key is in ``drop`` (written meanwhile from a later or the
        same state). Deleting its keys' old entries is the caller's, before."""
        segment = internals.only_segment(index.open_dir(folder))
        for docnum, key in enumerate(keys):
            if key in drop:
                segment.delete_document(docnum)
        self.added[which].update(keys)
        self._writer(which)
        self.written_apart[which] = (segment, folder)

    def _writer(self, which: str):
        if which not in self.writers:
            ix = store.open_index(which, self.generation, self.base)
            options = {"limitmb": self.limitmb} if self.limitmb else {}
            self.writers[which] = (ix, store.writer(ix, **options))
        return self.writers[which][1]

    def __exit__(self, kind, _error, _trace) -> None:
        if kind is not None:
            for _ix, writer in self.writers.values():
                store.discard(writer)
            return
        for which in (store.CUSTOMERS, store.NOTES):  # the same order as before: customers first
            if which in self.writers:
                ix, writer = self.writers.pop(which)
                apart = self.written_apart.pop(which, None)
                sizes = internals.writer_segment_sizes(writer)
                self.sizes.append(sizes + [apart[0].doc_count_all()] if apart else sizes)
                try:
                    if apart:
                        store.move_segment(apart[0], apart[1], ix.storage.folder)
                        store.commit(writer, mergetype=internals.replacing((), apart[0]))
                    else:
                        store.commit(writer, merge=False)
                except BaseException:
                    for _ix, other in self.writers.values():
                        store.discard(other)
                    raise
                store.tidy(ix)


def delete_terms(writer, terms) -> int:
    """Delete from ``writer``'s index every document holding one of ``terms``
    ((field, term) pairs), looking each term up in the terms table of each segment:
    an absent one (a new customer's key) costs one lookup, where
    ``writer.delete_by_term`` builds and runs a query per term. The terms tables are
    read through readers kept open between saves (internals.live_documents_holding);
    should that fail, through a reader of the writer's. Returns how many documents
    were deleted."""
    if not terms:
        return 0
    try:
        found = internals.live_documents_holding(writer, terms)
    except Exception:
        log.warning("search: the kept terms readers failed; reading the segments afresh", exc_info=True)
        internals.release_held_terms()
    else:
        for docnum in found:
            writer.delete_document(docnum)
        return len(found)
    deleted = 0
    reader = writer.reader()
    try:
        for leaf, offset in reader.leaf_readers():
            for field, term in terms:
                if (field, term) in leaf:
                    for docnum in leaf.postings(field, term).all_ids():
                        if not leaf.is_deleted(docnum):
                            writer.delete_document(offset + docnum)
                            deleted += 1
    finally:
        reader.close()
    return deleted


def chunks(items: list, size: int):
    """``items`` in slices of ``size`` (for IN lists of bounded length)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def reading_session() -> Session:
    return Session(db.engine)
