"""Notes services: write, edit with revisions, delete window, comments, @mentions,
keyset paging, the notes list, the quality view and the note templates."""

from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from extensions import db
from models import (
    AuditEvent,
    Customer,
    CustomerNote,
    FollowUpTask,
    Mention,
    NoteTemplate,
    utcnow,
)
from services import accounts, customers, mentions, note_templates, notes, notes_list, office_time
from services.errors import DomainError
from services.note_templates import TemplateData
from services.notes import NoteData
from services.notes_list import NoteFilter
from tests.conftest import TEST_PASSWORD
from tests.factories import make_customer as _customer
from tests.factories import make_note as _note
from tests.factories import make_tag


@pytest.fixture
def staff(app):
    with app.app_context():
        made = {role: accounts.create_user(f"{role}.one", TEST_PASSWORD, role, display_name=f"{role} 1")
                for role in ("admin", "manager", "sales", "frontdesk")}
        made["sales2"] = accounts.create_user("sales.two", TEST_PASSWORD, "sales", display_name="王芳")
        yield made


def _tag(name, group="需求"):
    return make_tag(name, group)


def _template(name="来电登记", required=("summary", "needs"), **kwargs):
    template = NoteTemplate(name=name, kind=kwargs.get("kind", "call"), active=kwargs.get("active", True),
                            prompts={"summary": "来电事由：", "needs": "客户需求：", "plan": "下一步："},
                            required_sections=list(required))
    db.session.add(template)
    db.session.commit()
    return template


def _age(note, minutes):
    note.created_at = utcnow() - timedelta(minutes=minutes)
    db.session.commit()


# ---- writing ---------------------------------------------------------------------------

def test_create_note_saves_and_updates_last_contact(staff):
    customer = _customer(staff["sales"])
    needs = _tag("报价")
    saved = notes.create_note(staff["sales"], customer, NoteData(
        kind="visit", body="  到店看样品  ", sections={"plan": " 周五回电 ", "bogus": "x"}, tag_ids=[needs.id]))
    note = saved.note
    assert (note.kind, note.body, note.sections) == ("visit", "到店看样品", {"plan": "周五回电"})
    assert note.author_id == staff["sales"].id and [t.name for t in note.tags] == ["报价"]
    assert saved.task is None and saved.unreachable == [] and saved.missing_sections == []
    assert db.session.get(Customer, customer.id).last_contact_at == note.created_at


def test_earlier_contact_time_never_moves_last_contact_back(staff):
    customer = _customer(staff["sales"])
    newest = _note(staff["sales"], customer)
    earlier = utcnow() - timedelta(days=3)
    note = _note(staff["sales"], customer, contacted_at=earlier)
    assert note.contact_time == earlier
    assert db.session.get(Customer, customer.id).last_contact_at == newest.created_at


def test_earlier_contact_time_counts_on_a_fresh_customer(staff):
    customer = _customer(staff["sales"])
    earlier = utcnow() - timedelta(hours=5)
    _note(staff["sales"], customer, contacted_at=earlier)
    assert db.session.get(Customer, customer.id).last_contact_at == earlier


@pytest.mark.parametrize("data, field", [
    (NoteData(kind="call", body="   "), "body"),
    (NoteData(kind="call", body="x" * (notes.BODY_MAX + 1)), "body"),
    (NoteData(kind="call", sections={"needs": "x" * (notes.SECTION_MAX + 1)}), "needs"),
    (NoteData(kind="call", body="x", contacted_at=utcnow() + timedelta(hours=1)), "contacted_at"),
    (NoteData(kind="call", body="x", contacted_at=datetime(1999, 12, 31)), "contacted_at"),
    (NoteData(kind="call", body="x", follow_up_on=date(2000, 1, 1)), "follow_up_on"),
    (NoteData(kind="call", body="x", template_id=999999), "template_id"),
    (NoteData(kind="fax", body="x"), "kind"),
])
def test_create_note_refusals(staff, data, field):
    customer = _customer(staff["sales"])
    with pytest.raises(DomainError) as refused:
        notes.create_note(staff["sales"], customer, data)
    assert refused.value.field == field
    assert db.session.scalar(select(func.count()).select_from(CustomerNote)) == 0


def test_a_contact_a_minute_ahead_is_a_clock_difference(staff):
    customer = _customer(staff["sales"])
    note = _note(staff["sales"], customer, contacted_at=utcnow() + timedelta(minutes=1))
    assert note.contacted_at is not None


