"""URL converters. ``<id:customer_id>`` is the only way a route takes an id: what
an id may look like is decided once, in :mod:`services.ids`."""

from __future__ import annotations

from werkzeug.routing import BaseConverter, ValidationError

from services import ids


def up_to(maximum: int) -> str:
    """A regular expression for the whole numbers 1 … ``maximum`` written without
    leading zeros: shorter numbers, then, digit by digit, those below ``maximum``."""
    digits = str(maximum)
    shorter = [f"[1-9][0-9]{{0,{len(digits) - 2}}}"] if len(digits) > 1 else []
    below = [
        f"{digits[:i]}[{int(i == 0)}-{int(digit) - 1}][0-9]{{{len(digits) - i - 1}}}"
        for i, digit in enumerate(digits) if int(digit) > int(i == 0)
    ]
    return "(?:" + "|".join([*shorter, *below, digits]) + ")"


class IdConverter(BaseConverter):
    """A row id in a path: ASCII digits naming 1 … ``ids.MAX_ID``. Anything else
    matches no route (404) instead of reaching the database, where '٣' (read as 3 by
    Werkzeug's ``int``) or 20 digits (an overflow, a 500) would."""

    # The pattern itself admits only ids: a value the pattern matched but to_python
    # refused would make Werkzeug answer 405 where a sibling rule (GET beside POST)
    # matched the path.
    regex = up_to(ids.MAX_ID)
    weight = 50  # as Werkzeug's int: a static segment (/customers/new) still wins

    def to_python(self, value: str) -> int:
        """Raises ValidationError (no match) for a value that is not an id."""
        number = ids.parse_id(value)
        if number is None:
            raise ValidationError()
        return number


def init_app(app) -> None:
    """Register the converters; before the blueprints, whose rules use them."""
    app.url_map.converters["id"] = IdConverter
