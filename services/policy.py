"""Who may do what: the one place that decides permissions.

``PERMISSIONS`` is the table of actions × roles that the README shows (a test keeps
the two identical). Views ask through :func:`may`, :func:`authorize` or the
:func:`permission_required` decorator; nothing else checks roles.
"""

from __future__ import annotations

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
}

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


_OBJECT_RULES = {"users.manage": _may_manage_user}


def allowed_actions(user: User | None) -> set[str]:
    return {action for action in PERMISSIONS if may(user, action)}
