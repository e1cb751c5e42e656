"""Words and formats: the Chinese catalog's punctuation and glossary (docs/glossary.md),
one date format per language through the template filters, and no template or view
that formats a date by itself."""

import re
from datetime import date, datetime
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
CATALOG = ROOT / "translations/zh/LC_MESSAGES/messages.po"
GLOSSARY = ROOT / "docs/glossary.md"

CJK = r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef“”]"
# Placeholders, URLs and times keep their ASCII punctuation.
VERBATIM = re.compile(r"%\([a-z_]+\)[sd]|%[sd]|https?://\S+|\b\d{1,2}:\d{2}\b")
HALF_WIDTH = re.compile(rf"{CJK}\s*[:,()?!;]|[:,()?!;]\s*{CJK}")


def _messages():
    with CATALOG.open("rb") as po:
        for message in read_po(po):
            if not message.id:
                continue
            ids = message.id if isinstance(message.id, tuple) else (message.id,)
            strings = message.string if isinstance(message.string, tuple) else (message.string,)
            yield ids[0], [s for s in strings if s]


def half_width_problems(text: str) -> list[str]:
    """Half-width : , ( ) ? ! ; next to a Chinese character (placeholders, URLs and
    times aside)."""
    plain = VERBATIM.sub("X", text)
    return [plain[max(0, m.start() - 3):m.end() + 3] for m in HALF_WIDTH.finditer(plain)]


@pytest.mark.parametrize("text, bad", [
    ("负责人：%(name)s", False),
    ("负责人: %(name)s", True),
    ("请先退回一个,再领取", True),
    ("（到期 %(when)s）", False),
    ("(到期)", True),
    ("回收任务由 cron 每晚 02:00 运行：", False),
    ("%(reason)s：%(details)s", False),
    ("确定删除?", True),
    ("见 https://example.com/a,b 说明", False),
])
def test_the_punctuation_check_itself(text, bad):
    assert bool(half_width_problems(text)) is bad


def test_chinese_strings_use_full_width_punctuation():
    found = {msgid: problems for msgid, strings in _messages() for s in strings
             if (problems := half_width_problems(s))}
    assert found == {}


def _glossary() -> dict[str, list[str]]:
    """English term (first one of a row) → the Chinese words of that row."""
    text = GLOSSARY.read_text(encoding="utf-8")
    table = text.split("<!-- glossary:start -->")[1].split("<!-- glossary:end -->")[0]
    terms = {}
    for line in table.strip().splitlines()[2:]:
        english, chinese = (cell.strip() for cell in line.strip("|").split("|")[:2])
        terms[english.split(",")[0].split(" (")[0].strip()] = [w.strip() for w in chinese.split("/")]
    return terms


# A msgid naming the term (regular expression) must use one of the glossary's words.
RULES = {
    "note": r"\bnotes?\b",
    "follow-up task": r"\btasks?\b|\bfollow-ups\b",
    "public pool": r"\bpool\b",
    "claim": r"\bclaim(s|ed|ing)?\b",
    "release": r"\breleas",
    "recycle": r"\brecycl",
    "assign": r"\bassign(s|ed|ment)?\b",
    "owner": r"\bowner\b",
    "archive / restore / delete for good": r"\barchiv",
    "manager": r"\bmanagers?\b",
    "front desk": r"\bfront desk\b",
    "sales": r"\bsales\b",
}
# Where the English names the term but the Chinese rightly says something else.
EXCEPTIONS = {
    "%(customers)s and %(notes)s",  # placeholders only
    "Claim limit",  # the per-user limit of owned customers: 名下客户上限
}
# Compounds the glossary allows beside the term's own word.
ALSO = {"note": ["记录"], "archive / restore / delete for good": ["归档"]}


def test_the_glossary_names_each_checked_term():
    assert set(RULES) <= set(_glossary())


@pytest.mark.parametrize("term", sorted(RULES))
def test_the_catalog_uses_the_glossary_word(term):
    words = _glossary()[term] + ALSO.get(term, [])
    wrong = {msgid: strings for msgid, strings in _messages()
             if msgid not in EXCEPTIONS and re.search(RULES[term], msgid, re.I)
             and not any(word in s for s in strings for word in words)}
    assert wrong == {}


def test_tasks_are_never_called_notes_and_owner_words_stay_apart():
    note_word = _glossary()["note"][0]
    messages = dict(_messages())
    for msgid, strings in messages.items():
        if re.search(RULES["follow-up task"], msgid, re.I) and not re.search(RULES["note"], msgid, re.I):
            assert not any(note_word in s for s in strings), msgid
    assert messages["Assignee"] != messages["Owner"]  # a task's assignee is not the customer's owner
    assert messages["Follow-ups"] != messages["Notes"]


def test_one_form_of_address_and_no_second_word_for_note():
    for msgid, strings in _messages():
        assert not any("您" in s for s in strings), msgid
        assert not any("备注" in s for s in strings), msgid


# ---- dates ---------------------------------------------------------------------------

def _render(app, source, language, **values):
    with app.test_request_context(headers={"Accept-Language": language}):
        return app.jinja_env.from_string(source).render(**values)


