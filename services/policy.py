"""Who may do what: the one place that decides permissions.

``PERMISSIONS`` is the table of actions × roles that the README shows (a test keeps
the two identical); ``_OBJECT_RULES`` narrow an action for one object (own customers,
the 15-minute delete window, archived customers). Everything here is plain data and
functions of a user and an object: no request, no Flask. Views ask through
:func:`may` (blueprints.access turns a refusal into 404 or 403); nothing else checks
roles.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeGuard

from models import Role, User

A, M, S, F = Role.ADMIN, Role.MANAGER, Role.SALES, Role.FRONTDESK

# action: (description for the README, roles allowed)
PERMISSIONS: dict[str, tuple[str, frozenset[Role]]] = {
    "home.view": ("Open the home page", frozenset({A, M, S, F})),
    "account.edit_own": ("Change own password and language", frozenset({A, M, S, F})),
    "users.view": ("See the list of staff accounts", frozenset({A})),
    "users.manage": (
        "Create users, change roles, deactivate, reactivate, reset passwords",
        frozenset({A}),
    ),
    "audit.view": ("Read the audit log", frozenset({A})),
    "customer.view": (
        "Open a customer's card (sales: own and pool customers; front desk: every basic card; "
        "archived customers: those who archive)",
        frozenset({A, M, S, F}),
    ),
    "customer.view_details": (
        "Read a customer's notes, history, address and tasks (sales: own and pool customers)",
        frozenset({A, M, S}),
    ),
    "customer.create": ("Create customers", frozenset({A, M, S, F})),
    "customer.edit": (
        "Edit a customer's fields and tags (sales: own customers; nobody while archived)",
        frozenset({A, M, S}),
    ),
    "customer.choose_owner": (
        "Set the owner when creating a customer (managers also when editing)",
        frozenset({A, M, F}),
    ),
    "customer.archive": ("Archive and restore customers", frozenset({A, M})),
    "customer.merge": ("Merge duplicate customers, and undo a merge", frozenset({A, M})),
    "customer.purge": ("Delete an archived customer for good", frozenset({A})),
    "customer.import": (
        "Import customers from CSV or Excel files, and undo an import within 7 days",
        frozenset({A, M}),
    ),
    "customer.export": (
        "Export the customer and notes lists and a customer's whole record as Excel or CSV, audited "
        "(sales: own customers, when the office setting allows)",
        frozenset({A, M}),
    ),
    "note.create": (
        "Write notes (front desk: call and visit notes) on customers one may see",
        frozenset({A, M, S, F}),
    ),
    "note.edit": ("Edit a note (authors their own; managers any)", frozenset({A, M, S, F})),
    "note.delete": (
        "Delete a note (authors within 15 minutes; managers any)",
        frozenset({A, M, S, F}),
    ),
    "note.read": (
        "Read notes (authors their own; others on customers whose details they may read)",
        frozenset({A, M, S, F}),
    ),
    "note.comment": ("Comment on notes one may read (not on archived customers)", frozenset({A, M, S, F})),
    "note_template.manage": ("Edit the standard note templates", frozenset({A})),
    "tag.manage": ("Create, rename, merge and delete tags", frozenset({A, M})),
    "task.create": ("Create follow-up tasks on customers one may read", frozenset({A, M, S})),
    "task.view": ("See follow-up tasks: one's own on customers one may see", frozenset({A, M, S, F})),
    "task.view_all": ("See everybody's follow-up tasks", frozenset({A, M})),
    "task.update": (
        "Complete, snooze or reassign a task (own tasks; managers any)",
        frozenset({A, M, S, F}),
    ),
    "quality.view": ("Note quality view (missing sections, neglected customers)", frozenset({A, M})),
    "pool.view": ("Open the public pool (公海) and its customers' notes", frozenset({A, M, S})),
    "pool.claim": ("Claim a customer from the pool (领取)", frozenset({S})),
    "pool.release": ("Return a customer to the pool (own customers; managers any)", frozenset({A, M, S})),
    "pool.assign": ("Assign customers to a salesperson, single or bulk (分配)", frozenset({A, M})),
    "pool.lock": ("Lock a customer against recycling (own customers; managers any)", frozenset({A, M, S})),
    "pool.history": ("Pool events of all customers, tonight's recycling batch", frozenset({A, M})),
    "settings.edit": ("Edit the office settings (pool rules)", frozenset({A})),
    "backup.manage": (
        "Data safety: backups (list, download, back up now) and the nightly jobs",
        frozenset({A}),
    ),
    "search.use": (
        "Search customers and notes (finds only what one may see; archived ones: those who archive)",
        frozenset({A, M, S, F}),
    ),
}


# Roles that own customers (and may be assigned them or their follow-ups).
OWNER_ROLES = frozenset({Role.SALES, Role.MANAGER})
# Roles that act on every customer (edit, release, any note, any task).
MANAGING_ROLES = frozenset({Role.ADMIN, Role.MANAGER})
# Roles that look up every customer (front desk: the basic card only).
LOOKUP_ROLES = MANAGING_ROLES | {Role.FRONTDESK}
# Roles a follow-up task may be given to by someone else.
FOLLOW_UP_ROLES = frozenset({Role.ADMIN, Role.MANAGER, Role.SALES})

# Note kinds the front desk may write.
FRONTDESK_NOTE_KINDS = frozenset({"call", "visit"})
# How long an author may delete their own note.
NOTE_DELETE_WINDOW_SECONDS = 15 * 60

# What the card, the list's columns, its filters and the search may show or match, by
# field. The basic card (A1, A4) is what someone who may not read a customer's details
# sees, filters on and searches by: enough to route a caller, and to tell them when
# the customer was last contacted (never what was said).
CUSTOMER_FIELDS = frozenset({
    "name", "company", "phones", "owner", "email", "address", "region", "type", "stage",
    "importance", "source", "birthday", "tags", "last_contact", "created", "recycling",
})
BASIC_CARD_FIELDS = frozenset({"name", "company", "phones", "owner", "last_contact"})


class UnknownAction(KeyError):
    """Raised for an action name that is not in the table: a typo must not grant or
    silently deny anything."""


def roles_for(action: str) -> frozenset[Role]:
    """The roles the table allows ``action``. Raises UnknownAction for a name not in
    the table."""
    try:
        return PERMISSIONS[action][1]
    except KeyError:
        raise UnknownAction(action) from None


def _signed_in(user: User | None) -> TypeGuard[User]:
    return user is not None and getattr(user, "is_authenticated", False) and user.is_active


def may(user: User | None, action: str, obj: object | None = None) -> bool:
    """May ``user`` do ``action`` (to ``obj``)? Inactive and anonymous users may not.
    Raises UnknownAction for an action not in the table."""
    allowed = roles_for(action)
    if not _signed_in(user) or user.role not in allowed:
        return False
    check = _OBJECT_RULES.get(action)
    return check(user, obj) if check and obj is not None else True


# ---- object rules ------------------------------------------------------------------------

def _may_manage_user(actor: User, target: User) -> bool:
    # An admin may not demote or deactivate themself: a locked-out office is worse
    # than a slightly awkward hand-over.
    return actor.id != target.id


def _manages(user: User) -> bool:
    return user.role in MANAGING_ROLES


def _archived(customer) -> bool:
    return customer.archived_at is not None


def _may_see_customer(user: User, customer) -> bool:
    # Archived records are for the roles that archive (A4); for everyone else they
    # do not exist.
    if _archived(customer) and user.role not in roles_for("customer.archive"):
        return False
    return user.role in LOOKUP_ROLES or customer.owner_id is None or customer.owner_id == user.id


def _may_edit_customer(user: User, customer) -> bool:
    # Nothing changes on an archived customer until it is restored.
    return not _archived(customer) and (_manages(user) or customer.owner_id == user.id)


def _may_write_on(user: User, customer) -> bool:
    return not _archived(customer) and _may_see_customer(user, customer)


def _may_read_note(user: User, note) -> bool:
    if note.deleted_at is not None or not _may_see_customer(user, note.customer):
        return False
    return note.author_id == user.id or may(user, "customer.view_details", note.customer)


def _may_comment(user: User, note) -> bool:
    return _may_read_note(user, note) and not _archived(note.customer)


def _edits_note(user: User, note) -> bool:
    # Given that the user may comment on the note.
    return _manages(user) or note.author_id == user.id


def _deletes_note(user: User, note) -> bool:
    # Given that the user may comment on the note.
    from models import utcnow

    if _manages(user):
        return True
    age = (utcnow() - note.created_at).total_seconds()
    return note.author_id == user.id and age <= NOTE_DELETE_WINDOW_SECONDS


def _may_edit_note(user: User, note) -> bool:
    return _may_comment(user, note) and _edits_note(user, note)


def _may_delete_note(user: User, note) -> bool:
    return _may_comment(user, note) and _deletes_note(user, note)


def _may_see_task(user: User, task) -> bool:
    own = task.assignee_id == user.id
    return _may_see_customer(user, task.customer) and (own or may(user, "task.view_all"))


def _may_update_task(user: User, task) -> bool:
    if not _may_see_task(user, task) or _archived(task.customer):
        return False
    return _manages(user) or task.assignee_id == user.id


def _may_handle_owned(user: User, customer) -> bool:
    if _archived(customer):
        return False
    return _manages(user) or (customer.owner_id is not None and customer.owner_id == user.id)


def _may_claim(user: User, customer) -> bool:
    return not _archived(customer) and customer.owner_id is None


def _may_assign(user: User, customer) -> bool:
    return not _archived(customer)


_OBJECT_RULES = {
    "pool.claim": _may_claim,
    "pool.release": _may_handle_owned,
    "pool.lock": _may_handle_owned,
    "pool.assign": _may_assign,
    "users.manage": _may_manage_user,
    "customer.view": _may_see_customer,
    "customer.view_details": _may_see_customer,  # the role decides between card and details
    "customer.edit": _may_edit_customer,
    "customer.export": _may_see_customer,
    "note.create": _may_write_on,
    "note.read": _may_read_note,
    "note.edit": _may_edit_note,
    "note.delete": _may_delete_note,
    "note.comment": _may_comment,
    "task.create": _may_write_on,
    "task.view": _may_see_task,
    "task.update": _may_update_task,
}


# What a shown note offers: its buttons and its comment box.
NOTE_ACTIONS = ("note.edit", "note.delete", "note.comment")


def note_actions(user: User | None, note) -> frozenset[str]:
    """Which of :data:`NOTE_ACTIONS` ``user`` may do to ``note``: the answers of
    :func:`may` for each, with the note's customer looked at once instead of three
    times (a page of notes asks for every note)."""
    if not _signed_in(user) or not _may_comment(user, note):
        return frozenset()
    offered = {"note.comment"}
    if _edits_note(user, note):
        offered.add("note.edit")
    if _deletes_note(user, note):
        offered.add("note.delete")
    return frozenset(action for action in offered if user.role in roles_for(action))


def may_read_note(user: User, note) -> bool:
    """May ``user`` read ``note``? Authors always (front desk sees its own call and
    visit notes), others when they may read the customer's details; nobody a deleted
    note, and only those who archive the notes of an archived customer."""
    return may(user, "note.read", note)


def may_own_customers(user: User | None) -> bool:
    """May ``user`` be a customer's owner (claim, assignment, hand-over target)?"""
    return user is not None and user.active and user.role in OWNER_ROLES


