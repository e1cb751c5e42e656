"""Who may do what: the one place that decides permissions.

``PERMISSIONS`` is the table of actions × roles that the README shows (a test keeps
the two identical). Views ask through :func:`may`, :func:`authorize` or the
:func:`permission_required` decorator; nothing else checks roles.
"""

from __future__ import annotations

from dataclasses import dataclass

from functools import wraps

from flask import abort
from flask_babel import lazy_gettext as _l
from flask_login import current_user

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
        "Open a customer's card (sales: own and pool customers; front desk: every basic card)",
        frozenset({A, M, S, F}),
    ),
    "customer.view_details": (
        "Read a customer's notes, history, address and tasks (sales: own and pool customers)",
        frozenset({A, M, S}),
    ),
    "customer.create": ("Create customers", frozenset({A, M, S, F})),
    "customer.edit": ("Edit a customer's fields and tags (sales: own customers)", frozenset({A, M, S})),
    "customer.choose_owner": (
        "Set the owner when creating a customer (managers also when editing)",
        frozenset({A, M, F}),
    ),
    "customer.archive": ("Archive and restore customers", frozenset({A, M})),
    "customer.merge": ("Merge duplicate customers, and undo a merge", frozenset({A, M})),
    "customer.purge": ("Delete an archived customer for good", frozenset({A})),
    "note.create": (
        "Write notes (front desk: call and visit notes) on customers one may see",
        frozenset({A, M, S, F}),
    ),
    "note.edit": ("Edit a note (authors their own; managers any)", frozenset({A, M, S, F})),
    "note.delete": (
        "Delete a note (authors within 15 minutes; managers any)",
        frozenset({A, M, S, F}),
    ),
    "note.comment": ("Comment on notes one may read", frozenset({A, M, S, F})),
    "note_template.manage": ("Edit the standard note templates", frozenset({A})),
    "tag.manage": ("Create, rename, merge and delete tags", frozenset({A, M})),
    "task.create": ("Create follow-up tasks on customers one may read", frozenset({A, M, S})),
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
    "search.use": (
        "Search customers and notes (finds only what one may see; archived ones: those who archive)",
        frozenset({A, M, S, F}),
    ),
}

# Roles that own customers (and may be assigned them or their follow-ups).
OWNER_ROLES = frozenset({Role.SALES, Role.MANAGER})

# Note kinds the front desk may write.
FRONTDESK_NOTE_KINDS = frozenset({"call", "visit"})
# How long an author may delete their own note.
NOTE_DELETE_WINDOW_SECONDS = 15 * 60

ROLE_LABELS = {
    Role.ADMIN: _l("Administrator"),
    Role.MANAGER: _l("Manager"),
    Role.SALES: _l("Sales"),
    Role.FRONTDESK: _l("Front desk"),
}


class UnknownAction(KeyError):
    """Raised for an action name that is not in the table: a typo must not grant or
    silently deny anything."""


def roles_for(action: str) -> frozenset[Role]:
    try:
        return PERMISSIONS[action][1]
    except KeyError:
        raise UnknownAction(action) from None


def may(user: User | None, action: str, obj: object | None = None) -> bool:
    """May ``user`` do ``action`` (to ``obj``)? Inactive and anonymous users may not."""
    allowed = roles_for(action)
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    if user.role not in allowed:
        return False
    check = _OBJECT_RULES.get(action)
    return check(user, obj) if check and obj is not None else True


def authorize(user: User | None, action: str, obj: object | None = None) -> None:
    """Abort with 403 unless ``user`` may do ``action`` (to ``obj``)."""
    if not may(user, action, obj):
        abort(403)


def permission_required(action: str):
    """View decorator: 401 handling for anonymous users (Flask-Login), 403 for users
    whose role does not allow ``action``."""
    roles_for(action)  # fail at import time on a misspelt action

    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            from extensions import login_manager

            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            authorize(current_user, action)
            return view(*args, **kwargs)

        return wrapped

    return decorator


def _may_manage_user(actor: User, target: User) -> bool:
    # An admin may not demote or deactivate themself: a locked-out office is worse
    # than a slightly awkward hand-over.
    return actor.id != target.id


def _sees_all(user: User) -> bool:
    return user.role in (Role.ADMIN, Role.MANAGER)


def _may_see_customer(user: User, customer) -> bool:
    if _sees_all(user) or user.role == Role.FRONTDESK:
        return True
    return customer.owner_id is None or customer.owner_id == user.id


def _may_edit_customer(user: User, customer) -> bool:
    return _sees_all(user) or customer.owner_id == user.id


def _may_write_note_on(user: User, customer) -> bool:
    return _may_see_customer(user, customer) and customer.archived_at is None