def test_sections_alone_are_enough_but_untouched_prompts_are_not(staff):
    template = _template()
    customer = _customer(staff["sales"])
    with pytest.raises(DomainError):
        notes.create_note(staff["sales"], customer, NoteData(
            kind="call", template_id=template.id, sections=notes.prefilled_sections(template)))
    saved = notes.create_note(staff["sales"], customer, NoteData(
        kind="call", template_id=template.id, sections={**notes.prefilled_sections(template), "summary": "问价格"}))
    assert saved.note.sections == {"summary": "问价格"}
    assert saved.missing_sections == ["needs"]


def test_front_desk_writes_calls_and_visits_only(staff):
    customer = _customer(staff["sales"])
    assert _note(staff["frontdesk"], customer, kind="visit").kind == "visit"
    with pytest.raises(DomainError) as refused:
        _note(staff["frontdesk"], customer, kind="email")
    assert refused.value.field == "kind"


def test_front_desk_cannot_set_follow_ups(staff):
    customer = _customer(staff["frontdesk"])
    with pytest.raises(DomainError) as refused:
        _note(staff["frontdesk"], customer, follow_up_on=date.today() + timedelta(days=2))
    assert refused.value.field == "follow_up_on"


def test_no_notes_on_archived_or_foreign_customers(staff):
    archived = _customer(staff["manager"])
    customers.archive(staff["manager"], archived)
    foreign = _customer(staff["sales2"], name="李雷")
    for actor, customer in ((staff["manager"], archived), (staff["sales"], foreign)):
        with pytest.raises(DomainError):
            _note(actor, customer)


def test_follow_up_date_creates_a_task_in_the_same_transaction(staff):
    customer = _customer(staff["sales"])
    due = office_time.office_today() + timedelta(days=3)
    saved = notes.create_note(staff["manager"], customer,
                              NoteData(kind="call", body="报价已发\n等回复", follow_up_on=due))
    task = db.session.scalar(select(FollowUpTask))
    assert task.id == saved.task.id and task.note_id == saved.note.id
    assert (task.due_date, task.assignee_id, task.title) == (due, staff["sales"].id, "报价已发")


def test_a_refused_follow_up_leaves_no_note(staff):
    owner = accounts.create_user("leaving", TEST_PASSWORD, "sales")
    customer = _customer(owner)
    accounts.set_active(staff["admin"], owner, False)
    with pytest.raises(DomainError) as refused:
        _note(staff["manager"], customer, follow_up_on=office_time.office_today())
    assert refused.value.field == "assignee_id"
    assert db.session.scalar(select(func.count()).select_from(CustomerNote)) == 0
    assert db.session.get(Customer, customer.id).last_contact_at is None


# ---- edit, revisions, delete -----------------------------------------------------------------

def test_edit_keeps_the_previous_version_and_is_audited(staff):
    customer = _customer(staff["sales"])
    note = _note(staff["sales"], customer, body="第一版")
    tag = _tag("安装")
    notes.edit_note(staff["sales"], note, NoteData(kind="visit", body="第二版", tag_ids=[tag.id]))
    notes.edit_note(staff["manager"], note, NoteData(kind="visit", body="第三版", tag_ids=[tag.id]))
    assert note.body == "第三版" and note.updated_at is not None
    assert [(r.body, r.kind, r.editor_id) for r in notes.revisions(note)] == [
        ("第二版", "visit", staff["manager"].id), ("第一版", "call", staff["sales"].id)]
    events = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "note.edit")).all()
    assert len(events) == 2 and events[0].details["customer_id"] == customer.id


def test_an_edit_of_tags_only_makes_no_revision(staff):
    note = _note(staff["sales"], _customer(staff["sales"]))
    notes.edit_note(staff["sales"], note, NoteData(kind=note.kind, body=note.body, tag_ids=[_tag("售后").id]))
    assert notes.revisions(note) == []


def test_only_author_or_manager_edits(staff):
    customer = _customer(staff["manager"])  # in the pool: every salesperson reads it
    note = _note(staff["sales"], customer)
    with pytest.raises(DomainError):
        notes.edit_note(staff["sales2"], note, NoteData(kind="call", body="改"))
    desk_note = _note(staff["frontdesk"], customer)
    with pytest.raises(DomainError) as refused:
        notes.edit_note(staff["frontdesk"], desk_note, NoteData(kind="email", body="改"))
    assert refused.value.field == "kind"


