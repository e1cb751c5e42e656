"""Errors services raise when a rule refuses an action."""

from __future__ import annotations


class DomainError(Exception):
    """A refusal the user can act on. ``message`` is shown to the user (already
    translated or lazily translatable); ``field`` names the form field it concerns,
    if any."""

    def __init__(self, message, field: str | None = None):
        super().__init__(str(message))
        self.message = message
        self.field = field
