"""Writing the audit log. Callers commit; the line is part of their transaction, so
an action and its audit line are saved together or not at all."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import and_, insert, or_, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite

from extensions import db
from models import AuditEvent, User, utcnow
from services import policy


def _values(action: str, actor: User | None, *, actor_name: str | None, ip: str | None,
            target: object | None, target_type: str | None, target_id: int | None, details: dict) -> dict:
    return {
        "action": action,
        "actor_id": actor.id if actor is not None else None,
        "actor_name": actor_name if actor_name is not None else (actor.username if actor else ""),
        "ip": ip,
        "target_type": target_type or getattr(target, "__tablename__", None),
        "target_id": target_id if target_id is not None else getattr(target, "id", None),
        "details": details,
    }


def record(
    action: str,
    actor: User | None = None,
    *,
    actor_name: str | None = None,
    ip: str | None = None,
    target: object | None = None,
    target_type: str | None = None,
    target_id: int | None = None,
    **details,
) -> AuditEvent:
    """Add an audit line for ``action`` (e.g. ``"login.success"``). ``target`` is any
    model instance with an ``id``; its table name is stored beside the id. For a row
    that is being deleted, give ``target_type`` and ``target_id`` instead."""
    event = AuditEvent(**_values(action, actor, actor_name=actor_name, ip=ip, target=target,
                                 target_type=target_type, target_id=target_id, details=details))
    db.session.add(event)
    return event


def record_after_reading(
    action: str,
    actor: User | None = None,
    *,
    ip: str | None = None,
    target: object | None = None,
    **details,
) -> None:
    """Like :func:`record`, for a request that has only read so far (a GET, whose
    SQLite transaction starts DEFERRED) and then must write one line — an export
    after reading every row. Its read transaction is ended first, so the line is the
    first statement of a new one: it waits for the write lock instead of failing at
    once because another writer committed meanwhile. Expires loaded objects; the
    caller commits."""
    values = _values(action, actor, actor_name=None, ip=ip, target=target, target_type=None,
                     target_id=None, details=details)
    db.session.rollback()
    db.session.execute(insert(AuditEvent).values(**values, at=utcnow()))


def already_recorded(key: str) -> bool:
    """True when the line written once under ``key`` exists (one indexed lookup)."""
    return db.session.scalar(select(AuditEvent.id).where(AuditEvent.dedup_key == key)) is not None


def record_once(
    key: str,
    action: str,
    actor: User | None = None,
    *,
    actor_name: str | None = None,
    ip: str | None = None,
    target: object | None = None,
    target_type: str | None = None,
    target_id: int | None = None,
    **details,
) -> bool:
    """Like :func:`record`, but at most one line ever under ``key``: the key is a
    unique column, and a second insert (two workers at once) is skipped by the
    database. Written at once, in the caller's transaction; returns True when this
    call wrote the line."""
    return _insert_once(key, _values(action, actor, actor_name=actor_name, ip=ip, target=target,
                                     target_type=target_type, target_id=target_id, details=details))


def _insert_once(key: str, values: dict) -> bool:
    dialect = db.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    # RETURNING tells whether the row went in (the row count of this statement is
    # not reported on PostgreSQL through psycopg).
    inserted = db.session.execute(
        insert(AuditEvent)
        .values(**values, at=utcnow(), dedup_key=key)
        .on_conflict_do_nothing(index_elements=["dedup_key"])
        .returning(AuditEvent.id)
    ).scalar()
    return inserted is not None


def record_customer_view(viewer: User, customer, *, day: date, ip: str | None = None) -> bool:
    """A manager or admin opened a customer another salesperson owns: one line per
    viewer, customer and office ``day``. On the hot path this is one indexed lookup;
    the first view of the day writes the line in a transaction of its own (it ends
    the caller's transaction: call it before changing anything) and returns True:
    the caller commits."""
    if not policy.reading_is_audited(viewer, customer):
        return False
    key = f"customer.view:{viewer.id}:{customer.id}:{day.isoformat()}"
    if already_recorded(key):
        return False
    values = _values("customer.view", viewer, actor_name=None, ip=ip, target=customer, target_type=None,
                     target_id=None, details={"owner_id": customer.owner_id})
    # A read transaction that starts writing can fail at once on SQLite (another
    # writer committed since it began); one whose first statement writes waits.
    db.session.rollback()
    return _insert_once(key, values)


@dataclass
class AuditFilter:
    """The audit page's filter: one kind (exact), the acting user, a customer (the
    line's target, or the customer a note, task or merge line names), and office
    dates (inclusive)."""

    kind: str = ""
    user_id: int | None = None
    customer_id: int | None = None
    date_from: date | None = None
    date_to: date | None = None

    def as_args(self) -> dict:
        """The filter as URL arguments; empty values left out."""
        args = {"kind": self.kind, "user": self.user_id, "customer": self.customer_id,
                "date_from": self.date_from.isoformat() if self.date_from else None,
                "date_to": self.date_to.isoformat() if self.date_to else None}
        return {name: value for name, value in args.items() if value not in (None, "")}


def _about_customer(customer_id: int):
    details = AuditEvent.details
    return or_(
        and_(AuditEvent.target_type == "customers", AuditEvent.target_id == customer_id),
        details["customer_id"].as_integer() == customer_id,
        and_(AuditEvent.action == "customer.merge", details["keep_id"].as_integer() == customer_id),
    )


def filtered_events(flt: AuditFilter):
    """``select(AuditEvent)`` of the lines ``flt`` asks for, newest first."""
    from services.office_time import local_to_utc

    query = select(AuditEvent).order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
    if flt.kind:
        query = query.where(AuditEvent.action == flt.kind)
    if flt.user_id is not None:
        query = query.where(AuditEvent.actor_id == flt.user_id)
    if flt.customer_id is not None:
        query = query.where(_about_customer(flt.customer_id))
    if flt.date_from is not None:
        query = query.where(AuditEvent.at >= local_to_utc(datetime.combine(flt.date_from, time())))
    if flt.date_to is not None:
        query = query.where(AuditEvent.at < local_to_utc(datetime.combine(flt.date_to + timedelta(days=1), time())))
    return query


def events_page(flt: AuditFilter, *, after: tuple[datetime, int] | None = None, limit: int = 50):
    """One page of :func:`filtered_events`: up to ``limit`` lines older than the
    cursor ``after`` (time, id) — keyset paging, as fast on page 1,000 as on page
    one — and whether more follow."""
    query = filtered_events(flt)
    if after is not None:
        query = query.where(tuple_(AuditEvent.at, AuditEvent.id) < tuple_(*after))
    events = list(db.session.scalars(query.limit(limit + 1)))
    return events[:limit], len(events) > limit


def kinds_in_use() -> list[str]:
    """Every kind the log holds (for kinds written by an older or newer version)."""
    return list(db.session.scalars(select(AuditEvent.action).distinct().order_by(AuditEvent.action)))
