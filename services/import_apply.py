"""Writing an import's rows, and undoing an import (D3).

:func:`classify` sorts a chunk of checked rows into new customers, duplicates of
existing ones (the C3 rules of services.customers, asked for the whole chunk at
once) and duplicates within the file. :func:`write_chunk` creates or fills the
customers of a chunk and records each in ImportRow; it adds and flushes, the job
commits. :func:`undo_import` archives what was created and puts back what was
filled.
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, insert, select, update

from extensions import db, insert_returning_ids, insert_rows
from models import (
    Customer,
    CustomerChange,
    CustomerNote,
    CustomerPhone,
    ImportBatch,
    ImportRow,
    ImportStatus,
    TagGroup,
    User,
    customer_tags,
    utcnow,
)
from services import audit, customers, imports, search, tags
from services.errors import DomainError
from services.import_rows import CheckedRow, Lookups, tag_word
from services.merge import FILLABLE

IMPORT_TAG_GROUP = "导入"


def classify(rows: list[CheckedRow], seen: set) -> list[tuple[CheckedRow, str, list[int]]]:
    """(row, status, ids of the existing customers it duplicates) for each row;
    status is "invalid", "file_duplicate" (shares a key with an earlier row of the
    file: ``seen`` holds their keys and is updated), "duplicate" or "new"."""
    keys_of = {id(row): customers.match_keys(row.data) for row in rows if row.data is not None}
    existing = customers.customers_by_key(set().union(*keys_of.values())) if keys_of else {}
    result: list = []
    for row in rows:
        if row.data is None:
            result.append((row, "invalid", []))
            continue
        keys = keys_of[id(row)]
        matches = sorted({cid for key in keys for cid in existing.get(key, [])})
        if keys & seen:
            status = "file_duplicate"
        else:
            status = "duplicate" if matches else "new"
        seen.update(keys)
        result.append((row, status, matches))
    return result


def action_for(status: str, duplicates: str) -> str:
    """What the import does with a row: "create", "fill", "skip" or "reject"."""
    if status == "invalid":
        return "reject"
    if status == "new":
        return "create"
    if duplicates == "create":
        return "create"
    return "fill" if status == "duplicate" and duplicates == "fill" else "skip"


def owner_for(row: CheckedRow, option: str) -> int | None:
    if option == "pool":
        return None
    if option == "column":
        return row.owner_id
    return int(option)


class TagResolver:
    """Tag names to ids; unknown ones created in the 导入 group or dropped."""

    def __init__(self, actor: User | None, lookups: Lookups, create: bool):
        self.actor, self.known, self.create = actor, lookups.tags, create
        self.created: list[int] = []

    def ids(self, names: list[str]) -> list[int]:
        found = []
        for name in names:
            tag_id = self.known.get(tag_word(name))
            if tag_id is None and self.create:
                tag_id = self._new(name)
            if tag_id is not None and tag_id not in found:
                found.append(tag_id)
        return found

    def _new(self, name: str) -> int:
        group = db.session.scalar(select(TagGroup).where(TagGroup.name == IMPORT_TAG_GROUP))
        if group is None:
            group = tags.create_group(self.actor, IMPORT_TAG_GROUP)
        tag = tags.create_tag(self.actor, group.id, name)
        self.known[tag_word(name)] = tag.id
        self.created.append(tag.id)
        return tag.id


def write_chunk(actor: User | None, batch: ImportBatch, classified, resolver: TagResolver) -> dict[str, int]:
    """Create or fill the customers of one chunk; returns counts by action."""
    options, counts = batch.options, {"created": 0, "filled": 0, "skipped": 0, "rejected": 0}
    to_create, to_fill = [], []
    for row, status, matches in classified:
        action = action_for(status, imports.duplicate_choice(options, row.number))
        if action == "create":
            to_create.append((row, status))
        elif action == "fill":
            to_fill.append((row, matches[0]))
        if action in ("skip", "reject"):
            counts["skipped" if action == "skip" else "rejected"] += 1
    counts["created"] = _create(actor, batch, to_create, resolver)
    counts["filled"] = _fill(actor, batch, to_fill, resolver)
    db.session.flush()
    return counts


def _create(actor, batch, rows, resolver) -> int:
    """The new customers of a chunk, with bulk statements (customers.insert_customers):
    their phones, tags, first note, pool records, search entries and ImportRow rows."""
    if not rows:
        return 0
    now = utcnow()
    ids = customers.insert_customers(
        actor, [(row.data, owner_for(row, batch.options["owner"]), now if row.note else None) for row, _ in rows],
        now, import_batch=batch.id, override_limit=batch.options.get("override_limit", False))
    links = [{"customer_id": customer_id, "tag_id": tag_id}
             for (row, _), customer_id in zip(rows, ids, strict=True) for tag_id in resolver.ids(row.tags)]
    if links:
        db.session.execute(insert(customer_tags), links)
    notes = [_note_values(actor, customer_id, row.note, now) for (row, _), customer_id in zip(rows, ids) if row.note]
    if notes:
        search.mark(search.backlog.NOTE, insert_returning_ids(CustomerNote, notes))
    insert_rows(ImportRow, [
        {"batch_id": batch.id, "row_number": row.number, "customer_id": customer_id,
         "action": "created" if status == "new" else "created_anyway", "old_values": {}, "added": {}}
        for (row, status), customer_id in zip(rows, ids)])
    return len(ids)


def _note_values(actor, customer_id: int, body: str, now) -> dict:
    return {"customer_id": customer_id, "author_id": actor.id if actor else None, "kind": "other",
            "body": body[:10000], "sections": {}, "created_at": now}


def _note(actor, customer_id: int, body: str, now) -> CustomerNote:
    return CustomerNote(**_note_values(actor, customer_id, body, now))


def _fill(actor, batch, rows, resolver) -> int:
    """Fill empty fields of existing customers (archived or merged-away ones are
    left alone), add their missing phones and tags and the row's note."""
    if not rows:
        return 0
    targets = {c.id: c for c in db.session.scalars(select(Customer).where(
        Customer.id.in_({cid for _, cid in rows}), Customer.archived_at.is_(None)))}
    now, filled = utcnow(), 0
    for row, customer_id in rows:
        customer = targets.get(customer_id)
        if customer is None:
            continue
        old, added = _fill_one(actor, customer, row, resolver, now)
        db.session.add(ImportRow(batch_id=batch.id, row_number=row.number, customer_id=customer.id,
                                 action="filled", old_values=old, added=added))
        filled += 1
    search.mark_customers(targets)  # tags linked by a bulk insert: the flush hook does not see them
    return filled