def _may_edit_note(user: User, note) -> bool:
    if note.deleted_at is not None:
        return False
    return _sees_all(user) or note.author_id == user.id


def _may_delete_note(user: User, note) -> bool:
    from models import utcnow

    if note.deleted_at is not None:
        return False
    if _sees_all(user):
        return True
    age = (utcnow() - note.created_at).total_seconds()
    return note.author_id == user.id and age <= NOTE_DELETE_WINDOW_SECONDS


def _may_read_note(user: User, note) -> bool:
    if note.deleted_at is not None:
        return False
    if note.author_id == user.id:
        return True
    return may(user, "customer.view_details", note.customer)


def _may_update_task(user: User, task) -> bool:
    return _sees_all(user) or task.assignee_id == user.id


def _may_handle_owned(user: User, customer) -> bool:
    return _sees_all(user) or (customer.owner_id is not None and customer.owner_id == user.id)


_OBJECT_RULES = {
    "pool.release": _may_handle_owned,
    "pool.lock": _may_handle_owned,
    "users.manage": _may_manage_user,
    "customer.view": _may_see_customer,
    "customer.view_details": _may_see_customer,
    "customer.edit": _may_edit_customer,
    "note.create": _may_write_note_on,
    "note.edit": _may_edit_note,
    "note.delete": _may_delete_note,
    "note.comment": _may_read_note,
    "task.create": _may_see_customer,
    "task.update": _may_update_task,
}


def may_read_note(user: User, note) -> bool:
    """May ``user`` read ``note``? Authors always (front desk sees its own call and
    visit notes), others when they may read the customer's details."""
    return may(user, "note.comment", note)


def may_own_customers(user: User | None) -> bool:
    """May ``user`` be a customer's owner (claim, assignment, hand-over target)?"""
    return user is not None and user.active and user.role in OWNER_ROLES


def note_kinds_for(user: User) -> list[str]:
    """The note kinds ``user`` may write."""
    from models import NoteKind

    if user.role == Role.FRONTDESK:
        return [kind.value for kind in NoteKind if kind.value in FRONTDESK_NOTE_KINDS]
    return [kind.value for kind in NoteKind]


def sees_every_customer(user: User) -> bool:
    """True when ``visible_customers`` restricts nothing for ``user``."""
    return _sees_all(user) or user.role == Role.FRONTDESK


@dataclass(frozen=True)
class Scope:
    """Which customers or notes a user may see, as data: everything, or those whose
    customer's owner is in ``owners`` (None: the public pool), plus — for notes —
    those written by someone in ``authors``. The SQL filters below and the search
    index's filters are both made from this, so they cannot disagree."""

    everything: bool = False
    owners: frozenset = frozenset()
    authors: frozenset = frozenset()

    @property
    def nothing(self) -> bool:
        return not self.everything and not self.owners and not self.authors


def customer_scope(user: User | None) -> Scope:
    """The customers ``user`` may see."""
    if not user or not getattr(user, "is_authenticated", False) or not user.is_active:
        return Scope()
    if _sees_all(user) or user.role == Role.FRONTDESK:
        return Scope(everything=True)
    return Scope(owners=frozenset({None, user.id}))


def note_scope(user: User | None) -> Scope:
    """The (not deleted) notes ``user`` may read."""
    if not user or not getattr(user, "is_authenticated", False) or not user.is_active:
        return Scope()
    if _sees_all(user):
        return Scope(everything=True)
    if user.role == Role.FRONTDESK:
        return Scope(authors=frozenset({user.id}))
    return Scope(owners=frozenset({None, user.id}), authors=frozenset({user.id}))


def may_search_archived(user: User | None) -> bool:
    """Archived customers and their notes turn up in search only for those who may
    archive and restore them, and only when asked for."""
    return may(user, "customer.archive")


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
    if scope.everything:
        return query
    if scope.nothing:
        return query.where(false())
    return query.where(_owner_condition(scope.owners))


def readable_notes(user: User, query=None):
    """Restrict a ``select(CustomerNote)`` to the notes ``user`` may read; deleted
    notes never. Joins Customer when needed."""
    from sqlalchemy import false, or_, select

    from models import Customer, CustomerNote

    query = select(CustomerNote) if query is None else query
    query = query.where(CustomerNote.deleted_at.is_(None))
    scope = note_scope(user)
    if scope.everything:
        return query
    if scope.nothing:
        return query.where(false())
    conditions = [CustomerNote.author_id.in_(sorted(scope.authors))] if scope.authors else []
    if scope.owners:
        query = query.join(Customer, Customer.id == CustomerNote.customer_id)
        conditions.append(_owner_condition(scope.owners))
    return query.where(or_(*conditions))


def allowed_actions(user: User | None) -> set[str]:
    return {action for action in PERMISSIONS if may(user, action)}
