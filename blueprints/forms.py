"""What every form and every query string share: text the database cannot store
and dates it cannot hold never reach a service (PostgreSQL refuses a NUL character
in text; a date in year 1 overflows when converted to UTC)."""

from __future__ import annotations

import re
from datetime import date, datetime

from flask import request
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from werkzeug.datastructures import ImmutableMultiDict
from wtforms.validators import Length

from services.errors import DomainError

UNSTORABLE = "\x00"
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # all but tab, newline, carriage return
MIN_YEAR, MAX_YEAR = 1900, 2999


def max_length(limit: int, minimum: int = -1) -> Length:
    """A length limit whose message names the limit and the length typed. Fields
    render without ``maxlength`` (see :class:`Form`): a pasted longer text is kept
    and refused with this message, never cut short by the browser unseen."""
    if minimum > 0:
        return Length(min=minimum, max=limit, message=_l(
            "Use %(min)d to %(max)d characters (this has %(length)d)."))
    return Length(max=limit, message=_l("At most %(max)d characters (this has %(length)d): shorten it."))


class Form(FlaskForm):
    """The base of every form. Besides each field's own validators: a field whose
    text holds a NUL character, or whose date is outside MIN_YEAR–MAX_YEAR, gets a
    message next to it and the form does not validate. No field renders
    ``maxlength``/``minlength`` (WTForms derives them from Length): the browser would
    cut a pasted text silently; the server refuses it with the limit instead."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self:
            for flag in ("maxlength", "minlength"):
                if getattr(field.flags, flag, None) is not None:
                    delattr(field.flags, flag)

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        for field in self:
            message = _unsaveable(field.data)
            if message and not field.errors:  # one message per field, not two that overlap
                field.errors = [*field.errors, message]
                valid = False
        return valid

    def refuse(self, refused: DomainError, field: str | None = None) -> None:
        """Show a service's refusal next to ``field`` (by default the one the refusal
        names), or above the form when the form has no such field (none named, or
        one this user's form left out)."""
        name = field or refused.field
        if name and name in self:
            self[name].errors = [*self[name].errors, refused.message]
        else:
            self.form_errors.append(refused.message)


def _unsaveable(data):
    """Why ``data`` (a field's value) cannot be saved, or None."""
    values = data if isinstance(data, (list, tuple)) else [data]
    for value in values:
        if isinstance(value, str) and UNSTORABLE in value:
            return _l("Contains a character that cannot be saved (a null character). Remove it and try again.")
        if isinstance(value, (date, datetime)) and not MIN_YEAR <= value.year <= MAX_YEAR:
            return _l("Enter a date between the years %(first)d and %(last)d.", first=MIN_YEAR, last=MAX_YEAR)
    return None


def clean_query_string() -> None:
    """Before every request: query-string values lose their control characters (a
    NUL in ``q`` failed on PostgreSQL), so that no view reads one."""
    pairs = list(request.args.items(multi=True))
    if any(CONTROL.search(key) or CONTROL.search(value) for key, value in pairs):
        request.args = ImmutableMultiDict([(CONTROL.sub("", key), CONTROL.sub("", value)) for key, value in pairs])