def _fill_one(actor, customer: Customer, row: CheckedRow, resolver, now) -> tuple[dict, dict]:
    old, added = {}, {}
    for name in FILLABLE:
        value = getattr(row.data, name)
        if value and not getattr(customer, name):
            old[name] = getattr(customer, name)
            setattr(customer, name, value)
            db.session.add(CustomerChange(customer_id=customer.id, user_id=actor.id if actor else None,
                                          field=name, old_value="", new_value=str(value)))
    have = {phone.digits for phone in customer.phones}
    new_phones = [CustomerPhone(kind=kind, digits=digits, position=len(have) + i)
                  for i, (kind, digits) in enumerate(d for d in row.data.phones if d[1] not in have)]
    customer.phones.extend(new_phones)
    present = {tag.id for tag in customer.tags}
    tag_ids = [tag_id for tag_id in resolver.ids(row.tags) if tag_id not in present]
    if tag_ids:
        db.session.execute(insert(customer_tags), [{"customer_id": customer.id, "tag_id": t} for t in tag_ids])
        db.session.expire(customer, ["tags"])
    note = _note(actor, customer.id, row.note, now) if row.note else None
    if note is not None:
        db.session.add(note)
        if customer.last_contact_at is None:
            old["last_contact_at"], customer.last_contact_at = None, now
    if old or new_phones or tag_ids or note:
        customer.updated_at = now
    db.session.flush()
    added = {"phone_ids": [p.id for p in new_phones], "tag_ids": tag_ids,
             "note_ids": [note.id] if note is not None else []}
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in old.items()}, added