def test_author_deletes_within_the_window(staff):
    customer = _customer(staff["sales"])
    first = _note(staff["sales"], customer, contacted_at=utcnow() - timedelta(days=2))
    second = _note(staff["sales"], customer)
    notes.delete_note(staff["sales"], second, ip="10.0.0.8")
    assert second.deleted_at is not None and second.deleted_by_id == staff["sales"].id
    # The customer's last contact falls back to the newest remaining note.
    assert db.session.get(Customer, customer.id).last_contact_at == first.contacted_at
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "note.delete"))
    assert (event.target_id, event.details, event.ip) == (second.id, {"customer_id": customer.id}, "10.0.0.8")
    assert "客户" not in str(event.details)


def test_author_cannot_delete_after_15_minutes_but_a_manager_can(staff):
    note = _note(staff["sales"], _customer(staff["sales"]))
    _age(note, 16)
    with pytest.raises(DomainError):
        notes.delete_note(staff["sales"], note)
    notes.delete_note(staff["manager"], note)
    assert note.deleted_at is not None
    with pytest.raises(DomainError):  # a deleted note cannot be deleted again
        notes.delete_note(staff["manager"], note)


# ---- comments and mentions ------------------------------------------------------------------

def test_comments_are_short_and_not_empty(staff):
    note = _note(staff["sales"], _customer(staff["sales"]))
    comment, unreachable = notes.add_comment(staff["manager"], note, "  好的  ")
    assert (comment.body, comment.author_id, unreachable) == ("好的", staff["manager"].id, [])
    for body in ("   ", "x" * 501):
        with pytest.raises(DomainError) as refused:
            notes.add_comment(staff["manager"], note, body)
        assert refused.value.field == "body"


def test_foreign_readers_cannot_comment(staff):
    note = _note(staff["sales2"], _customer(staff["sales2"]))
    with pytest.raises(DomainError):
        notes.add_comment(staff["sales"], note, "hi")


@pytest.mark.parametrize("text, names", [
    ("@li.na 请跟进", ["li.na"]),
    ("请 @Li.Na 和@wang_fang。", ["li.na", "wang_fang"]),
    ("邮件 li@example.com 不算", []),
    ("@li.na. @li.na", ["li.na"]),
    ("@王芳 @a", []),
])
def test_mentioned_usernames(text, names):
    assert mentions.mentioned_usernames(text) == names


def _mentions():
    return db.session.scalars(select(Mention).order_by(Mention.id)).all()


def test_mentions_notify_readers_once_and_report_the_others(staff):
    customer = _customer(staff["sales"])
    note = notes.create_note(staff["sales"], customer, NoteData(
        kind="call", body="@manager.one 看看 @sales.one @sales.two @nobody", sections={"plan": "@manager.one"}))
    assert [m.user_id for m in _mentions()] == [staff["manager"].id]  # not the author, once
    assert [u.username for u in note.unreachable] == ["sales.two"]  # may not read this customer
    notes.edit_note(staff["sales"], note.note, NoteData(kind="call", body="@manager.one @admin.one 再看"))
    assert [m.user_id for m in _mentions()] == [staff["manager"].id, staff["admin"].id]
    notes.add_comment(staff["admin"], note.note, "@manager.one 已处理")
    assert len(_mentions()) == 3 and _mentions()[-1].comment_id is not None


def test_inactive_colleagues_are_not_mentioned(staff):
    accounts.set_active(staff["admin"], staff["manager"], False)
    _note(staff["sales"], _customer(staff["sales"]), body="@manager.one")
    assert _mentions() == []


def test_notify_field_adds_a_mention_line_to_the_body(staff):
    customer = _customer(staff["sales"])
    saved = notes.create_note(staff["sales"], customer, NoteData(
        kind="call", body="报价 @manager.one", notify=["@manager.one", "admin.one", "王芳"]))
    assert saved.note.body == "报价 @manager.one\n@admin.one @sales.two"
    assert [u.username for u in saved.unreachable] == ["sales.two"]
    with pytest.raises(DomainError) as refused:
        notes.create_note(staff["sales"], customer, NoteData(kind="call", body="x", notify=["ghost"]))
    assert refused.value.field == "mention"


def test_unread_mentions_and_marking_them_read(staff):
    note = _note(staff["sales"], _customer(staff["sales"]), body="@manager.one")
    mention = _mentions()[0]
    assert mentions.unread_mentions(staff["manager"]) == [mention]
    assert mentions.mark_mention_read(staff["sales"], mention.id) is None  # not theirs
    assert mentions.mark_mention_read(staff["manager"], mention.id) is mention
    assert mention.read_at is not None and mentions.unread_mentions(staff["manager"]) == []
    notes.delete_note(staff["sales"], note)
    assert mentions.unread_mentions(staff["manager"]) == []