def may_take_follow_up(user: User | None, actor: User | None = None) -> bool:
    """May ``user`` be given a follow-up task (by ``actor``)? Active colleagues of the
    sales side; front desk only its own (a note's follow-up written for itself)."""
    if user is None or not user.active:
        return False
    return user.role in FOLLOW_UP_ROLES or (actor is not None and user.id == actor.id)


def reading_is_audited(viewer: User, customer) -> bool:
    """Is ``viewer`` opening a customer someone else owns with a role that may open
    any (manager, admin)? Such reads leave an audit line (D1)."""
    return _manages(viewer) and customer.owner_id not in (None, viewer.id)


def owns_new_customers(user: User) -> bool:
    """Does a customer ``user`` enters (without choosing an owner) become theirs?
    Sales staff: yes; the front desk enters into the public pool."""
    return user.role == Role.SALES


def looks_up_first(user: User) -> bool:
    """Is ``user``'s home page the caller look-up (no details to show)?"""
    return not may(user, "customer.view_details")


def note_kinds_for(user: User) -> list[str]:
    """The note kinds ``user`` may write."""
    from models import NoteKind

    if user.role == Role.FRONTDESK:
        return [kind.value for kind in NoteKind if kind.value in FRONTDESK_NOTE_KINDS]
    return [kind.value for kind in NoteKind]


