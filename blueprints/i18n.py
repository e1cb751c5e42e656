"""Language and time zone: the user's setting, else the browser's preference; and the
one way dates and times are written on every page (the ``date``, ``datetime``,
``time`` and ``week`` template filters, and the same functions for messages built in
Python). Templates never format a date themselves (tests/test_words.py checks)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any

from babel import Locale
from babel.dates import DateTimePattern, parse_pattern
from flask import current_app, g, has_request_context, request
from flask_babel import get_locale, get_translations, gettext
from flask_login import current_user
from jinja2 import pass_context
from markupsafe import Markup

from services.office_time import office_today, office_zone, utc_to_local

# One pattern per language, for a day and for a moment (CLDR patterns, see Babel).
# zh: 2026年12月2日 / 2026年12月2日 14:05;  en: 2 Dec 2026 / 2 Dec 2026, 14:05.
PATTERNS = {
    "zh": {"date": "y年M月d日", "datetime": "y年M月d日 HH:mm", "seconds": "y年M月d日 HH:mm:ss",
           "day_month": "M月d日"},
    "en": {"date": "d MMM y", "datetime": "d MMM y, HH:mm", "seconds": "d MMM y, HH:mm:ss",
           "day_month": "d MMM"},
}
TIME_PATTERN = "HH:mm"


def select_locale() -> str:
    """The signed-in user's language, else the best match of the browser's
    Accept-Language (``zh-CN``, ``zh-TW`` and ``zh`` all pick the ``zh`` catalog)."""
    languages = current_app.config["LANGUAGES"]
    if not has_request_context():  # CLI commands and background work
        return current_app.config["BABEL_DEFAULT_LOCALE"]
    language = getattr(current_user, "language", None) if current_user else None
    if language in languages:
        return language
    return request.accept_languages.best_match(languages) or current_app.config[
        "BABEL_DEFAULT_LOCALE"
    ]


def select_timezone() -> str:
    return current_app.config["OFFICE_TIMEZONE"]


class _DateWriter:
    """The reader's locale, their language's patterns (parsed) and the office's time
    zone, looked up once per request (:func:`_writer`): Flask-Babel's format functions
    look the locale and the time zone up again at every call, two thirds of a date's
    cost, and a customer list page writes about forty dates."""

    def __init__(self) -> None:
        self.locale = get_locale() or Locale.parse(current_app.config["BABEL_DEFAULT_LOCALE"])
        self.zone = office_zone()
        patterns = {**PATTERNS.get(self.locale.language, PATTERNS["en"]), "time": TIME_PATTERN}
        self.patterns: dict[str, DateTimePattern] = {name: parse_pattern(p) for name, p in patterns.items()}

    def local(self, value: datetime) -> datetime:
        """A stored datetime (naive: UTC) in the office's time zone."""
        return value.astimezone(self.zone) if value.tzinfo else utc_to_local(value, self.zone)

    def write(self, value: date | datetime, pattern: str) -> str:
        return self.patterns[pattern].apply(value, self.locale)


def _writer() -> _DateWriter:
    """This request's (or, outside one, this app context's) :class:`_DateWriter`."""
    holder: Any = request if has_request_context() else g
    writer = getattr(holder, "deskbook_date_writer", None)
    if writer is None:
        writer = holder.deskbook_date_writer = _DateWriter()
    return writer


def local_date(value: date | datetime | None) -> str:
    """A day in the reader's language: 2026年12月2日 / 2 Dec 2026. A datetime (stored
    in UTC) gives its day in the office time zone. None gives ""."""
    if value is None:
        return ""
    writer = _writer()
    return writer.write(writer.local(value).date() if isinstance(value, datetime) else value, "date")


def local_datetime(value: datetime | date | None, *, seconds: bool = False) -> str:
    """A stored UTC datetime in the office time zone and the reader's language:
    2026年12月2日 14:05 / 2 Dec 2026, 14:05 (``seconds`` adds them: the audit log).
    A plain date is shown as a day. None gives ""."""
    if value is None:
        return ""
    if not isinstance(value, datetime):
        return local_date(value)
    writer = _writer()
    return writer.write(writer.local(value), "seconds" if seconds else "datetime")


def local_time(value: datetime | None) -> str:
    """Only the time of day, 14:05 (office time zone): for lists of today's events."""
    if value is None:
        return ""
    writer = _writer()
    return writer.write(writer.local(value), "time")


def file_stamp(value: datetime) -> str:
    """A moment in office time as it goes into a download's file name: 20261202-1405
    (sorts by time, the same in every language)."""
    return utc_to_local(value).strftime("%Y%m%d-%H%M")


def _is_zh() -> bool:
    locale = get_locale()
    return bool(locale and locale.language == "zh")


def local_list(items: Iterable[str]) -> str:
    """Names or labels run together: 张三、李四 / Zhang San, Li Si."""
    return ("、" if _is_zh() else ", ").join(str(item) for item in items)


def join_sentences(sentences: Iterable[str]) -> str:
    """Whole sentences one after another: Chinese runs them on after its 。, English
    puts a space between them."""
    return ("" if _is_zh() else " ").join(str(sentence) for sentence in sentences)


def week_label(start: date, today: date | None = None) -> str:
    """The week starting on Monday ``start`` as its days: 11月23日–11月29日 /
    23 Nov – 29 Nov, with the years when it is not all this year; the current week is
    本周（11月30日–12月6日） / This week (30 Nov – 6 Dec)."""
    today = today or office_today()
    end = start + timedelta(days=6)
    writer = _writer()

    this_year = start.year == end.year == today.year

    def day(value: date) -> str:
        return writer.write(value, "day_month" if this_year else "date")

    days = f"{day(start)}–{day(end)}" if _is_zh() else f"{day(start)} – {day(end)}"
    if start <= today <= end:
        return gettext("This week (%(days)s)", days=days)
    return days


def init_app(app) -> None:
    app.add_template_filter(local_date, "date")
    app.add_template_filter(local_datetime, "datetime")
    app.add_template_filter(local_time, "time")
    app.add_template_filter(week_label, "week")
    # The former name, kept so a template still using it renders (ignoring its
    # pattern) while tests/test_words.py points at it.
    app.add_template_filter(lambda value, _pattern=None: local_datetime(value), "local_datetime")

    @app.context_processor
    def language_context():
        return {"html_lang": "zh-CN" if _is_zh() else "en", **bound_gettext(get_translations())}


def bound_gettext(translations) -> dict:
    """``gettext``/``_`` and ``ngettext`` for one render, bound to its catalog. They
    shadow what Flask-Babel installs in Jinja and behave the same (Jinja's new-style
    gettext: the message marked safe under autoescape, then %-formatted with the
    keyword arguments, escaped; ``num`` given to ngettext), but Flask-Babel's looks
    the locale and catalog up again at every call: 8 µs, a hundred times on a
    customer page."""

    @pass_context
    def gettext_(context, string: str, **variables):
        text = translations.ugettext(string)
        return (Markup(text) if context.eval_ctx.autoescape else text) % variables

    @pass_context
    def ngettext_(context, singular: str, plural: str, num: int, **variables):
        variables.setdefault("num", num)
        text = translations.ungettext(singular, plural, num)
        return (Markup(text) if context.eval_ctx.autoescape else text) % variables

    return {"gettext": gettext_, "ngettext": ngettext_}
