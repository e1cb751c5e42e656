"""Merging duplicate customers (C3), and undoing a merge.

A merge moves the notes, follow-up tasks, pool events and field history of the dropped
customer to the kept one, adds its tags and phone numbers, fills the kept one's empty
profile fields from it, and archives it as "merged into …". The audit line records
exactly what moved and what was filled, which is what an undo moves back and empties.
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select, update

from extensions import db
from models import (
    AuditEvent,
    Customer,
    CustomerChange,
    CustomerNote,
    CustomerPhone,
    FollowUpTask,
    PoolEvent,
    User,
    utcnow,
)
from services import audit, search
from services.errors import DomainError


# What moves from the dropped customer to the kept one: (model, key in the audit line).
MOVED = ((CustomerNote, "note_ids"), (FollowUpTask, "task_ids"), (CustomerChange, "change_ids"),
         (PoolEvent, "pool_event_ids"))
# Profile fields the kept customer takes from the dropped one where its own are empty.
FILLABLE = ("company", "email", "address", "region", "birthday")


def _ids(model, customer_id: int) -> list[int]:
    return list(db.session.scalars(select(model.id).where(model.customer_id == customer_id)))


def _move(model, ids: list[int], to_customer: int) -> None:
    if ids:
        db.session.execute(update(model).where(model.id.in_(ids)).values(customer_id=to_customer))


def _refresh_last_contact(customer: Customer) -> None:
    customer.last_contact_at = db.session.scalar(
        select(func.max(func.coalesce(CustomerNote.contacted_at, CustomerNote.created_at)))
        .where(CustomerNote.customer_id == customer.id, CustomerNote.deleted_at.is_(None))
    )


def merge_customers(actor: User, keep: Customer, drop: Customer, *, ip: str | None = None) -> AuditEvent:
    """Merge ``drop`` into ``keep``. Raises DomainError for the same customer twice
    or an archived one. Returns the audit line (it is also the undo record)."""
    if keep.id == drop.id:
        raise DomainError(_l("Choose two different customers."), "drop_id")
    if keep.archived or drop.archived:
        raise DomainError(_l("Archived customers cannot be merged; restore them first."), "drop_id")
    moved = {key: _ids(model, drop.id) for model, key in MOVED}
    for model, key in MOVED:
        _move(model, moved[key], keep.id)
    filled = _fill_empty_fields(actor, keep, drop)
    kept_tags = {tag.id for tag in keep.tags}
    added_tags = [tag for tag in drop.tags if tag.id not in kept_tags]
    keep.tags = list(keep.tags) + added_tags
    kept_digits = {phone.digits for phone in keep.phones}
    added_phones = []
    for phone in drop.phones:
        if phone.digits not in kept_digits:
            copy = CustomerPhone(kind=phone.kind, digits=phone.digits, position=len(keep.phones))
            keep.phones.append(copy)
            added_phones.append(copy)
    drop.archived_at = utcnow()
    drop.merged_into_id = keep.id
    search.mark_customers([keep.id, drop.id], with_notes=True)
    db.session.flush()
    _refresh_last_contact(keep)
    db.session.add(CustomerChange(customer_id=keep.id, user_id=actor.id, field="merged",
                                  old_value="", new_value=f"#{drop.id} {drop.name}"))
    event = audit.record(
        "customer.merge", actor, ip=ip, target=drop, keep_id=keep.id,
        tag_ids=[tag.id for tag in added_tags], phone_ids=[phone.id for phone in added_phones], filled=filled,
        **moved,
    )
    db.session.flush()
    return event


def _text(value) -> str:
    return "" if value is None else value.isoformat() if hasattr(value, "isoformat") else str(value)


def _fill_empty_fields(actor: User, keep: Customer, drop: Customer) -> dict[str, str]:
    """Give ``keep`` the profile fields it lacks and ``drop`` has (kept in its
    history). Returns {field: value filled, as text}."""
    filled = {}
    for name in FILLABLE:
        if _text(getattr(keep, name)) == "" and _text(getattr(drop, name)) != "":
            setattr(keep, name, getattr(drop, name))
            filled[name] = _text(getattr(drop, name))
            db.session.add(CustomerChange(customer_id=keep.id, user_id=actor.id, field=name,
                                          old_value="", new_value=filled[name]))
    return filled


def _empty_filled_fields(actor: User, keep: Customer, filled: dict[str, str]) -> None:
    """Undo :func:`_fill_empty_fields`, for the fields that still hold what was
    filled (a later edit is kept)."""
    for name, value in filled.items():
        if _text(getattr(keep, name)) == value:
            setattr(keep, name, None if name == "birthday" else "")
            db.session.add(CustomerChange(customer_id=keep.id, user_id=actor.id, field=name,
                                          old_value=value, new_value=""))


def last_merge(drop: Customer) -> AuditEvent | None:
    return db.session.scalar(
        select(AuditEvent).where(AuditEvent.action == "customer.merge",
                                 AuditEvent.target_type == "customers", AuditEvent.target_id == drop.id)
        .order_by(AuditEvent.id.desc()).limit(1)
    )


def undo_merge(actor: User, drop: Customer, *, ip: str | None = None) -> Customer:
    """Undo the merge that archived ``drop``: what moved goes back (notes, tasks, pool
    events and history that are still on the kept customer), the added tags and phones
    are taken off it, the fields filled from ``drop`` are emptied again, and ``drop``
    is active again. Returns the kept customer. Raises
    DomainError when ``drop`` is not a merged record."""
    event = last_merge(drop) if drop.merged_into_id else None
    keep = db.session.get(Customer, drop.merged_into_id) if drop.merged_into_id else None
    if event is None or keep is None:
        raise DomainError(_l("This customer is not the result of a merge."))
    details = event.details
    for model, key in MOVED:
        ids = [i for i in details.get(key, [])]
        if ids:
            db.session.execute(update(model).where(model.id.in_(ids), model.customer_id == keep.id)
                               .values(customer_id=drop.id))
    added = set(details.get("tag_ids", []))
    keep.tags = [tag for tag in keep.tags if tag.id not in added]
    phone_ids = set(details.get("phone_ids", []))
    keep.phones = [phone for phone in keep.phones if phone.id not in phone_ids]
    _empty_filled_fields(actor, keep, details.get("filled", {}))
    drop.archived_at = None
    drop.merged_into_id = None
    search.mark_customers([keep.id, drop.id], with_notes=True)
    db.session.flush()
    _refresh_last_contact(keep)
    _refresh_last_contact(drop)
    db.session.add(CustomerChange(customer_id=keep.id, user_id=actor.id, field="merged",
                                  old_value=f"#{drop.id} {drop.name}", new_value=""))
    audit.record("customer.unmerge", actor, ip=ip, target=drop, keep_id=keep.id, merge_event=event.id)
    db.session.flush()
    return keep
