"""Writing the audit log. Callers commit; the line is part of their transaction, so
an action and its audit line are saved together or not at all."""

from __future__ import annotations

from sqlalchemy import select

from extensions import db
from models import AuditEvent, User


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
    event = AuditEvent(
        action=action,
        actor_id=actor.id if actor is not None else None,
        actor_name=actor_name if actor_name is not None else (actor.username if actor else ""),
        ip=ip,
        target_type=target_type or getattr(target, "__tablename__", None),
        target_id=target_id if target_id is not None else getattr(target, "id", None),
        details=details,
    )
    db.session.add(event)
    return event


def recent_events(*, action_prefix: str = "", limit: int = 100, before_id: int | None = None):
    """The newest audit lines first, optionally only those whose action starts with
    ``action_prefix``; ``before_id`` pages back in time."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if action_prefix:
        query = query.where(AuditEvent.action.startswith(action_prefix, autoescape=True))
    if before_id is not None:
        query = query.where(AuditEvent.id < before_id)
    return db.session.scalars(query).all()
