"""Notes on customers (N1–N5): write, edit with revisions, delete within the window,
comments, @mentions, and the customer's notes paged back in time.

Every function that changes something flushes it, with its audit line, its
follow-up task and its mentions, into the caller's transaction; the caller commits. Times are naive UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.orm.attributes import set_committed_value

from extensions import db
from models import (
    SECTIONS,
    Customer,
    CustomerNote,
    FollowUpTask,
    NoteComment,
    NoteRevision,
    NoteTemplate,
    Tag,
    User,
    utcnow,
)
from services import audit, mentions, policy, tasks
from services.errors import DomainError
from services.ids import format_cursor, parse_cursor
from services.office_time import office_today

BODY_MAX = 5000
SECTION_MAX = 2000
COMMENT_MAX = 500
PAGE_SIZE = 20
# A contact time a little ahead of the server clock is a clock difference, not the future.
CLOCK_TOLERANCE = timedelta(minutes=2)
EARLIEST_CONTACT = datetime(2000, 1, 1)
FOLLOW_UP_HORIZON_DAYS = 3 * 366


# ---- what a note form submits --------------------------------------------------------

@dataclass
class NoteData:
    """A note as submitted. ``contacted_at`` is naive UTC; ``sections`` maps names
    of models.SECTIONS to text."""

    kind: str
    body: str = ""
    sections: dict[str, str] = field(default_factory=dict)
    template_id: int | None = None
    tag_ids: list[int] = field(default_factory=list)
    contacted_at: datetime | None = None
    follow_up_on: date | None = None
    # Usernames to notify besides those @mentioned in the text ("li.na" or "@li.na").
    notify: list[str] = field(default_factory=list)


@dataclass
class SavedNote:
    """The outcome of a save: the note, the follow-up task it created (if any),
    colleagues who were @mentioned but may not read the note, and the template's
    required sections left empty."""

    note: CustomerNote
    task: FollowUpTask | None = None
    unreachable: list[User] = field(default_factory=list)
    missing_sections: list[str] = field(default_factory=list)


def prefilled_sections(template: NoteTemplate | None) -> dict[str, str]:
    """The template's prompts, one per section, to prefill a form."""
    prompts = (template.prompts or {}) if template else {}
    return {name: prompts.get(name, "") for name in SECTIONS}


def filled_sections(sections: dict, template: NoteTemplate | None) -> dict[str, str]:
    """The sections that hold something: trimmed, and a prompt left as it was counts
    as empty."""
    prompts = prefilled_sections(template)
    kept = {}
    for name in SECTIONS:
        text = str((sections or {}).get(name) or "").strip()
        if text and text != prompts[name].strip():
            kept[name] = text
    return kept


def missing_sections(note: CustomerNote) -> list[str]:
    """The required sections of the note's template that the note leaves empty."""
    if note.template is None:
        return []
    filled = filled_sections(note.sections, note.template)
    return [name for name in SECTIONS if name in (note.template.required_sections or []) and name not in filled]


def _template(template_id: int | None) -> NoteTemplate | None:
    if template_id is None:
        return None
    template = db.session.get(NoteTemplate, template_id)
    if template is None or not template.active:
        raise DomainError(_l("Choose one of the templates."), "template_id")
    return template


def _check_kind(actor: User, kind: str) -> None:
    if kind not in policy.note_kinds_for(actor):
        raise DomainError(_l("You may not write this kind of note."), "kind")


def _clean_content(data: NoteData, template: NoteTemplate | None) -> tuple[str, dict[str, str]]:
    """The trimmed body and filled sections. Raises DomainError for text that is too
    long, or when neither the body nor any section says anything."""
    body = (data.body or "").strip()
    if len(body) > BODY_MAX:
        raise DomainError(_l("A note may be at most %(max)d characters.", max=BODY_MAX), "body")
    for name in SECTIONS:
        if len(str((data.sections or {}).get(name) or "")) > SECTION_MAX:
            raise DomainError(_l("At most %(max)d characters.", max=SECTION_MAX), name)
    sections = filled_sections(data.sections, template)
    if not body and not sections:
        raise DomainError(_l("Write something: the note or one of its sections."), "body")
    return _with_notified(body, sections, data.notify), sections


def _with_notified(body: str, sections: dict[str, str], notify: list[str]) -> str:
    """The body with an "@username" line for each colleague to notify who is not
    mentioned in the text yet, so the note shows whom it notified. ``notify`` holds
    usernames (with or without "@") or exact display names. Raises
    DomainError("mention") for a name that is no active colleague's."""
    already = set(mentions.mentioned_usernames(body, *sections.values()))
    names = []
    for token in notify:
        name = token.strip().lstrip("@").rstrip(".,")
        if not name:
            continue
        user = mentions.colleague_named(name)
        if user is None:
            raise DomainError(_l("No active colleague is called %(name)s.", name=name), "mention")
        if user.username not in already and user.username not in names:
            names.append(user.username)
    if not names:
        return body
    return "\n".join(filter(None, [body, " ".join("@" + name for name in names)]))


