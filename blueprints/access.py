"""The web side of the policy module: the view decorator, and loading the object a
URL names — 404 when the user may not know it exists, 403 when they may see it but
not do this to it (flaskr's ``get_post``). services.policy decides; this module only
turns its answers into responses."""

from __future__ import annotations

from functools import wraps

from flask import abort
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from extensions import db
from models import Customer, CustomerNote, FollowUpTask, Role, User
from services import customers, policy
from services.ids import is_id

ROLE_LABELS = {
    Role.ADMIN: _l("Administrator"),
    Role.MANAGER: _l("Manager"),
    Role.SALES: _l("Sales"),
    Role.FRONTDESK: _l("Front desk"),
}


def authorize(user: User | None, action: str, obj: object | None = None) -> None:
    """Abort with 403 unless ``user`` may do ``action`` (to ``obj``)."""
    if not policy.may(user, action, obj):
        abort(403)


def permission_required(action: str):
    """View decorator: 401 handling for anonymous users (Flask-Login), 403 for users
    whose role does not allow ``action``. Raises UnknownAction at import time for a
    misspelt action."""
    policy.roles_for(action)

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


def _get(model, object_id: int):
    # An id no row can have is not looked up: the database would overflow on it.
    return db.session.get(model, object_id) if is_id(object_id) else None


def actor():
    """The signed-in user as a model instance (not the proxy)."""
    return current_user._get_current_object()


def _load(model, object_id: int, seen: str, action: str):
    """The object, if the current user may ``seen`` it (else 404) and may do
    ``action`` to it (else 403)."""
    return _allowed(_get(model, object_id), seen, action)


def _allowed(obj, seen: str, action: str):
    if obj is None or not policy.may(actor(), seen, obj):
        abort(404)
    if action != seen:
        authorize(actor(), action, obj)
    return obj


def customer_or_404(customer_id: int, action: str = "customer.view", *, brief: bool = False) -> Customer:
    """The customer, if the current user may see it (else 404) and may do
    ``action`` to it (else 403). ``brief``: its phones and tags are not read now
    (they load if used), for a request that answers without the card."""
    if not brief:
        return _load(Customer, customer_id, "customer.view", action)
    return _allowed(customers.get(customer_id, brief=True) if is_id(customer_id) else None, "customer.view", action)


def note_or_404(note_id: int, action: str = "note.read") -> CustomerNote:
    """The note, if the current user may read it (else 404) and may do ``action``
    to it (else 403)."""
    return _load(CustomerNote, note_id, "note.read", action)


def task_or_404(task_id: int, action: str = "task.update") -> FollowUpTask:
    """The task, if the current user may see it (else 404) and may do ``action`` to
    it (else 403)."""
    return _load(FollowUpTask, task_id, "task.view", action)