def test_completions_finish_the_trailing_name(staff):
    assert [v for v, _ in mentions.completions("请 @sal")] == ["请 @sales.one ", "请 @sales.two "]
    assert [u.username for _, u in mentions.completions("@王")] == ["sales.two"]
    assert mentions.completions("no mention") == [] and mentions.completions("a@") == []
    assert mentions.completions("@%_") == []


# ---- the customer's notes, paged --------------------------------------------------------------

def test_sixty_notes_page_back_without_gaps_or_repeats(staff):
    customer = _customer(staff["sales"])
    other = _customer(staff["sales"], name="别人")
    _note(staff["sales"], other)
    base = utcnow() - timedelta(days=1)
    made = []
    for index in range(60):
        note = _note(staff["sales"], customer, body=f"第{index}条")
        note.created_at = base + timedelta(minutes=index // 7)  # runs of equal timestamps
        made.append(note)
    db.session.commit()
    expected = [n.id for n in sorted(made, key=lambda n: (n.created_at, n.id), reverse=True)]
    seen, cursor, pages = [], None, 0
    while True:
        page = notes.customer_notes(staff["sales"], customer, before=cursor)
        seen += [n.id for n in page.notes]
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == expected and pages == 3


def test_paging_shows_only_readable_notes(staff):
    customer = _customer(staff["manager"])  # pool
    mine = _note(staff["frontdesk"], customer, kind="visit")
    theirs = _note(staff["sales"], customer)
    deleted = _note(staff["sales"], customer)
    notes.delete_note(staff["sales"], deleted)
    assert [n.id for n in notes.customer_notes(staff["frontdesk"], customer).notes] == [mine.id]
    assert [n.id for n in notes.customer_notes(staff["sales2"], customer).notes] == [theirs.id, mine.id]


@pytest.mark.parametrize("cursor", ["garbage", "2026-01-01T00:00:00", "2026-13-01T00:00:00,5", "x,1", ",1"])
def test_a_malformed_cursor_is_an_error(staff, cursor):
    with pytest.raises(ValueError):
        notes.customer_notes(staff["sales"], _customer(staff["sales"]), before=cursor)


# ---- the notes list ---------------------------------------------------------------------------------

def test_notes_list_tags_must_all_match_and_are_counted(staff):
    customer = _customer(staff["sales"])
    a, b, c = _tag("报价"), _tag("安装"), _tag("北京", group="地区")
    both = _note(staff["sales"], customer, tag_ids=[a.id, b.id])
    only_a = _note(staff["sales"], customer, tag_ids=[a.id, c.id])
    _note(staff["sales"], customer, kind="visit")
    page = notes_list.list_notes(staff["sales"], NoteFilter(tag_ids=[a.id]))
    assert {n.id for n in page.notes} == {both.id, only_a.id}
    assert page.tag_counts == {a.id: 2, b.id: 1, c.id: 1}
    page = notes_list.list_notes(staff["sales"], NoteFilter(tag_ids=[a.id, b.id]))
    assert [n.id for n in page.notes] == [both.id] and page.total == 1
    page = notes_list.list_notes(staff["sales"], NoteFilter(tag_ids=[a.id], kind="visit"))
    assert page.notes == [] and page.tag_counts == {}


def test_notes_list_other_filters_and_permissions(staff):
    customer = _customer(staff["sales"])
    foreign = _customer(staff["sales2"], name="李雷")
    old = _note(staff["sales"], customer, body="去年的报价")
    old.created_at = datetime(2025, 3, 1, 2, 0)
    db.session.commit()
    recent = _note(staff["manager"], customer, body="今年 100% 的_折扣")
    _note(staff["sales2"], foreign)
    read = lambda user, **kw: [n.id for n in notes_list.list_notes(user, NoteFilter(**kw)).notes]  # noqa: E731
    assert read(staff["sales"]) == [recent.id, old.id]
    assert read(staff["sales"], author=staff["manager"].id) == [recent.id]
    assert read(staff["sales"], q="100%") == [recent.id] and read(staff["sales"], q="%") == [recent.id]
    assert read(staff["sales"], date_from=date(2025, 3, 1), date_to=date(2025, 3, 1)) == [old.id]
    assert read(staff["sales"], date_to=date(2025, 2, 28)) == []
    assert read(staff["frontdesk"]) == []
    assert len(read(staff["manager"])) == 3


def test_notes_list_count_is_capped(staff, monkeypatch):
    monkeypatch.setattr(notes_list, "COUNT_CAP", 3)
    customer = _customer(staff["sales"])
    for _ in range(5):
        _note(staff["sales"], customer)
    page = notes_list.list_notes(staff["sales"], NoteFilter(per_page=2))
    assert page.total == 4 and page.total_capped and page.pages == 2


def test_filter_as_args_round_trip():
    flt = NoteFilter(kind="call", tag_ids=[3, 7], date_from=date(2026, 1, 2), page=2)
    assert flt.as_args() == {"kind": "call", "tag": [3, 7], "from": "2026-01-02", "page": 2}
    assert NoteFilter().as_args() == {}


# ---- quality ------------------------------------------------------------------------------------------

def test_incomplete_notes_list_required_sections_left_empty(staff):
    template = _template(required=("summary", "needs"))
    loose = _template(name="随手记", required=())
    customer = _customer(staff["sales"])
    full = _note(staff["sales"], customer, template_id=template.id, sections={"summary": "a", "needs": "b"})
    half = _note(staff["sales"], customer, template_id=template.id, sections={"summary": "a", "needs": "客户需求："})
    _note(staff["sales"], customer, template_id=loose.id)
    _note(staff["sales"], customer)
    old = _note(staff["sales"], customer, template_id=template.id)
    _age(old, 60 * 24 * 31)
    found = notes_list.incomplete_notes(staff["manager"])
    assert [(item.note.id, item.missing) for item in found] == [(half.id, ["needs"])]
    assert full.id not in [item.note.id for item in found]


def test_neglected_customers(staff):
    fresh = _customer(staff["sales"], name="新客户")
    never = _customer(staff["sales"], name="从未联系")
    stale = _customer(staff["sales2"], name="很久没联系")
    contacted = _customer(staff["sales"], name="刚联系过")
    archived = _customer(staff["manager"], name="已归档")
    long_ago = utcnow() - timedelta(days=40)
    for customer in (never, stale, contacted, archived):
        customer.created_at = long_ago
    stale.last_contact_at = utcnow() - timedelta(days=31)
    db.session.commit()
    _note(staff["sales"], contacted)
    customers.archive(staff["manager"], archived)
    page = notes_list.neglected_customers(staff["manager"], days=30)
    assert [c.id for c in page.customers] == [never.id, stale.id] and page.total == 2
    assert fresh.id not in [c.id for c in page.customers]
    assert [c.id for c in notes_list.neglected_customers(staff["manager"], days=35).customers] == [never.id]
    assert notes_list.neglected_customers(staff["manager"], days=30, per_page=1, page=9).page == 2


# ---- templates -------------------------------------------------------------------------------------------

def test_create_and_update_templates(staff):
    template = note_templates.create_template(staff["admin"], TemplateData(
        name=" 到访登记 ", kind="visit", prompts={"summary": "到访目的：", "plan": " "},
        required_sections=["plan", "summary"]))
    assert (template.name, template.kind, template.active) == ("到访登记", "visit", True)
    assert template.prompts == {"summary": "到访目的：", "needs": "", "plan": ""}
    assert template.required_sections == ["summary", "plan"]
    note_templates.update_template(staff["admin"], template, TemplateData(name="到访", kind="visit", active=False))
    assert template.active is False and notes.active_templates() == []
    actions = db.session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert actions[-2:] == ["note_template.create", "note_template.update"]


@pytest.mark.parametrize("data, field", [
    (TemplateData(name=""), "name"),
    (TemplateData(name="x" * 51), "name"),
    (TemplateData(name="来电登记"), "name"),
    (TemplateData(name="新", kind="fax"), "kind"),
    (TemplateData(name="新", prompts={"needs": "x" * 201}), "prompt_needs"),
    (TemplateData(name="新", required_sections=["summary", "mood"]), "required_sections"),
])
def test_template_refusals(staff, data, field):
    _template()
    with pytest.raises(DomainError) as refused:
        note_templates.create_template(staff["admin"], data)
    assert refused.value.field == field


@pytest.mark.parametrize("role", ["manager", "sales", "frontdesk"])
def test_the_customer_page_walks_the_index_without_sorting(staff, role):
    """Keyset paging: SQLite reads the notes in index order (no sort step, no OFFSET),
    so a customer with 5,000 notes opens as fast as one with 5. PostgreSQL's plan
    depends on table statistics and is not checked here."""
    from tests.conftest import sqlite_plan

    customer = _customer(staff["sales"])
    note = _note(staff["sales"], customer)
    if db.engine.dialect.name != "sqlite":
        return
    for cursor in (None, notes.encode_cursor(note)):
        query = notes.customer_notes_query(staff[role], customer, cursor).limit(21)
        plan = sqlite_plan(query)
        assert "USING INDEX ix_customer_notes_customer_created" in plan and "TEMP B-TREE" not in plan, plan