# ---- undo -----------------------------------------------------------------------------

def undo_import(actor: User | None, batch: ImportBatch) -> dict[str, int]:
    """Archive the customers the import created and put back what it filled in
    (fields still holding the imported value, phones, tags and notes it added);
    an interrupted import that imported nothing is only closed (marked undone).
    Raises DomainError when the batch may not be undone (see imports.may_undo),
    saying so when it ended without importing anything."""
    if batch.status in (ImportStatus.DONE, ImportStatus.FAILED) and not batch.counts.get("imported"):
        raise DomainError(_l("This import did not create or fill in any customer: there is nothing to undo."))
    if not imports.may_undo(batch):
        raise DomainError(_l("This import can no longer be undone (only finished imports, within %(days)d days).",
                                days=imports.UNDO_DAYS))
    now = utcnow()
    rows = db.session.execute(select(ImportRow.customer_id, ImportRow.action, ImportRow.old_values,
                                     ImportRow.added).where(ImportRow.batch_id == batch.id)).all()
    created = [r.customer_id for r in rows if r.action != "filled" and r.customer_id]
    archived = _archive_created(actor, created, now)
    filled = [row for row in rows if row.action == "filled" and row.customer_id]
    restored = sum(_restore_filled(actor, row, now) for row in filled)
    search.mark_customers([row.customer_id for row in filled], with_notes=True)
    batch.status, batch.undone_at, batch.undone_by_id = ImportStatus.UNDONE, now, actor.id if actor else None
    counts = {"archived": archived, "restored": restored}
    audit.record("customer.import_undo", actor, actor_name=None if actor else "cli", target=batch,
                 file=batch.file_name, **counts)
    db.session.flush()
    return counts


def undone_text(batch: ImportBatch, counts: dict[str, int]):
    """What an undo did (``counts`` from undo_import), in words for the page and the
    command line; plainly so when the import had created and filled in nothing (an
    interrupted one whose first chunk never got written)."""
    if not batch.counts.get("imported"):
        return _l("Import undone: it had changed no customer.")
    return _l("Import undone: %(archived)d customers archived, %(restored)d put back as they were.", **counts)


def _archive_created(actor, ids: list[int], now) -> int:
    """Archive (as services.customers.archive does, for many at once) those of
    ``ids`` not archived yet."""
    live = list(db.session.scalars(select(Customer.id).where(Customer.id.in_(ids), Customer.archived_at.is_(None))))
    if not live:
        return 0
    db.session.execute(update(Customer).where(Customer.id.in_(live)).values(archived_at=now)
                       .execution_options(synchronize_session=False))
    db.session.execute(insert(CustomerChange), [
        {"customer_id": cid, "user_id": actor.id if actor else None, "at": now, "field": "archived",
         "old_value": "", "new_value": "archived"} for cid in live])
    search.mark_customers(live, with_notes=True)
    return len(live)


def _restore_filled(actor, row, now) -> int:
    customer = db.session.get(Customer, row.customer_id)
    if customer is None:
        return 0
    for name, old in row.old_values.items():
        if name == "last_contact_at":
            continue
        current = getattr(customer, name)
        shown = current.isoformat() if hasattr(current, "isoformat") else current
        if shown and old in ("", None):
            setattr(customer, name, old)
            db.session.add(CustomerChange(customer_id=customer.id, user_id=actor.id if actor else None,
                                          field=name, old_value=str(shown), new_value=""))
    added = row.added or {}
    if added.get("phone_ids"):
        customer.phones = [p for p in customer.phones if p.id not in set(added["phone_ids"])]
    if added.get("tag_ids"):
        db.session.execute(delete(customer_tags).where(customer_tags.c.customer_id == customer.id,
                                                       customer_tags.c.tag_id.in_(added["tag_ids"])))
        db.session.expire(customer, ["tags"])
    for note in db.session.scalars(select(CustomerNote).where(CustomerNote.id.in_(added.get("note_ids", [])))):
        db.session.delete(note)
    if "last_contact_at" in row.old_values:
        customer.last_contact_at = None
    customer.updated_at = now
    return 1

