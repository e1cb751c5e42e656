"""Errors services raise when a rule refuses an action."""

from __future__ import annotations

from contextlib import contextmanager


class DomainError(Exception):
    """A refusal the user can act on. ``message`` is shown to the user (already
    translated or lazily translatable); ``field`` names the form field it concerns,
    if any."""

    def __init__(self, message, field: str | None = None):
        super().__init__(str(message))
        self.message = message
        self.field = field


@contextmanager
def refused_if_taken(message, field: str = "name"):
    """Make the block's changes in a savepoint and flush them there: a unique name
    taken meanwhile by a concurrent save (IntegrityError) becomes
    ``DomainError(message, field)``, undoing the block's changes only; the caller's
    transaction goes on."""
    from sqlalchemy.exc import IntegrityError

    from extensions import db

    try:
        with db.session.begin_nested():
            yield
            db.session.flush()
    except IntegrityError:
        raise DomainError(message, field) from None
