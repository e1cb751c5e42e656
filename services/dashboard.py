"""The home page's content per role (F2): follow-ups due, recent customers, unread
mentions, own customers about to be recycled to the pool (P5), and for the front desk
the day's calls and visits.

Like the task service it takes ``today`` (a date in the office time zone) and the
time zone's name from the caller, so it never depends on a request or the clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import joinedload, lazyload

from extensions import db
from models import Customer, CustomerNote, FollowUpTask, Mention, NoteKind, User
from services import policy, pool, tasks

LIMIT = 10
# Kinds of note that mean someone rang or walked in: the front desk's day.
CONTACT_KINDS = (NoteKind.CALL.value, NoteKind.VISIT.value)


@dataclass
class Dashboard:
    """What the home page shows. ``lookup_first`` is the front desk's layout;
    ``overdue_everybody`` is None for those who see only their own tasks."""

    lookup_first: bool
    due_tasks: list[FollowUpTask] = field(default_factory=list)
    recent_customers: list[Customer] = field(default_factory=list)
    mentions: list[Mention] = field(default_factory=list)
    todays_contacts: list[CustomerNote] = field(default_factory=list)
    overdue_everybody: int | None = None
    # (customer, RecycleClock) pairs: own customers recycled within the warning days.
    recycling_soon: list = field(default_factory=list)


def build(user: User, *, today: date, timezone: str) -> Dashboard:
    """The dashboard of ``user`` on ``today`` (a day in ``timezone``)."""
    if policy.looks_up_first(user):
        return Dashboard(
            lookup_first=True,
            due_tasks=tasks.due_now(user, today),
            todays_contacts=todays_contacts(user, today, timezone),
            mentions=unread_mentions(user),
        )
    board = Dashboard(
        lookup_first=False,
        due_tasks=tasks.due_now(user, today),
        recent_customers=recent_customers(user),
        mentions=unread_mentions(user),
        recycling_soon=pool.due_soon(user.id),
    )
    if policy.may(user, "task.view_all"):
        board.overdue_everybody = tasks.count_overdue(user, today)
    return board


def day_bounds(day: date, timezone: str) -> tuple[datetime, datetime]:
    """The start and end of ``day`` in ``timezone`` as naive UTC datetimes, the way
    times are stored."""
    zone = ZoneInfo(timezone)
    start = datetime.combine(day, time.min, tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time.min, tzinfo=zone)
    return (start.astimezone(UTC).replace(tzinfo=None), end.astimezone(UTC).replace(tzinfo=None))


def recent_customers(user: User, limit: int = LIMIT) -> list[Customer]:
    """``user``'s own customers, most recently contacted (or changed) first."""
    recency = func.coalesce(Customer.last_contact_at, Customer.updated_at)
    query = (
        select(Customer)
        .where(Customer.owner_id == user.id, Customer.archived_at.is_(None))
        .order_by(recency.desc(), Customer.id.desc())
        .limit(limit)
        .options(lazyload("*"))  # the rows only: the home page shows names and times
    )
    return list(db.session.scalars(query))


def unread_mentions(user: User, limit: int = LIMIT) -> list[Mention]:
    """Unread @mentions of ``user`` in notes they may still read, newest first."""
    readable = policy.readable_notes(user, select(CustomerNote.id))
    query = (
        select(Mention)
        .where(Mention.user_id == user.id, Mention.read_at.is_(None), Mention.note_id.in_(readable))
        .options(joinedload(Mention.author), joinedload(Mention.note).joinedload(CustomerNote.customer))
        .order_by(Mention.created_at.desc(), Mention.id.desc())
        .limit(limit)
    )
    return list(db.session.scalars(query).unique())


def todays_contacts(user: User, today: date, timezone: str, limit: int = 50) -> list[CustomerNote]:
    """The call and visit notes ``user`` wrote on ``today`` (office time zone),
    newest first."""
    return list(db.session.scalars(todays_contacts_query(user, today, timezone, limit)).unique())


def todays_contacts_query(user: User, today: date, timezone: str, limit: int):
    """:func:`todays_contacts` as a statement: the author's notes of the day read
    along ix_customer_notes_author_kind_created, not every author's notes of the day."""
    start, end = day_bounds(today, timezone)
    return (
        select(CustomerNote)
        .where(
            CustomerNote.author_id == user.id,
            CustomerNote.kind.in_(CONTACT_KINDS),
            CustomerNote.deleted_at.is_(None),
            CustomerNote.created_at >= start,
            CustomerNote.created_at < end,
        )
        .options(joinedload(CustomerNote.customer))
        .order_by(CustomerNote.created_at.desc(), CustomerNote.id.desc())
        .limit(limit)
    )
