"""Reading ids, id lists, paging cursors and page numbers from text (URL paths, query
strings, forms): the one place that decides what an id may look like.

An id is up to 10 ASCII digits naming 1 … ``MAX_ID`` (spaces around it are dropped;
in a URL path :class:`blueprints.converters.IdConverter` also refuses leading zeros).
``str.isdigit()`` is not enough (it accepts '²', which ``int()`` refuses, and '٣',
which ``int()`` reads as 3), and ``int()`` has no bound: a 20-digit id reached the
database and failed there (SQLite cannot bind it, PostgreSQL answers "integer out of
range"), a 500. The parsers return None (or a default) for anything else and never
raise, so a bookmarked URL with junk in it keeps working; only the ``coerce_*``
functions raise, as WTForms wants. Pure, no Flask: services and views may share it.
"""

from __future__ import annotations

from datetime import datetime

# The id columns are INTEGER: 32-bit on PostgreSQL (64-bit on SQLite), so no row has
# a larger id and asking the database for one is an overflow error there.
MAX_ID = 2**31 - 1
MAX_ID_DIGITS = len(str(MAX_ID))
# Id lists come from checkboxes and filter chips; more than this is not a person.
MAX_IDS = 500
# Deeper than any list is long; keeps OFFSET (page × size) far inside a BIGINT.
MAX_PAGE = 100_000
# Longer numbers are not read at all (a page or a count is clamped, not parsed at
# any length: int() of thousands of digits is slow, then refused).
MAX_NUMBER_DIGITS = 20


def _whole_number(text, max_digits: int) -> int | None:
    """``text`` (stripped) as a whole number if it is 1 … ``max_digits`` ASCII digits."""
    if not isinstance(text, str):
        return None
    text = text.strip()
    if not (0 < len(text) <= max_digits and text.isascii() and text.isdigit()):
        return None
    return int(text)


def is_id(value) -> bool:
    """True for an int that could be a row's id (1 … MAX_ID); bools are not ids."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID


def parse_id(text) -> int | None:
    """The id ``text`` names, or None when it cannot name a row."""
    number = _whole_number(text, MAX_ID_DIGITS)
    return number if is_id(number) else None


def coerce_id(value) -> int:
    """For WTForms ``coerce=``: an int id from form text (or an int, as a form's
    default is). Raises ValueError otherwise, which the field reports as invalid."""
    number = value if isinstance(value, int) else parse_id(value)
    if not is_id(number):
        raise ValueError(f"not an id: {value!r}")
    return number


def coerce_optional_id(value) -> int | None:
    """As :func:`coerce_id`, with "" and None meaning no choice (None)."""
    return None if value in (None, "") else coerce_id(value)


def parse_ids(texts, limit: int = MAX_IDS) -> list[int]:
    """The ids among ``texts`` (e.g. ``request.args.getlist("tag")``), each once, in
    the order given, at most ``limit`` of them; the rest is dropped."""
    found: list[int] = []
    for text in texts or ():
        number = parse_id(text if isinstance(text, str) else str(text))
        if number is not None and number not in found:
            found.append(number)
            if len(found) == limit:
                break
    return found


def parse_page(text, maximum: int = MAX_PAGE) -> int:
    """A page number from 1 to ``maximum``: 1 for anything unreadable, ``maximum``
    for anything beyond it."""
    number = _whole_number(text, MAX_NUMBER_DIGITS)
    if number is None or number < 1:
        return 1
    return min(number, maximum)


def parse_bounded(text, default: int, low: int, high: int) -> int:
    """A whole number (a count of days, a minimum) from ``low`` to ``high``: ``default``
    for anything unreadable, clamped to the range otherwise."""
    number = _whole_number(text, MAX_NUMBER_DIGITS)
    return default if number is None else min(max(number, low), high)


def format_cursor(stamp: datetime, row_id: int) -> str:
    """A keyset cursor ("the rows after this one" in a (time, id) order):
    ``2026-03-01T14:30:00.000000,42``."""
    return f"{stamp.isoformat(timespec='microseconds')},{row_id}"


def parse_cursor(text) -> tuple[datetime, int] | None:
    """The (naive time, id) a :func:`format_cursor` cursor names, or None for
    anything it did not make."""
    stamp, _, row_id = (text or "").partition(",") if isinstance(text, str) else ("", "", "")
    number = parse_id(row_id)
    if number is None or not stamp.isascii():
        return None
    try:
        return datetime.fromisoformat(stamp).replace(tzinfo=None), number
    except ValueError:
        return None
