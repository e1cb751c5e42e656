"""Reading notes across customers: the notes list with its filters (T2) and the
manager's note-quality view (N6). Read-only: nothing here writes."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import date, datetime, time, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.orm import selectinload

from extensions import db
from models import Customer, CustomerNote, User, note_tags, utcnow
from services import policy, tags
from services.notes import missing_sections
from services.office_time import local_to_utc

# Counting stops here: "1000+" is as useful as an exact figure and costs far less.
COUNT_CAP = 1000
# The quality view checks at most this many recent template notes.
QUALITY_WINDOW_DAYS = 30
QUALITY_SCAN_LIMIT = 2000


@dataclass
class NoteFilter:
    """The notes list's filter, as the URL carries it."""

    kind: str = ""
    author: int | None = None
    tag_ids: list[int] = field(default_factory=list)
    date_from: date | None = None  # office dates, inclusive
    date_to: date | None = None
    q: str = ""
    page: int = 1
    per_page: int = 25

    def as_args(self) -> dict:
        """The filter as URL arguments (links keep it); empty values left out."""
        args: dict = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "per_page" or value in ("", None, []) or (f.name == "page" and value == 1):
                continue
            name = {"tag_ids": "tag", "date_from": "from", "date_to": "to"}.get(f.name, f.name)
            args[name] = value.isoformat() if isinstance(value, date) else value
        return args


@dataclass
class NoteListPage:
    notes: list[CustomerNote]
    total: int  # at most COUNT_CAP + 1
    page: int
    pages: int
    tag_counts: dict[int, int]

    @property
    def total_capped(self) -> bool:
        return self.total > COUNT_CAP


def filtered_notes(user: User, flt: NoteFilter):
    """``select(CustomerNote)`` of the notes ``user`` may read that ``flt`` asks for;
    every tag of ``flt.tag_ids`` must be on the note."""
    query = policy.readable_notes(user)
    if flt.kind:
        query = query.where(CustomerNote.kind == flt.kind)
    if flt.author is not None:
        query = query.where(CustomerNote.author_id == flt.author)
    for tag_id in flt.tag_ids:
        query = query.where(
            select(note_tags.c.note_id)
            .where(note_tags.c.note_id == CustomerNote.id, note_tags.c.tag_id == tag_id).exists()
        )
    if flt.date_from is not None:
        query = query.where(CustomerNote.created_at >= local_to_utc(datetime.combine(flt.date_from, time())))
    if flt.date_to is not None:
        end = datetime.combine(flt.date_to + timedelta(days=1), time())
        query = query.where(CustomerNote.created_at < local_to_utc(end))
    if flt.q:
        query = query.where(CustomerNote.body.contains(flt.q, autoescape=True))  # % and _ as typed
    return query


def list_notes(user: User, flt: NoteFilter) -> NoteListPage:
    """One page of the notes list, newest first; the total counted up to COUNT_CAP;
    per tag the number of matching notes that carry it."""
    query = filtered_notes(user, flt)
    capped = query.with_only_columns(CustomerNote.id).order_by(None).limit(COUNT_CAP + 1).subquery()
    total = db.session.scalar(select(func.count()).select_from(capped))
    pages = max(1, -(-min(total, COUNT_CAP) // flt.per_page))
    page = min(max(1, flt.page), pages)
    notes = list(db.session.scalars(
        query.options(selectinload(CustomerNote.customer))
        .order_by(CustomerNote.created_at.desc(), CustomerNote.id.desc())
        .offset((page - 1) * flt.per_page).limit(flt.per_page)
    ))
    return NoteListPage(notes, total, page, pages, tags.note_tag_counts(query))


def authors() -> list[User]:
    """Everybody who may write notes, for the author filter."""
    return list(db.session.scalars(select(User).order_by(User.active.desc(), User.display_name)))


# ---- quality (N6) ----------------------------------------------------------------------

@dataclass
class IncompleteNote:
    note: CustomerNote
    missing: list[str]


def incomplete_notes(user: User, *, days: int = QUALITY_WINDOW_DAYS, limit: int = 100) -> list[IncompleteNote]:
    """Recent notes made from a template that leave a required section empty, newest
    first. Checked in Python over the last ``days`` (at most QUALITY_SCAN_LIMIT
    notes): JSON queries differ between SQLite and PostgreSQL."""
    since = utcnow() - timedelta(days=days)
    candidates = db.session.scalars(
        policy.readable_notes(user)
        .where(CustomerNote.template_id.is_not(None), CustomerNote.created_at >= since)
        .options(selectinload(CustomerNote.template), selectinload(CustomerNote.customer))
        .order_by(CustomerNote.created_at.desc(), CustomerNote.id.desc())
        .limit(QUALITY_SCAN_LIMIT)
    )
    found = []
    for note in candidates:
        missing = missing_sections(note)
        if missing:
            found.append(IncompleteNote(note, missing))
            if len(found) >= limit:
                break
    return found


@dataclass
class NeglectedPage:
    customers: list[Customer]
    total: int
    page: int
    pages: int


def neglected_customers(user: User, *, days: int = 30, page: int = 1, per_page: int = 50) -> NeglectedPage:
    """Customers (not archived) with no note for ``days`` days: last contact older
    than that, or none at all and created before then. Longest-neglected first."""
    cutoff = utcnow() - timedelta(days=days)
    query = policy.visible_customers(user).where(
        Customer.archived_at.is_(None),
        or_(Customer.last_contact_at < cutoff,
            (Customer.last_contact_at.is_(None)) & (Customer.created_at < cutoff)),
    )
    total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    pages = max(1, -(-total // per_page))
    page = min(max(1, page), pages)
    customers = list(db.session.scalars(
        query.order_by(func.coalesce(Customer.last_contact_at, Customer.created_at).asc(), Customer.id)
        .offset((page - 1) * per_page).limit(per_page)
    ))
    return NeglectedPage(customers, total, page, pages)
