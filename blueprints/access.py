"""Loading the object a URL names, for views: 404 when the user may not know it
exists, 403 when they may see it but not do this to it (flaskr's ``get_post``)."""

from __future__ import annotations

from flask import abort
from flask_login import current_user

from extensions import db
from models import Customer, CustomerNote, FollowUpTask
from services import policy
from services.ids import is_id

def _get(model, object_id: int):
    # An id no row can have is not looked up: the database would overflow on it.
    return db.session.get(model, object_id) if is_id(object_id) else None


def actor():
    """The signed-in user as a model instance (not the proxy)."""
    return current_user._get_current_object()


def customer_or_404(customer_id: int, action: str = "customer.view") -> Customer:
    """The customer, if the current user may see it (else 404) and may do
    ``action`` to it (else 403)."""
    customer = _get(Customer, customer_id)
    if customer is None or not policy.may(actor(), "customer.view", customer):
        abort(404)
    if action != "customer.view":
        policy.authorize(actor(), action, customer)
    return customer


def note_or_404(note_id: int, action: str = "note.comment") -> CustomerNote:
    """The note, if the current user may read it (else 404) and may do ``action``
    to it (else 403)."""
    note = _get(CustomerNote, note_id)
    if note is None or not policy.may_read_note(actor(), note):
        abort(404)
    if action != "note.comment":
        policy.authorize(actor(), action, note)
    return note


def task_or_404(task_id: int, action: str = "task.update") -> FollowUpTask:
    """The task, if the current user may see its customer (else 404) and may do
    ``action`` to it (else 403)."""
    task = _get(FollowUpTask, task_id)
    if task is None or not (
        policy.may(actor(), "customer.view", task.customer)
        and (task.assignee_id == actor().id or policy.may(actor(), "task.view_all"))
    ):
        abort(404)
    policy.authorize(actor(), action, task)
    return task