def _check_contact_time(value: datetime | None) -> None:
    if value is None:
        return
    if value > utcnow() + CLOCK_TOLERANCE:
        raise DomainError(_l("The contact time cannot be in the future."), "contacted_at")
    if value < EARLIEST_CONTACT:
        raise DomainError(_l("Check the contact time."), "contacted_at")


def _check_follow_up(actor: User, customer: Customer, value: date | None) -> None:
    if value is None:
        return
    if not policy.may(actor, "task.create", customer):
        raise DomainError(_l("You may not set follow-ups."), "follow_up_on")
    today = office_today()
    if value < today:
        raise DomainError(_l("The next follow-up cannot be in the past."), "follow_up_on")
    if value > today + timedelta(days=FOLLOW_UP_HORIZON_DAYS):
        raise DomainError(_l("Choose a date within the next three years."), "follow_up_on")


def _tags(tag_ids: list[int]) -> list[Tag]:
    return list(db.session.scalars(select(Tag).where(Tag.id.in_(tag_ids)))) if tag_ids else []


def _follow_up_title(customer: Customer, body: str, sections: dict[str, str]) -> str:
    for text in (body, *sections.values()):
        line = next((line.strip() for line in text.splitlines() if line.strip()), "")
        if line:
            return line[:80]
    return str(_l("Follow up %(name)s", name=customer.name))


def _touch_last_contact(customer: Customer, contact_time: datetime) -> None:
    """last_contact_at = max(last_contact_at, contact_time), atomically: two notes
    saved at once must not leave the older time."""
    newest = case(
        (or_(Customer.last_contact_at.is_(None), Customer.last_contact_at < contact_time), contact_time),
        else_=Customer.last_contact_at,
    )
    db.session.execute(
        update(Customer).where(Customer.id == customer.id)
        .values(last_contact_at=newest, updated_at=Customer.updated_at)
        .execution_options(synchronize_session=False)
    )
    db.session.expire(customer, ["last_contact_at"])


def _recompute_last_contact(customer: Customer) -> None:
    """After a delete: the contact time of the newest remaining note, or none."""
    newest = db.session.scalar(
        select(func.max(func.coalesce(CustomerNote.contacted_at, CustomerNote.created_at)))
        .where(CustomerNote.customer_id == customer.id, CustomerNote.deleted_at.is_(None))
    )
    db.session.execute(
        update(Customer).where(Customer.id == customer.id)
        .values(last_contact_at=newest, updated_at=Customer.updated_at)
        .execution_options(synchronize_session=False)
    )
    db.session.expire(customer, ["last_contact_at"])


def _mention_texts(note: CustomerNote) -> list[str]:
    return [note.body, *(note.sections or {}).values()]


# ---- write, edit, delete -------------------------------------------------------------

def create_note(actor: User, customer: Customer, data: NoteData, *, ip: str | None = None) -> SavedNote:
    """Save a note on ``customer``; with ``follow_up_on`` also a follow-up task, in
    the same transaction. Raises DomainError (with the field) when ``actor`` may not
    write on this customer or this kind, for empty or too long text, a contact time
    in the future, a follow-up in the past or not allowed, or an unknown template."""
    if not policy.may(actor, "note.create", customer):
        raise DomainError(_l("You may not write notes on this customer."))
    _check_kind(actor, data.kind)
    template = _template(data.template_id)
    body, sections = _clean_content(data, template)
    _check_contact_time(data.contacted_at)
    _check_follow_up(actor, customer, data.follow_up_on)
    note = CustomerNote(
        customer=customer, customer_id=customer.id, author_id=actor.id, kind=data.kind, body=body,
        sections=sections, template_id=template.id if template else None, contacted_at=data.contacted_at,
        tags=_tags(data.tag_ids),
    )
    # A savepoint: a refusal of the follow-up takes back the note, not the caller's work.
    with db.session.begin_nested():
        db.session.add(note)
        db.session.flush()
        set_committed_value(note, "comments", [])  # a new note has none: no query to show it
        _touch_last_contact(customer, note.contact_time)
        task = None
        if data.follow_up_on is not None:
            task = tasks.create_task(actor, customer, due_date=data.follow_up_on,
                                     title=_follow_up_title(customer, body, sections), note=note)
        unreachable = mentions.notify_mentioned(actor, note, _mention_texts(note))
    return SavedNote(note, task, unreachable, missing_sections(note))


def edit_note(actor: User, note: CustomerNote, data: NoteData, *, ip: str | None = None) -> SavedNote:
    """Change a note's kind, text, sections, tags or contact time. The content before
    the edit is kept as a NoteRevision; the edit is audited. Raises DomainError like
    :func:`create_note`, and when ``actor`` may not edit this note."""
    if not policy.may(actor, "note.edit", note):
        raise DomainError(_l("Only the author or a manager may edit this note."))
    if data.kind != note.kind:
        _check_kind(actor, data.kind)
    body, sections = _clean_content(data, note.template)
    _check_contact_time(data.contacted_at)
    changed = (note.kind, note.body, note.sections or {}) != (data.kind, body, sections)
    if changed:
        db.session.add(NoteRevision(note_id=note.id, editor_id=actor.id, kind=note.kind,
                                    body=note.body, sections=dict(note.sections or {})))
    note.kind, note.body, note.sections = data.kind, body, sections
    note.contacted_at = data.contacted_at
    note.tags = _tags(data.tag_ids)
    note.updated_at = utcnow()
    db.session.flush()
    _touch_last_contact(note.customer, note.contact_time)
    unreachable = mentions.notify_mentioned(actor, note, _mention_texts(note))
    audit.record("note.edit", actor, ip=ip, target=note, customer_id=note.customer_id,
                 content_changed=changed)
    db.session.flush()
    return SavedNote(note, None, unreachable, missing_sections(note))


