"""Both languages, every string translated, times in the office time zone."""

import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
CATALOG = ROOT / "translations/zh/LC_MESSAGES/messages.po"


@pytest.mark.parametrize("accept, lang", [
    ("zh-CN,zh;q=0.9,en;q=0.8", "zh-CN"),
    ("zh-TW", "zh-CN"),
    ("zh", "zh-CN"),
    ("en-US,en;q=0.9", "en"),
    ("de-DE", "zh-CN"),  # neither: the office default
])
def test_language_from_the_browser(client, accept, lang):
    page = client.get("/login", headers={"Accept-Language": accept}).data.decode()
    assert f'<html lang="{lang}"' in page
    assert ("登录" in page) is (lang == "zh-CN")


def test_users_setting_beats_the_browser(client, login_as):
    login_as("sales", language="zh")
    page = client.get("/", headers={"Accept-Language": "en"}).data.decode()
    assert '<html lang="zh-CN"' in page and "欢迎" in page


def test_times_are_shown_in_the_office_time_zone(app):
    from blueprints.i18n import local_datetime

    with app.test_request_context(headers={"Accept-Language": "en"}):
        shown = local_datetime(datetime(2026, 1, 1, 23, 30))
    assert shown == "2 Jan 2026, 07:30"  # UTC+8


def test_dates_are_written_as_babel_writes_them_in_each_requests_language(app, monkeypatch):
    """The date writer is the reader's: looked up once per request (not per date:
    a list page writes about forty), and never carried into the next request, which may be
    in the other language. Naive times are UTC, aware ones are converted as they are.
    Each request here has its own app context, as under a server (Flask-Babel keeps
    the locale on ``g``)."""
    from datetime import UTC, date

    from babel.dates import format_date, format_datetime
    from flask_babel import get_locale

    import blueprints.i18n as i18n
    from services.office_time import office_zone

    lookups = []
    looked_up = i18n.get_locale
    monkeypatch.setattr(i18n, "get_locale", lambda: lookups.append(1) or looked_up())
    moments = [datetime(2026, 1, 1, 23, 30, 15), datetime(2026, 12, 31, 16, 0), datetime(2026, 6, 1, 4, 5, 6),
               datetime(2026, 6, 1, 4, 5, 6, tzinfo=UTC)]
    for accept, patterns in (("en", i18n.PATTERNS["en"]), ("zh-CN", i18n.PATTERNS["zh"]), ("en", i18n.PATTERNS["en"])):
        with app.test_request_context(headers={"Accept-Language": accept}):
            lookups.clear()
            locale = get_locale()
            for moment in moments:
                local = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(office_zone())
                assert i18n.local_datetime(moment) == format_datetime(local, patterns["datetime"], locale=locale)
                assert i18n.local_datetime(moment, seconds=True) == format_datetime(
                    local, patterns["seconds"], locale=locale)
                assert i18n.local_time(moment) == format_datetime(local, "HH:mm", locale=locale)
                assert i18n.local_date(moment) == format_date(local.date(), patterns["date"], locale=locale)
            assert i18n.local_date(date(2026, 5, 1)) == format_date(date(2026, 5, 1), patterns["date"], locale=locale)
            assert len(lookups) == 1, accept


def _catalog():
    with CATALOG.open("rb") as po:
        return read_po(po)


def test_every_message_has_a_chinese_translation():
    missing = [m.id for m in _catalog() if m.id and (not m.string or m.fuzzy)]
    assert missing == []


def test_catalog_holds_every_message_in_the_code(tmp_path):
    pot = tmp_path / "messages.pot"
    subprocess.run(
        [sys.executable, "-m", "babel.messages.frontend", "extract", "-F", "babel.cfg",
         "-k", "_l", "-k", "lazy_gettext", "--ignore-dirs=.venv instance tests bench migrations",
         "-o", str(pot), "."],
        cwd=ROOT, check=True, capture_output=True,
    )
    with pot.open("rb") as template:
        in_code = {m.id for m in read_po(template) if m.id}
    in_catalog = {m.id for m in _catalog() if m.id}
    assert in_code - in_catalog == set(), "run `make extract-messages` and translate"


TRANSLATED = [
    "{{ _('Save note') }}|{{ gettext('Notes') }}",
    "{{ _('Customer %(name)s saved.', name=name) }}",  # the name is escaped, the message is not
    "{{ ngettext('%(num)d note', '%(num)d notes', 1) }} {{ ngettext('%(num)d note', '%(num)d notes', 7) }}",
    "{{ ngettext('%(num)d customer without a note for %(days)d days or more', "
    "'%(num)d customers without a note for %(days)d days or more', 2, days=30) }}",
    "{% autoescape false %}{{ _('Customer %(name)s saved.', name=name) }}{% endautoescape %}",
]


@pytest.mark.parametrize("language", ["zh", "en"])
@pytest.mark.parametrize("source", TRANSLATED)
def test_gettext_bound_per_render_says_what_flask_babel_says(app, language, source):
    """Pages render with _() and ngettext bound once to their catalog
    (blueprints.i18n.bound_gettext); what they write is what Flask-Babel's own
    Jinja functions write, escaping included."""
    from flask import render_template_string

    with app.test_request_context(headers={"Accept-Language": language}):
        bound = render_template_string(source, name="<b>张伟</b>")
        flask_babel_own = app.jinja_env.from_string(source).render(name="<b>张伟</b>")
        context: dict = {}
        app.update_template_context(context)
    assert context["gettext"] is not app.jinja_env.globals["gettext"]  # the bound one renders
    assert bound == flask_babel_own
    assert ("<b>" in bound) is ("autoescape false" in source)
    assert any("\u4e00" <= char <= "\u9fff" for char in bound.replace("张伟", "")) is (language == "zh")
