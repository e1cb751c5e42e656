"""Exports (A3): which rows and columns a user may take away, read in bounded
memory, and the audit line every export leaves.

The rows are those of the lists themselves: the customer list's query builder
(customers.filtered_query) and the notes list's (notes_list.filtered_notes), so an
export holds exactly what the list shows for the same filter, within the same
policy scope, narrowed by policy.exportable_* (a salesperson exporting under the
office setting gets only their own customers). The columns are the fields the
policy shows the user (policy.visible_fields), and only those are read. Rows
are plain dicts keyed by column, with stored codes (stage "intent", kind "call");
the view puts them into words. They are read ``BATCH`` at a time (a server-side
cursor on PostgreSQL), with each batch's phones and tags fetched in one query
apiece: no list of every customer is ever built.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy import func, select

from extensions import db
from models import (
    Customer,
    CustomerChange,
    CustomerNote,
    CustomerPhone,
    FollowUpTask,
    NoteComment,
    PoolEvent,
    Tag,
    User,
    customer_tags,
    note_tags,
)
from services import audit, customers, notes_list, phones, policy, pool, settings
from services.customers import CustomerFilter
from services.notes_list import NoteFilter
from services.office_time import office_zone, utc_to_local

BATCH = 1000

# Customer columns in order; each shown only when the policy shows its field.
CUSTOMER_COLUMNS = ("id", "name", "company", "phones", "email", "address", "region", "type", "stage",
                    "importance", "source", "birthday", "owner", "tags", "last_contact", "created")
ALWAYS = frozenset({"id"})
NOTE_COLUMNS = ("id", "created", "contacted", "customer_id", "customer", "kind", "author", "body",
                "summary", "needs", "plan", "tags")


def sales_own() -> bool:
    """The office setting that lets sales export their own customers."""
    return settings.get("export.sales_own")


def may_export(user: User) -> bool:
    return policy.may_export(user, sales_own=sales_own())


def may_export_customer(user: User, customer: Customer) -> bool:
    return policy.may_export_customer(user, customer, sales_own=sales_own())


@dataclass
class Export:
    """What an export holds: its columns, how many rows, and the rows (an
    iterator, read once)."""

    columns: list[str]
    count: int
    rows: Iterator[dict]


def _local(value, zone=None):
    return utc_to_local(value, zone) if value is not None else None


def _count(query) -> int:
    return db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0


def _batches(query) -> Iterator[Sequence]:
    result = db.session.execute(query, execution_options={"yield_per": BATCH})
    yield from result.partitions()


def _user_name(column):
    return select(User.display_name).where(User.id == column).correlate_except(User).scalar_subquery()


def _customer_name(column):
    # Correlated on the outer row only: the notes query may join Customer itself.
    return select(Customer.name).where(Customer.id == column).correlate_except(Customer).scalar_subquery()


# ---- customers ------------------------------------------------------------------------

def customer_columns(user: User) -> list[str]:
    """The customer columns ``user`` may export: the fields the list shows them."""
    fields = policy.visible_fields(user)
    return [column for column in CUSTOMER_COLUMNS if column in ALWAYS or column in fields]


def _customer_query(user: User, flt: CustomerFilter):
    query = policy.exportable_customers(user, customers.filtered_query(user, flt), sales_own=sales_own())
    order = [customers.SORTS.get(flt.sort, customers.SORTS["updated"]), Customer.id.desc()]
    return query.order_by(*order)


def _phones_of(ids: list[int]) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for customer_id, digits in db.session.execute(
        select(CustomerPhone.customer_id, CustomerPhone.digits)
        .where(CustomerPhone.customer_id.in_(ids)).order_by(CustomerPhone.customer_id, CustomerPhone.position)
    ):
        found.setdefault(customer_id, []).append(phones.display(digits))
    return found


def _tags_of(link_table, key: str, ids: list[int]) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    owner = link_table.c[key]
    for owner_id, name in db.session.execute(
        select(owner, Tag.name).join(Tag, Tag.id == link_table.c.tag_id)
        .where(owner.in_(ids)).order_by(owner, Tag.name)
    ):
        found.setdefault(owner_id, []).append(name)
    return found


_TIMES = {"last_contact": Customer.last_contact_at, "created": Customer.created_at}  # shown in office time


def _customer_field(column: str):
    """What the query reads for a column of CUSTOMER_COLUMNS (phones and tags are
    read per batch)."""
    if column == "owner":
        return _user_name(Customer.owner_id).label("owner")
    if column in _TIMES:
        return _TIMES[column]
    return getattr(Customer, column)


def _customer_rows(query, columns: list[str]) -> Iterator[dict]:
    # Only the columns the user may see are read; "id" comes first (ALWAYS).
    read = [column for column in columns if column not in ("phones", "tags")]
    times = [column for column in _TIMES if column in read]
    zone = office_zone()
    for batch in _batches(query.with_only_columns(*(_customer_field(column) for column in read))):
        ids = [row[0] for row in batch]
        numbers = _phones_of(ids) if "phones" in columns else None
        tag_names = _tags_of(customer_tags, "customer_id", ids) if "tags" in columns else None
        for row in batch:
            values = dict(zip(read, row))
            for column in times:
                values[column] = _local(values[column], zone)
            if numbers is not None:
                values["phones"] = numbers.get(row[0], [])
            if tag_names is not None:
                values["tags"] = tag_names.get(row[0], [])
            yield values


def export_customers(user: User, flt: CustomerFilter) -> Export:
    """The customers of the list ``flt`` describes, as far as ``user`` may export
    them (callers check :func:`may_export` first)."""
    query = _customer_query(user, flt)
    columns = customer_columns(user)
    return Export(columns, _count(query), _customer_rows(query, columns))


# ---- notes ----------------------------------------------------------------------------

def _note_rows(query) -> Iterator[dict]:
    rows = query.with_only_columns(
        CustomerNote.id, CustomerNote.created_at, CustomerNote.contacted_at, CustomerNote.customer_id,
        _customer_name(CustomerNote.customer_id).label("customer"),
        CustomerNote.kind, _user_name(CustomerNote.author_id).label("author"), CustomerNote.body,
        CustomerNote.sections,
    )
    zone = office_zone()
    for batch in _batches(rows):
        tag_names = _tags_of(note_tags, "note_id", [row.id for row in batch])
        for row in batch:
            sections = row.sections or {}
            yield {
                "id": row.id, "created": _local(row.created_at, zone), "contacted": _local(row.contacted_at, zone),
                "customer_id": row.customer_id, "customer": row.customer, "kind": row.kind,
                "author": row.author or "", "body": row.body, "summary": sections.get("summary", ""),
                "needs": sections.get("needs", ""), "plan": sections.get("plan", ""),
                "tags": tag_names.get(row.id, []),
            }


def export_notes(user: User, flt: NoteFilter) -> Export:
    """The notes of the notes list ``flt`` describes, newest first, as far as
    ``user`` may export them."""
    query = policy.exportable_notes(user, notes_list.filtered_notes(user, flt), sales_own=sales_own())
    query = query.order_by(CustomerNote.created_at.desc(), CustomerNote.id.desc())
    return Export(list(NOTE_COLUMNS), _count(query), _note_rows(query))


# ---- one customer's whole record (a customer asks what is kept about them) --------------

def customer_record(user: User, customer: Customer) -> dict[str, Export]:
    """Every part of ``customer``'s record ``user`` may read: fields, notes, comments,
    follow-ups, pool history and field changes, each an Export (callers check
    :func:`may_export_customer` first)."""
    fields = _customer_rows(policy.visible_customers(user).where(Customer.id == customer.id),
                            customer_columns(user))
    notes = policy.readable_notes(user).where(CustomerNote.customer_id == customer.id)
    notes = notes.order_by(CustomerNote.created_at, CustomerNote.id)
    parts = {
        "fields": Export(customer_columns(user), 1, fields),
        "notes": Export(list(NOTE_COLUMNS), _count(notes), _note_rows(notes)),
    }
    note_ids = notes.with_only_columns(CustomerNote.id).order_by(None)
    comments = select(NoteComment).where(NoteComment.note_id.in_(note_ids)).order_by(NoteComment.id)
    parts["comments"] = _orm_export(comments, ("note_id", "created", "author", "body"), lambda c: {
        "note_id": c.note_id, "created": _local(c.created_at), "author": _name(c.author), "body": c.body})
    tasks = policy.visible_tasks(user).where(FollowUpTask.customer_id == customer.id).order_by(FollowUpTask.id)
    parts["tasks"] = _orm_export(tasks, ("title", "due", "assignee", "created", "done"), lambda t: {
        "title": t.title, "due": t.due_date, "assignee": _name(t.assignee), "created": _local(t.created_at),
        "done": _local(t.done_at)})
    events = select(PoolEvent).where(PoolEvent.customer_id == customer.id).order_by(PoolEvent.at, PoolEvent.id)
    parts["pool"] = _orm_export(events, ("at", "event", "actor", "from_user", "to_user", "reason"), lambda e: {
        "at": _local(e.at), "event": e.kind, "actor": _name(e.actor), "from_user": _name(e.from_user),
        "to_user": _name(e.to_user), "reason": pool.event_reason(e)})
    changes = select(CustomerChange).where(CustomerChange.customer_id == customer.id)
    parts["changes"] = _orm_export(changes.order_by(CustomerChange.at, CustomerChange.id),
                                   ("at", "user", "field", "old", "new"), lambda c: {
        "at": _local(c.at), "user": _name(c.user), "field": c.field, "old": c.old_value, "new": c.new_value})
    return parts


def _name(user: User | None) -> str:
    return user.display_name if user is not None else ""


def _orm_export(query, columns, as_row) -> Export:
    def rows():
        for batch in _batches(query):
            for row in batch:
                yield as_row(row[0])

    return Export(list(columns), _count(query), rows())


# ---- the audit log --------------------------------------------------------------------

def export_audit(query) -> Export:
    """The audit lines of ``query`` (services.audit.filtered_events), newest first;
    their rows are the AuditEvent objects, which the view puts into words."""
    def rows():
        for batch in _batches(query):
            for (event,) in batch:
                yield {"event": event}

    return Export(["at", "who", "action", "object", "ip", "details"], _count(query), rows())


# ---- the audit line -------------------------------------------------------------------

EXPORT_KINDS = ("export.customers", "export.notes", "export.customer_record", "export.audit")


def record_export(user: User, kind: str, fmt: str, rows: int, *, filter_args: dict | None = None,
                  target=None, ip: str | None = None) -> None:
    """Audit an export (A3, D1) as ``kind`` (one of EXPORT_KINDS): who, the filter,
    the format and how many rows. Written after the rows were read (audit.
    record_after_reading: ends the read transaction); callers commit before the
    first byte leaves, so no export goes unrecorded."""
    assert kind in EXPORT_KINDS, kind
    details = {"format": fmt, "rows": rows}
    if filter_args is not None:
        details["filter"] = filter_args
    audit.record_after_reading(kind, user, ip=ip, target=target, **details)