@pytest.mark.parametrize("language, day, moment, seconds", [
    ("zh-CN", "2026年12月2日", "2026年12月2日 14:05", "2026年12月2日 14:05:09"),
    ("en", "2 Dec 2026", "2 Dec 2026, 14:05", "2 Dec 2026, 14:05:09"),
])
def test_one_date_format_per_language(app, language, day, moment, seconds):
    stored = datetime(2026, 12, 2, 6, 5, 9)  # UTC; the office is UTC+8
    shown = _render(app, "{{ d | date }}|{{ t | datetime }}|{{ t | datetime(seconds=True) }}|{{ t | date }}"
                         "|{{ d | datetime }}|{{ t | time }}|{{ none | datetime }}",
                    language, d=date(2026, 12, 2), t=stored, none=None)
    assert shown == f"{day}|{moment}|{seconds}|{day}|{day}|14:05|"


def test_the_day_is_the_office_day(app):
    late_evening_utc = datetime(2026, 12, 1, 17, 30)  # 01:30 on 2 December in Shanghai
    assert _render(app, "{{ t | date }}", "en", t=late_evening_utc) == "2 Dec 2026"


def test_week_labels(app):
    from blueprints.i18n import week_label

    with app.test_request_context(headers={"Accept-Language": "zh-CN"}):
        today = date(2026, 12, 2)
        assert week_label(date(2026, 11, 30), today) == "本周（11月30日–12月6日）"
        assert week_label(date(2026, 11, 23), today) == "11月23日–11月29日"
        assert week_label(date(2025, 12, 29), today) == "2025年12月29日–2026年1月4日"
    with app.test_request_context(headers={"Accept-Language": "en"}):
        assert week_label(date(2026, 11, 30), today) == "This week (30 Nov – 6 Dec)"
        assert week_label(date(2026, 11, 23), today) == "23 Nov – 29 Nov"


def test_python_messages_use_the_same_dates_lists_and_sentences(app):
    from blueprints.i18n import join_sentences, local_date, local_list

    with app.test_request_context(headers={"Accept-Language": "zh-CN"}):
        assert local_date(date(2026, 1, 5)) == "2026年1月5日"
        assert local_list(["张三", "李四"]) == "张三、李四"
        assert join_sentences(["已保存。", "已添加待办。"]) == "已保存。已添加待办。"
    with app.test_request_context(headers={"Accept-Language": "en"}):
        assert local_date(date(2026, 1, 5)) == "5 Jan 2026"
        assert local_list(["Zhang San", "Li Si"]) == "Zhang San, Li Si"
        assert join_sentences(["Saved.", "Planned."]) == "Saved. Planned."


def test_a_release_reason_reads_in_the_readers_language(app):
    from models import PoolEvent, PoolEventKind
    from services.pool import event_reason

    event = PoolEvent(kind=PoolEventKind.RELEASE, reason="改用别家", details={"reason_code": "other"})
    with app.test_request_context(headers={"Accept-Language": "zh-CN"}):
        assert event_reason(event) == "其他：改用别家"
    with app.test_request_context(headers={"Accept-Language": "en"}):
        assert event_reason(event) == "Other: 改用别家"


def test_pool_event_owners_are_not_called_dates(app, client, login_as):
    from extensions import db
    from services import customers
    from services.customers import CustomerData

    manager = login_as("manager", language="zh")
    with app.app_context():
        customers.create_customer(db.session.merge(manager), CustomerData(name="公海客户"))
        db.session.commit()
    page = client.get("/pool/events").data.decode()
    header = page.split('<table class="striped pool-events card-table">')[1].split("</thead>")[0]
    assert "原负责人" in header and "新负责人" in header
    assert "起始日期" not in header and "截止日期" not in header
    assert "起始日期" in page  # the date filter keeps its words


# Formatting a date anywhere but through the filters: Babel's and Flask-Babel's
# formatters, strftime, the former local_datetime filter with its own pattern.
SELF_FORMATTING = re.compile(
    r"strftime|format_date|format_datetime|format_time|\bdateformat\b|\bdatetimeformat\b|\btimeformat\b"
    r"|\blocal_datetime\b|\.isoformat\(\)")
# Machine-readable values keep ISO dates: form inputs and <time datetime="…">.
MACHINE = re.compile(r'(value|datetime)="[^"]*"')


def test_templates_use_only_the_date_filters():
    offenders = []
    for template in sorted((ROOT / "templates").rglob("*.html")):
        for number, line in enumerate(template.read_text(encoding="utf-8").splitlines(), start=1):
            if SELF_FORMATTING.search(MACHINE.sub("", line)):
                offenders.append(f"{template.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


def test_views_format_dates_only_through_the_i18n_helpers():
    offenders = []
    for module in sorted((ROOT / "blueprints").rglob("*.py")):
        if module.name == "i18n.py":
            continue
        text = module.read_text(encoding="utf-8")
        offenders += [f"{module.relative_to(ROOT)}: {m.group(0)}" for m in
                      re.finditer(r"strftime\(|format_date\w*\(|format_datetime\(|format_time\(", text)]
    assert offenders == []


def test_counts_and_filter_labels_are_bracketed_per_language(app):
    source = "{{ _('(%(num)d)', num=3) }} {{ _('%(label)s: all', label='类型') }}"
    assert _render(app, source, "zh-CN") == "（3） 类型：全部"
    assert _render(app, source, "en") == "(3) 类型: all"