def delete_note(actor: User, note: CustomerNote, *, ip: str | None = None) -> None:
    """Delete a note (kept in the database, hidden everywhere) and audit it without
    its content. Raises DomainError unless ``actor`` is its author within the window
    or a manager."""
    if not policy.may(actor, "note.delete", note):
        raise DomainError(_l("Only the author (within 15 minutes) or a manager may delete this note."))
    note.deleted_at = utcnow()
    note.deleted_by_id = actor.id
    db.session.flush()
    _recompute_last_contact(note.customer)
    audit.record("note.delete", actor, ip=ip, target=note, customer_id=note.customer_id)
    db.session.flush()


def revisions(note: CustomerNote) -> list[NoteRevision]:
    """The note's earlier versions, newest first."""
    return list(db.session.scalars(
        select(NoteRevision).where(NoteRevision.note_id == note.id)
        .order_by(NoteRevision.at.desc(), NoteRevision.id.desc())
    ))


def add_comment(actor: User, note: CustomerNote, body: str) -> tuple[NoteComment, list[User]]:
    """A short comment under a note; @mentions in it notify. Returns the comment and
    the colleagues who were named but may not read the note. Raises DomainError for
    an empty or too long comment, or when ``actor`` may not read the note."""
    if not policy.may(actor, "note.comment", note):
        raise DomainError(_l("You may not comment on this note."))
    body = (body or "").strip()
    if not body:
        raise DomainError(_l("Write a comment first."), "body")
    if len(body) > COMMENT_MAX:
        raise DomainError(_l("A comment may be at most %(max)d characters.", max=COMMENT_MAX), "body")
    comment = NoteComment(note=note, author_id=actor.id, body=body)
    db.session.add(comment)
    db.session.flush()
    unreachable = mentions.notify_mentioned(actor, note, [body], comment=comment)
    db.session.flush()
    return comment, unreachable


# ---- the customer's notes, paged back in time ------------------------------------------

@dataclass
class NotePage:
    notes: list[CustomerNote]
    # Where the next (older) page starts, or None on the last page.
    next_cursor: str | None


def encode_cursor(note: CustomerNote) -> str:
    return format_cursor(note.created_at, note.id)


def customer_notes_query(user: User, customer: Customer, before: str | None = None):
    """``select(CustomerNote)`` of the notes of ``customer`` that ``user`` may read,
    newest first (created_at, id), older than the ``before`` cursor: a keyset walk
    along ix_customer_notes_customer_created, so page 250 costs what page 1 does.
    Raises ValueError for a malformed cursor."""
    query = policy.readable_notes(user).where(CustomerNote.customer_id == customer.id)
    if before:
        if (cursor := parse_cursor(before)) is None:
            raise ValueError("bad cursor")
        stamp, note_id = cursor
        query = query.where(
            CustomerNote.created_at <= stamp,
            or_(CustomerNote.created_at < stamp, and_(CustomerNote.created_at == stamp, CustomerNote.id < note_id)),
        )
    return query.order_by(CustomerNote.created_at.desc(), CustomerNote.id.desc())


def customer_notes(user: User, customer: Customer, *, before: str | None = None,
                   limit: int = PAGE_SIZE) -> NotePage:
    """One page (``limit`` notes) of :func:`customer_notes_query`, and the cursor of
    the next. Raises ValueError for a malformed cursor."""
    rows = list(db.session.scalars(customer_notes_query(user, customer, before).limit(limit + 1)))
    notes = rows[:limit]
    for note in notes:  # the policy asks each note for its customer: this one, no lookup
        set_committed_value(note, "customer", customer)
    return NotePage(notes, encode_cursor(notes[-1]) if len(rows) > limit else None)


def has_unreadable_notes(user: User, customer: Customer) -> bool:
    """Does ``customer`` have notes ``user`` may not read (the front desk: colleagues'
    notes)? Only whether some exist: no count, no author, no content."""
    if policy.may(user, "customer.view_details", customer):
        return False
    readable = policy.readable_notes(user, select(CustomerNote.id)).where(CustomerNote.customer_id == customer.id)
    hidden = select(CustomerNote.id).where(
        CustomerNote.customer_id == customer.id, CustomerNote.deleted_at.is_(None),
        CustomerNote.id.not_in(readable),
    )
    return db.session.scalar(hidden.limit(1)) is not None


def active_templates() -> list[NoteTemplate]:
    return list(db.session.scalars(
        select(NoteTemplate).where(NoteTemplate.active.is_(True))
        .order_by(NoteTemplate.position, NoteTemplate.name)
    ))
