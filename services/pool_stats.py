"""The public pool's history for managers (P6, R1): the filtered list of pool events
and the weekly flows (claimed / released / recycled per ISO week).

Dates are office dates (the caller's time zone); times are stored naive UTC. Weeks
are bucketed in Python over a bounded range, so no dialect date function is needed
and SQLite and PostgreSQL count alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import or_, select
from sqlalchemy.orm import joinedload

from extensions import db
from models import PoolEvent, PoolEventKind
from services.dashboard import day_bounds

PAGE_SIZE = 50
WEEKLY_KINDS = (PoolEventKind.CLAIM.value, PoolEventKind.RELEASE.value, PoolEventKind.RECYCLE.value)


@dataclass(frozen=True)
class EventFilter:
    """What the pool events page shows; empty values filter nothing. ``user_id``
    matches the actor, the previous owner or the new owner."""

    kind: str = ""
    user_id: int | None = None
    customer_id: int | None = None
    date_from: date | None = None
    date_to: date | None = None


@dataclass(frozen=True)
class EventPage:
    events: list[PoolEvent]
    page: int
    has_more: bool


@dataclass(frozen=True)
class WeekCount:
    """One ISO week (Monday ``start``, office time) and its pool flows."""

    start: date
    claim: int = 0
    release: int = 0
    recycle: int = 0

    @property
    def label(self) -> str:
        year, week, _ = self.start.isocalendar()
        return f"{year}-W{week:02d}"


def _zone(timezone: str | None) -> str:
    return timezone or current_app.config["OFFICE_TIMEZONE"]


def find_events(flt: EventFilter, *, page: int = 1, timezone: str | None = None,
                page_size: int = PAGE_SIZE) -> EventPage:
    """Pool events matching ``flt``, newest first, ``page_size`` per page (1-based)."""
    query = select(PoolEvent).options(
        joinedload(PoolEvent.customer), joinedload(PoolEvent.actor),
        joinedload(PoolEvent.from_user), joinedload(PoolEvent.to_user))
    if flt.kind:
        query = query.where(PoolEvent.kind == flt.kind)
    if flt.user_id is not None:
        query = query.where(or_(PoolEvent.actor_id == flt.user_id, PoolEvent.from_user_id == flt.user_id,
                                PoolEvent.to_user_id == flt.user_id))
    if flt.customer_id is not None:
        query = query.where(PoolEvent.customer_id == flt.customer_id)
    if flt.date_from is not None:
        query = query.where(PoolEvent.at >= day_bounds(flt.date_from, _zone(timezone))[0])
    if flt.date_to is not None:
        query = query.where(PoolEvent.at < day_bounds(flt.date_to, _zone(timezone))[1])
    page = max(1, page)
    rows = list(db.session.scalars(
        query.order_by(PoolEvent.at.desc(), PoolEvent.id.desc())
        .offset((page - 1) * page_size).limit(page_size + 1)).unique())
    return EventPage(rows[:page_size], page, len(rows) > page_size)


def weekly_counts(weeks: int = 12, *, today: date, timezone: str | None = None) -> list[WeekCount]:
    """Claims, releases and recycles per ISO week (weeks start on Monday in the
    office time zone) for the ``weeks`` weeks up to and including ``today``'s,
    oldest first. Weeks without events count zero."""
    zone = ZoneInfo(_zone(timezone))
    this_monday = today - timedelta(days=today.weekday())
    first_monday = this_monday - timedelta(weeks=weeks - 1)
    start, _ = day_bounds(first_monday, _zone(timezone))
    end = day_bounds(this_monday + timedelta(days=6), _zone(timezone))[1]
    counts = {first_monday + timedelta(weeks=n): dict.fromkeys(WEEKLY_KINDS, 0) for n in range(weeks)}
    rows = db.session.execute(select(PoolEvent.kind, PoolEvent.at).where(
        PoolEvent.kind.in_(WEEKLY_KINDS), PoolEvent.at >= start, PoolEvent.at < end))
    for kind, at in rows:
        local_day = at.replace(tzinfo=UTC).astimezone(zone).date()
        counts[local_day - timedelta(days=local_day.weekday())][kind] += 1
    return [WeekCount(monday, **by_kind) for monday, by_kind in counts.items()]