def visible_fields(user: User | None, customer=None) -> frozenset[str]:
    """The customer fields ``user`` sees (of ``customer``, or in lists), filters the
    list on and searches by: everything with ``customer.view_details``, else the
    basic card."""
    if may(user, "customer.view_details", customer):
        return CUSTOMER_FIELDS
    return BASIC_CARD_FIELDS if may(user, "customer.view", customer) else frozenset()


@dataclass(frozen=True)
class DuplicateView:
    """What a duplicate warning (C3) may show of an existing customer: the record
    itself (None when the user may not see it: then only that it exists and who owns
    it), the owner's name, and whether it is archived."""

    customer: object | None
    owner_name: str | None
    archived: bool


def duplicate_view(user: User, duplicate) -> DuplicateView:
    """How a duplicate warning shows ``duplicate`` to ``user`` (撞单)."""
    owner = duplicate.owner.display_name if duplicate.owner else None
    if may(user, "customer.view", duplicate):
        return DuplicateView(duplicate, owner, _archived(duplicate))
    return DuplicateView(None, owner, False)


# ---- which rows: one Scope, made into SQL here and into index filters by search ---------

@dataclass(frozen=True)
class Scope:
    """Which customers or notes a user may see, as data: everything, or those whose
    customer's owner is in ``owners`` (None: the public pool), plus — for notes —
    those written by someone in ``authors``; archived customers (and their notes)
    only when ``archived``; a typed text matched against ``fields`` (customer
    fields, see CUSTOMER_FIELDS). The SQL filters below and the search index's
    filters are both made from this, so they cannot disagree."""

    everything: bool = False
    owners: frozenset = frozenset()
    authors: frozenset = frozenset()
    archived: bool = False
    fields: frozenset = frozenset()

    @property
    def nothing(self) -> bool:
        return not self.everything and not self.owners and not self.authors


