"""Errors services raise when a rule refuses an action."""

from __future__ import annotations

from contextlib import contextmanager


class DomainError(Exception):
    """A refusal the user can act on. ``message`` is shown to the user: translated
    when raised (in the request's language) and kept as plain ``str``. A lazy
    translation is Markup-like (it has ``__html__``), so one carrying a name would
    reach a template or the session as HTML; plain text is always escaped. ``field``
    names the form field it concerns, if any."""

    def __init__(self, message, field: str | None = None):
        self.message: str = str(message)
        super().__init__(self.message)
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
