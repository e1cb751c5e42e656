"""What the index holds for each customer and note, read from the database.

Nothing is stored in the index but ids and a stamp: results are read back from the
database, through the policy module, before anyone sees them. The fields a search
filters on (owner, author, archived) are copied in, so that permissions apply before
paging and counting, not after.
"""

from __future__ import annotations

import zlib
from datetime import datetime
from collections.abc import Iterable, Iterator

from sqlalchemy import select

from models import Customer, CustomerNote, CustomerPhone, Tag, customer_tags, note_tags
from services.search import analysis
from services.search.store import scope_term

POOL = "pool"
_EPOCH = datetime(1970, 1, 1)


def customer_key(customer_id: int) -> str:
    return f"c{customer_id}"


def note_key(note_id: int) -> str:
    return f"n{note_id}"


def _stamp(*parts) -> str:
    return format(zlib.crc32(repr(parts).encode("utf-8")), "08x")


def owner_term(owner_id: int | None) -> str:
    return POOL if owner_id is None else str(owner_id)


def customer_document(row, phones: list[str], tags: list[tuple[int, str]]) -> dict:
    """The index document of a customer row (id, name, company, email, address,
    owner_id, archived_at) with its phone digits and (tag id, tag name) pairs."""
    name_terms = list(analysis.lookup_terms(row.name))
    for word in analysis.pinyin_words(row.name):
        name_terms.extend(analysis.edges(word))
    tag_names = sorted(name for _id, name in tags)
    # The company apart from the rest: the front desk searches by name, company and
    # phone only (policy.BASIC_CARD_FIELDS).
    other = " ".join([row.address or "", row.email or "", *tag_names])
    owner, archived = owner_term(row.owner_id), "1" if row.archived_at else "0"
    return {
        "key": customer_key(row.id),
        "name": name_terms,
        "phone": list(analysis.phone_terms(phones)),
        "company": list(analysis.lookup_terms(row.company or "")),
        "other": list(analysis.lookup_terms(other)),
        "scope": [scope_term("owner", owner), scope_term("archived", archived),
                  *(scope_term("tag", tag_id) for tag_id, _name in tags)],
        "name_length": len(row.name or ""),
        "record": row.id,
        "stamp": _stamp(row.name, row.company, row.address, row.email, sorted(phones), sorted(tags), owner, archived),
    }


def note_document(row, tags: list[tuple[int, str]], owner_id: int | None, archived: bool) -> dict:
    """The index document of a note row (id, customer_id, author_id, body, sections,
    created_at) on a customer with ``owner_id``."""
    sections = row.sections or {}
    text = " ".join([row.body or "", *(str(v) for v in sections.values()), *sorted(n for _i, n in tags)])
    owner, archived_term = owner_term(owner_id), "1" if archived else "0"
    author = str(row.author_id or 0)
    return {
        "key": note_key(row.id),
        "body": list(analysis.note_terms(text)),
        "scope": [scope_term("owner", owner), scope_term("archived", archived_term),
                  scope_term("customer", row.customer_id), scope_term("author", author),
                  *(scope_term("tag", tag_id) for tag_id, _name in tags)],
        "when": int((row.created_at - _EPOCH).total_seconds()),
        "record": row.id,
        "stamp": _stamp(text, sorted(tags), row.customer_id, author, owner, archived_term),
    }


_CUSTOMER_COLUMNS = (Customer.id, Customer.name, Customer.company, Customer.email, Customer.address,
                     Customer.owner_id, Customer.archived_at)
# The attributes of a Customer its index document is made of: a change to any other
# (the stage, the importance, the pool clock) leaves the document as it was.
CUSTOMER_INDEXED = tuple(column.key for column in _CUSTOMER_COLUMNS if column.key != "id") + ("phones", "tags")
_NOTE_COLUMNS = (CustomerNote.id, CustomerNote.customer_id, CustomerNote.author_id, CustomerNote.body,
                 CustomerNote.sections, CustomerNote.created_at)


def _grouped(rows) -> dict[int, list]:
    grouped: dict[int, list] = {}
    for key, *values in rows:
        grouped.setdefault(key, []).append(values[0] if len(values) == 1 else tuple(values))
    return grouped


def customer_documents(session, ids: Iterable[int]) -> tuple[list[dict], set[int]]:
    """Documents of the customers with ``ids`` that exist, and the ids that don't."""
    ids = list(ids)
    rows = session.execute(select(*_CUSTOMER_COLUMNS).where(Customer.id.in_(ids))).all()
    phones = _grouped(session.execute(
        select(CustomerPhone.customer_id, CustomerPhone.digits).where(CustomerPhone.customer_id.in_(ids))))
    tags = _grouped(session.execute(
        select(customer_tags.c.customer_id, Tag.id, Tag.name).join(Tag, Tag.id == customer_tags.c.tag_id)
        .where(customer_tags.c.customer_id.in_(ids))))
    documents = [customer_document(row, phones.get(row.id, []), tags.get(row.id, [])) for row in rows]
    return documents, set(ids) - {row.id for row in rows}


def note_documents(session, where) -> list[dict]:
    """Documents of the not-deleted notes matching ``where`` (a SQL condition)."""
    rows = session.execute(
        select(*_NOTE_COLUMNS, Customer.owner_id, Customer.archived_at)
        .join(Customer, Customer.id == CustomerNote.customer_id)
        .where(where, CustomerNote.deleted_at.is_(None))
    ).all()
    tags = _grouped(session.execute(
        select(note_tags.c.note_id, Tag.id, Tag.name).join(Tag, Tag.id == note_tags.c.tag_id)
        .where(note_tags.c.note_id.in_([row.id for row in rows])))) if rows else {}
    return [note_document(row, tags.get(row.id, []), row.owner_id, row.archived_at is not None) for row in rows]


def all_customer_ids(session, chunk: int = 2000) -> Iterator[list[int]]:
    """Every customer id in chunks, in id order."""
    last = 0
    while ids := list(session.scalars(
            select(Customer.id).where(Customer.id > last).order_by(Customer.id).limit(chunk))):
        yield ids
        last = ids[-1]


def all_note_ids(session, chunk: int = 5000) -> Iterator[list[int]]:
    """Every not-deleted note id in chunks, in id order."""
    last = 0
    while ids := list(session.scalars(
            select(CustomerNote.id).where(CustomerNote.id > last, CustomerNote.deleted_at.is_(None))
            .order_by(CustomerNote.id).limit(chunk))):
        yield ids
        last = ids[-1]