def customer_scope(user: User | None) -> Scope:
    """The customers ``user`` may see."""
    if not _signed_in(user):
        return Scope()
    archived = may(user, "customer.archive")
    fields = visible_fields(user)
    if user.role in LOOKUP_ROLES:
        return Scope(everything=True, archived=archived, fields=fields)
    return Scope(owners=frozenset({None, user.id}), archived=archived, fields=fields)


def note_scope(user: User | None) -> Scope:
    """The (not deleted) notes ``user`` may read."""
    if not _signed_in(user):
        return Scope()
    archived = may(user, "customer.archive")
    if user.role in MANAGING_ROLES:
        return Scope(everything=True, archived=archived)
    if not may(user, "customer.view_details"):
        return Scope(authors=frozenset({user.id}), archived=archived)
    return Scope(owners=frozenset({None, user.id}), authors=frozenset({user.id}), archived=archived)


def may_search_archived(user: User | None) -> bool:
    """Archived customers and their notes turn up in search only for those who may
    archive and restore them, and only when asked for."""
    return customer_scope(user).archived


def _owner_condition(owners: frozenset):
    from sqlalchemy import or_

    from models import Customer

    ids = sorted(owner for owner in owners if owner is not None)
    conditions = [Customer.owner_id.in_(ids)] if ids else []
    if None in owners:
        conditions.append(Customer.owner_id.is_(None))
    return or_(*conditions)


def visible_customers(user: User, query=None):
    """Restrict a ``select(Customer)`` (or a new one) to the customers ``user`` may
    see. Lists, search, exports and the API all go through this."""
    from sqlalchemy import false, select

    from models import Customer

    query = select(Customer) if query is None else query
    scope = customer_scope(user)
    if scope.nothing:
        return query.where(false())
    if not scope.archived:
        query = query.where(Customer.archived_at.is_(None))
    return query if scope.everything else query.where(_owner_condition(scope.owners))


def readable_notes(user: User, query=None):
    """Restrict a ``select(CustomerNote)`` to the notes ``user`` may read; deleted
    notes never. Joins Customer when needed."""
    from sqlalchemy import false, or_, select

    from models import Customer, CustomerNote

    query = select(CustomerNote) if query is None else query
    query = query.where(CustomerNote.deleted_at.is_(None))
    scope = note_scope(user)
    if scope.nothing:
        return query.where(false())
    if scope.owners or not scope.archived:
        query = query.join(Customer, Customer.id == CustomerNote.customer_id)
    if not scope.archived:
        query = query.where(Customer.archived_at.is_(None))
    if scope.everything:
        return query
    conditions = [CustomerNote.author_id.in_(sorted(scope.authors))] if scope.authors else []
    if scope.owners:
        conditions.append(_owner_condition(scope.owners))
    return query.where(or_(*conditions))


def visible_tasks(user: User, query=None):
    """Restrict a ``select(FollowUpTask)`` to the tasks ``user`` may see (the SQL of
    the ``task.view`` rule): their own, or everybody's with ``task.view_all``, on
    customers they may see. Joins Customer."""
    from sqlalchemy import select

    from models import Customer, FollowUpTask

    query = select(FollowUpTask) if query is None else query
    query = visible_customers(user, query.join(Customer, Customer.id == FollowUpTask.customer_id))
    if not may(user, "task.view_all"):
        query = query.where(FollowUpTask.assignee_id == user.id)
    return query


# ---- exports (A3): by role, or a salesperson's own customers when the office allows -----

def _exports_own_only(user: User | None, sales_own: bool) -> bool:
    return sales_own and _signed_in(user) and user.role == Role.SALES and not may(user, "customer.export")


def may_export(user: User | None, *, sales_own: bool = False) -> bool:
    """May ``user`` export lists? ``customer.export`` by role; with the office setting
    ``sales_own`` (services.settings "export.sales_own") also a salesperson, limited to
    their own customers (:func:`exportable_customers`)."""
    return may(user, "customer.export") or _exports_own_only(user, sales_own)


def may_export_customer(user: User | None, customer, *, sales_own: bool = False) -> bool:
    """May ``user`` download ``customer``'s whole record? Those who export and may see
    the customer; a salesperson (with ``sales_own``) only a customer they own."""
    if may(user, "customer.export", customer):
        return True
    return _exports_own_only(user, sales_own) and not _archived(customer) and customer.owner_id == user.id


def exportable_customers(user: User, query, *, sales_own: bool = False):
    """Narrow ``query`` (a customer list's, already within :func:`visible_customers`)
    to what ``user`` may export: all of it with ``customer.export``, a salesperson's
    own customers with ``sales_own`` (even where the list shows the pool too), else
    nothing."""
    from sqlalchemy import false

    from models import Customer

    if may(user, "customer.export"):
        return query
    if _exports_own_only(user, sales_own):
        return query.where(Customer.owner_id == user.id)
    return query.where(false())


def exportable_notes(user: User, query, *, sales_own: bool = False):
    """As :func:`exportable_customers`, for a notes query (within :func:`readable_notes`):
    a salesperson exports only the notes on customers they own."""
    from sqlalchemy import false, select
    from sqlalchemy.orm import aliased

    from models import Customer, CustomerNote

    if may(user, "customer.export"):
        return query
    if _exports_own_only(user, sales_own):
        owned = aliased(Customer)  # the notes query may join Customer itself
        return query.where(CustomerNote.customer_id.in_(select(owned.id).where(owned.owner_id == user.id)))
    return query.where(false())


def allowed_actions(user: User | None) -> set[str]:
    return {action for action in PERMISSIONS if may(user, action)}
