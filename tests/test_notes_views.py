"""Notes views: quick entry on the customer page, paging, edit, revisions, delete,
comments, mentions, the notes list, the quality view and the template admin —
each htmx endpoint as fragment and as full page, with its refusals."""

import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from extensions import db
from models import (
    AuditEvent,
    Customer,
    CustomerNote,
    FollowUpTask,
    Mention,
    NoteComment,
    NoteRevision,
    NoteTemplate,
    Tag,
    TagGroup,
    User,
    utcnow,
)
from services import customers, notes, office_time
from services.notes import NoteData
from tests.factories import make_customer, make_note

HX = {"HX-Request": "true"}
XSS = '<script>alert(1)</script><img src=x hx-get="/admin/users" hx-trigger="load">'


@pytest.fixture
def world(app, make_user):
    """Two salespeople, a manager, a front desk; a customer of each salesperson with
    a note by its owner, and a pool customer."""
    people = {role: make_user(role) for role in ("admin", "manager", "frontdesk")}
    people["sales"] = make_user("sales", username="li.na", display_name="李娜")
    people["sales2"] = make_user("sales", username="wang.fang", display_name="王芳")
    with app.app_context():
        get = lambda key: db.session.get(User, people[key].id)  # noqa: E731
        mine = make_customer(get("sales"), "王小明")
        theirs = make_customer(get("sales2"), "赵四")
        pool = make_customer(get("manager"), "公海客户")
        my_note = make_note(get("sales"), mine, "我的备注")
        their_note = make_note(get("sales2"), theirs, "别人的备注")
        db.session.commit()
        ids = {"mine": mine.id, "theirs": theirs.id, "pool": pool.id, "my_note": my_note.id,
               "their_note": their_note.id}
    return {**people, **ids}


def _login(client, user):
    from tests.conftest import login

    assert login(client, user.username).status_code == 303


def _trigger(response):
    return json.loads(response.headers.get("HX-Trigger", "{}"))


def _count(model, *where):
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


# ---- foreign ids and roles ---------------------------------------------------------------

FOREIGN = [
    ("get", "/customers/{theirs}/notes"),
    ("get", "/customers/{theirs}/notes/new"),
    ("post", "/customers/{theirs}/notes"),
    ("get", "/notes/{their_note}"),
    ("get", "/notes/{their_note}/edit"),
    ("post", "/notes/{their_note}/edit"),
    ("get", "/notes/{their_note}/revisions"),
    ("post", "/notes/{their_note}/comments"),
    ("post", "/notes/{their_note}/delete"),
]


@pytest.mark.parametrize("headers", [{}, HX], ids=["page", "fragment"])
@pytest.mark.parametrize("method, path", FOREIGN)
def test_sales_gets_404_for_another_salespersons_customer(client, world, method, path, headers):
    _login(client, world["sales"])
    response = getattr(client, method)(path.format(**world), headers=headers,
                                       data={"kind": "call", "body": "x"})
    assert response.status_code == 404
    assert (b"<html" in response.data) is (not headers)


@pytest.mark.parametrize("method, path", [p for p in FOREIGN if "{their_note}" in p[1]])
def test_front_desk_gets_404_for_notes_of_others(client, world, method, path):
    _login(client, world["frontdesk"])
    response = getattr(client, method)(path.format(**world), headers=HX, data={"body": "x"})
    assert response.status_code == 404


def test_unknown_ids_are_404(client, world):
    _login(client, world["manager"])
    for path in ("/notes/999999", "/notes/999999/revisions", "/customers/999999/notes"):
        assert client.get(path).status_code == 404
    assert client.post("/notes/999999/delete", headers=HX).status_code == 404


@pytest.mark.parametrize("path", ["/notes", "/notes/quality", "/note-templates", "/notes/1", "/mentions/suggest"])
def test_anonymous_is_sent_to_login(client, path):
    response = client.get(path)
    assert response.status_code == 303 and response.headers["Location"].startswith("/login")


@pytest.mark.parametrize("role, status", [("admin", 200), ("manager", 200), ("sales", 403), ("frontdesk", 403)])
def test_quality_view_is_for_managers(client, login_as, role, status):
    login_as(role)
    assert client.get("/notes/quality").status_code == status
    assert client.get("/notes/quality", headers=HX).status_code == status


@pytest.mark.parametrize("role, status", [("admin", 200), ("manager", 403), ("sales", 403), ("frontdesk", 403)])
def test_template_admin_is_for_admins(client, login_as, role, status):
    login_as(role)
    assert client.get("/note-templates").status_code == status
    assert client.get("/note-templates/new", headers=HX).status_code == status
    assert client.post("/note-templates/new", data={"name": "x", "kind": "call"}).status_code in (
        (303,) if status == 200 else (403,))


# ---- the customer page and quick entry -------------------------------------------------------------

def test_customer_page_shows_the_form_and_the_notes(client, world):
    _login(client, world["sales"])
    page = client.get(f"/customers/{world['mine']}").data.decode()
    assert 'id="note-form"' in page and "我的备注" in page and 'id="notes-list"' in page
    form = page.split('id="note-form"')[1].split("</form>")[0]
    assert "data-ctrl-enter" in form and "autofocus" not in form  # the page does not steal focus


def test_front_desk_sees_only_its_own_notes_and_call_or_visit(client, world, app):
    _login(client, world["frontdesk"])
    response = client.post(f"/customers/{world['mine']}/notes", headers=HX, data={"kind": "visit", "body": "到店"})
    assert response.status_code == 200
    page = client.get(f"/customers/{world['mine']}").data.decode()
    assert "到店" in page and "我的备注" not in page
    options = re.findall(r'<option[^>]*value="(\w+)"', page.split('name="kind"')[1].split("</select>")[0])
    assert options == ["call", "visit"]
    refused = client.post(f"/customers/{world['mine']}/notes", headers=HX, data={"kind": "email", "body": "邮件"})
    assert refused.status_code == 422 and b"field-error" in refused.data
    with app.app_context():
        assert _count(CustomerNote, CustomerNote.kind == "email") == 0


def test_quick_entry_fragment_gives_a_fresh_form_and_the_note_out_of_band(client, world, app):
    _login(client, world["sales"])
    response = client.post(f"/customers/{world['mine']}/notes", headers=HX, data={
        "kind": "visit", "body": "客户到店\n看样品", "summary": "看了三款", "mention": "@wang.fang"})
    html = response.data.decode()
    assert response.status_code == 200 and "<html" not in html
    form = html.split('hx-swap-oob="afterbegin:#notes-list"')[0]
    assert 'id="note-form"' in form and "autofocus" in form and "客户到店" not in form
    assert "客户到店" in html.split('hx-swap-oob="afterbegin:#notes-list"')[1]
    assert "HX-Request" in response.headers["Vary"]
    toast = _trigger(response)["toast"]
    assert toast["level"] == "info" and "王芳" in toast["message"]  # may not read this customer
    with app.app_context():
        note = db.session.scalar(select(CustomerNote).order_by(CustomerNote.id.desc()))
        assert note.sections == {"summary": "看了三款"} and note.body.endswith("@wang.fang")
        assert db.session.get(Customer, world["mine"]).last_contact_at == note.created_at


def test_quick_entry_answers_from_what_it_saved_without_reading_it_again(client, world, app):
    """After the commit (and the index update) the answer is rendered from the
    user, customer and note the request holds: no statement reads them, the
    templates or the new note's comments again, and none takes the write lock."""
    from tests.conftest import statements_run

    _login(client, world["sales"])
    with app.app_context(), statements_run(db.engine) as statements:
        response = client.post(f"/customers/{world['mine']}/notes", headers=HX,
                               data={"kind": "call", "body": "电话回访，客户询问报价"})
    assert response.status_code == 200 and "电话回访" in response.data.decode()
    settled = max(i for i, s in enumerate(statements) if s.lstrip().upper().startswith("DELETE FROM SEARCH_BACKLOG"))
    after = [" ".join(s.split()) for s in statements[settled + 1:]]
    for table in ("users", "customers", "customer_phones", "customer_tags", "customer_notes",
                  "note_comments", "note_templates"):
        assert not [s for s in after if f"FROM {table} " in s + " " or f"FROM {table}," in s], table
    assert not [s for s in after if s.upper().startswith(("INSERT", "UPDATE", "DELETE", "BEGIN IMMEDIATE"))]


def test_quick_entry_without_htmx_redirects_to_the_customer(client, world):
    _login(client, world["sales"])
    response = client.post(f"/customers/{world['mine']}/notes", data={"kind": "call", "body": "plain"})
    assert response.status_code == 303
    assert response.headers["Location"].startswith(f"/customers/{world['mine']}#note-")


@pytest.mark.parametrize("data, message", [
    ({"kind": "call", "body": "  ", "plan": " "}, "Write something"),
    ({"kind": "call", "body": "x" * 10_000}, "At most 5000 characters"),
    ({"kind": "call", "body": "typed", "contacted_at": "2099-01-01T10:00"}, "cannot be in the future"),
    ({"kind": "call", "body": "typed", "contacted_at": "yesterday"}, "Enter the date and time of the contact"),
    ({"kind": "call", "body": "typed", "follow_up_on": "2026-13-45"}, "Enter the follow-up date"),
    ({"kind": "call", "body": "typed", "follow_up_on": "2001-01-01"}, "cannot be in the past"),
    ({"kind": "call", "body": "typed", "mention": "@ghost"}, "No active colleague"),
    ({"kind": "fax", "body": "typed"}, "Not a valid choice"),
    ({"kind": "call", "body": "typed", "template_id": "abc"}, "could not coerce"),
])
def test_quick_entry_refusals_keep_the_typed_text(client, world, app, data, message):
    _login(client, world["sales"])
    for headers in (HX, {}):
        response = client.post(f"/customers/{world['mine']}/notes", headers=headers, data=data)
        html = response.data.decode()
        assert response.status_code == 422 and message in html
        assert 'class="field-error"' in html or 'class="form-error"' in html
        if "typed" in data["body"]:
            assert ">\r\ntyped</textarea>" in html
        assert ("<html" in html) is (not headers)
    with app.app_context():
        assert _count(CustomerNote) == 2


def test_quick_entry_on_an_archived_customer_is_refused(client, world, app):
    _login(client, world["manager"])
    with app.app_context():
        customers.archive(db.session.get(User, world["manager"].id), db.session.get(Customer, world["pool"]))
        db.session.commit()
    response = client.post(f"/customers/{world['pool']}/notes", headers=HX, data={"kind": "call", "body": "x"})
    assert response.status_code == 403
    assert 'id="note-form"' not in client.get(f"/customers/{world['pool']}").data.decode()


def test_contact_time_is_office_time_and_stored_in_utc(client, world, app):
    _login(client, world["sales"])
    client.post(f"/customers/{world['mine']}/notes", headers=HX,
                data={"kind": "call", "body": "早上来电", "contacted_at": "2026-01-02T09:30"})
    with app.app_context():
        note = db.session.scalar(select(CustomerNote).where(CustomerNote.body == "早上来电"))
        assert note.contacted_at.isoformat() == "2026-01-02T01:30:00"


def test_follow_up_date_creates_a_task(client, world, app):
    _login(client, world["sales"])
    with app.app_context():
        due = office_time.office_today() + timedelta(days=2)
    response = client.post(f"/customers/{world['mine']}/notes", headers=HX,
                           data={"kind": "call", "body": "报价已发", "follow_up_on": due.isoformat()})
    assert f"{due.day} {due:%b} {due.year}" in _trigger(response)["toast"]["message"]  # the one date format
    with app.app_context():
        task = db.session.scalar(select(FollowUpTask))
        assert (task.title, task.due_date, task.customer_id) == ("报价已发", due, world["mine"])
        assert task.note_id == db.session.scalar(select(CustomerNote.id).where(CustomerNote.body == "报价已发"))


def test_markup_in_notes_and_comments_is_stored_and_shown_inert(client, world, app):
    _login(client, world["sales"])
    client.post(f"/customers/{world['mine']}/notes", headers=HX, data={"kind": "call", "body": XSS, "needs": XSS})
    with app.app_context():
        note = db.session.scalar(select(CustomerNote).where(CustomerNote.body == XSS))
        assert note.sections == {"needs": XSS}
    client.post(f"/notes/{note.id}/comments", headers=HX, data={"body": XSS})
    for url in (f"/customers/{world['mine']}", f"/notes/{note.id}", "/notes"):
        html = client.get(url).data.decode()
        assert "<script>alert" not in html and "<img src=x" not in html
        assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 3 - (url == "/notes")


def test_template_choice_shows_prompts_as_placeholders_and_keeps_typed_text(client, world, app):
    with app.app_context():
        template = NoteTemplate(name="到访登记", kind="visit",
                                prompts={"summary": "到访目的：", "needs": "", "plan": "下一步："},
                                required_sections=["summary"])
        db.session.add(template)
        db.session.commit()
        template_id = template.id
    _login(client, world["sales"])
    url = f"/customers/{world['mine']}/notes/new"
    response = client.get(url, headers=HX, query_string={"template_id": template_id, "kind": "call",
                                                          "body": "已打字", "needs": "我写的"})
    html = response.data.decode()
    assert response.status_code == 200 and "<html" not in html
    # The prompts are placeholders, never text in the fields; typed text stays.
    assert 'placeholder="到访目的："' in html and 'placeholder="下一步："' in html
    assert "到访目的：</textarea>" not in html
    assert ">\r\n我写的</textarea>" in html and ">\r\n已打字</textarea>" in html
    assert '<option selected value="visit">' in html
    # The section it requires says so, named as the "Still empty" toast names it.
    assert "Communication summary" in html and "Required by the template 到访登记." in html
    assert b"<html" in client.get(url).data


def test_older_notes_page_in_place_and_as_a_page(client, world, app):
    with app.app_context():
        author = db.session.get(User, world["sales"].id)
        customer = db.session.get(Customer, world["mine"])
        stamp = utcnow() - timedelta(days=1)
        for index in range(45):
            note = notes.create_note(author, customer, NoteData(kind="call", body=f"第{index:02d}条")).note
            db.session.commit()
            note.created_at = stamp  # all at the same second
        db.session.commit()
    _login(client, world["sales"])
    first = client.get(f"/customers/{world['mine']}").data.decode()
    older = re.search(r'hx-get="(/customers/\d+/notes\?before=[^"]+)"', first).group(1).replace("&amp;", "&")
    seen = re.findall(r"第(\d\d)条", first)
    while older:
        fragment = client.get(older, headers=HX)
        assert fragment.status_code == 200 and b"<html" not in fragment.data
        html = fragment.data.decode()
        seen += re.findall(r"第(\d\d)条", html)
        found = re.search(r'hx-get="(/customers/\d+/notes\?before=[^"]+)"', html)
        older = found.group(1).replace("&amp;", "&") if found else None
    assert sorted(seen) == [f"{i:02d}" for i in range(45)] and len(seen) == len(set(seen))
    page = client.get(f"/customers/{world['mine']}/notes?before=" + re.search(
        r"before=([^\"&]+)", first).group(1))
    assert page.status_code == 200 and b"<html" in page.data
    assert client.get(f"/customers/{world['mine']}/notes?before=junk").status_code == 400


# ---- one note: show, edit, revisions, delete -----------------------------------------------------------

def test_show_note_fragment_and_page(client, world):
    _login(client, world["sales"])
    fragment = client.get(f"/notes/{world['my_note']}", headers=HX)
    assert fragment.status_code == 200 and b"<html" not in fragment.data and "我的备注" in fragment.data.decode()
    assert b"<html" in client.get(f"/notes/{world['my_note']}").data


def test_edit_note_keeps_a_revision_and_is_audited(client, world, app):
    _login(client, world["sales"])
    form = client.get(f"/notes/{world['my_note']}/edit", headers=HX)
    assert form.status_code == 200 and "我的备注</textarea>" in form.data.decode() and b"<html" not in form.data
    assert b"<html" in client.get(f"/notes/{world['my_note']}/edit").data
    saved = client.post(f"/notes/{world['my_note']}/edit", headers=HX, data={"kind": "visit", "body": "改过的备注"})
    assert saved.status_code == 200 and "改过的备注" in saved.data.decode() and 'id="note-' in saved.data.decode()
    assert "toast" in _trigger(saved)
    revisions = client.get(f"/notes/{world['my_note']}/revisions", headers=HX).data.decode()
    assert "我的备注" in revisions and "<html" not in revisions
    assert "我的备注" in client.get(f"/notes/{world['my_note']}/revisions").data.decode()
    with app.app_context():
        assert _count(NoteRevision) == 1
        assert _count(AuditEvent, AuditEvent.action == "note.edit") == 1


def test_edit_refusals(client, world, app):
    _login(client, world["sales"])
    empty = client.post(f"/notes/{world['my_note']}/edit", headers=HX, data={"kind": "call", "body": ""})
    assert empty.status_code == 422 and b"Write something" in empty.data
    plain = client.post(f"/notes/{world['my_note']}/edit", data={"kind": "call", "body": "x" * 5001})
    assert plain.status_code == 422 and b"<html" in plain.data
    with app.app_context():
        pool_note = notes.create_note(db.session.get(User, world["sales2"].id), db.session.get(Customer, world["pool"]),
                                      NoteData(kind="call", body="公海里的")).note.id
        db.session.commit()
    # Readable (a pool customer) but not theirs: 403, not 404.
    assert client.get(f"/notes/{pool_note}/edit", headers=HX).status_code == 403
    assert client.post(f"/notes/{pool_note}/edit", data={"kind": "call", "body": "改"}).status_code == 403


def test_manager_edits_anyones_note(client, world):
    _login(client, world["manager"])
    response = client.post(f"/notes/{world['their_note']}/edit", data={"kind": "call", "body": "主管改的"})
    assert response.status_code == 303 and response.headers["Location"].endswith(f"#note-{world['their_note']}")


def test_delete_within_the_window(client, world, app):
    _login(client, world["sales"])
    response = client.post(f"/notes/{world['my_note']}/delete", headers=HX)
    assert response.status_code == 200 and response.data.strip() == b"" and "toast" in _trigger(response)
    assert "我的备注" not in client.get(f"/customers/{world['mine']}").data.decode()
    assert client.get(f"/notes/{world['my_note']}").status_code == 404
    with app.app_context():
        event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "note.delete"))
        assert event.details == {"customer_id": world["mine"]}


def test_delete_after_16_minutes_is_for_managers_only(client, world, app, make_user):
    with app.app_context():
        note = db.session.get(CustomerNote, world["my_note"])
        note.created_at = utcnow() - timedelta(minutes=16)
        db.session.commit()
    _login(client, world["sales"])
    assert client.post(f"/notes/{world['my_note']}/delete", headers=HX).status_code == 403
    assert "data-testid=\"delete-note\"" not in client.get(f"/notes/{world['my_note']}").data.decode()
    manager = app.test_client()
    _login(manager, world["manager"])
    response = manager.post(f"/notes/{world['my_note']}/delete")
    assert response.status_code == 303 and response.headers["Location"] == f"/customers/{world['mine']}"


def _offered_per_note(page: str) -> dict[int, set[str]]:
    """Per note shown: which of edit, delete and the comment box the page offers."""
    offered = {}
    for match in re.finditer(r'<article class="note [^"]*" id="note-(\d+)".*?</article>', page, re.S):
        note = match.group(0)
        offered[int(match.group(1))] = {name for name, marker in (
            ("edit", 'data-testid="edit-note"'), ("delete", 'data-testid="delete-note"'),
            ("comment", 'class="comment-form"')) if marker in note}
    return offered


@pytest.mark.parametrize("role", ["sales", "manager", "admin", "frontdesk", "sales2"])
def test_customer_page_offers_each_note_what_the_policy_allows(client, world, app, role):
    """Edit, delete and the comment box under each note, for every role: a fresh and
    an old note of the owner's, a manager's note, the front desk's own note."""
    with app.app_context():
        customer = db.session.get(Customer, world["mine"])
        old = db.session.get(CustomerNote, world["my_note"])
        old.created_at = utcnow() - timedelta(minutes=20)
        fresh = make_note(db.session.get(User, world["sales"].id), customer, "刚写的")
        managers = make_note(db.session.get(User, world["manager"].id), customer, "主管写的")
        desks = make_note(db.session.get(User, world["frontdesk"].id), customer, "前台登记")
        db.session.commit()
        ids = {"old": old.id, "fresh": fresh.id, "managers": managers.id, "desks": desks.id}
    _login(client, world[role])
    response = client.get(f"/customers/{world['mine']}")
    if role == "sales2":  # another salesperson's customer: not there at all
        assert response.status_code == 404
        return
    everything = {"edit", "delete", "comment"}
    expected = {
        "sales": {"old": {"edit", "comment"}, "fresh": everything, "managers": {"comment"}, "desks": {"comment"}},
        "manager": dict.fromkeys(ids, everything),
        "admin": dict.fromkeys(ids, everything),
        "frontdesk": {"desks": everything},  # colleagues' notes are not shown to it
    }[role]
    assert _offered_per_note(response.data.decode()) == {ids[name]: shown for name, shown in expected.items()}



@pytest.mark.parametrize("role, shown", [
    ("sales", "all"), ("manager", "all"), ("frontdesk", "own"), ("sales2", None)])
def test_customer_page_shows_every_readable_note_newest_first(client, world, app, role, shown):
    """The first page and the "older" pages together hold every note the role may
    read on the customer, each once, newest first; the front desk only its own."""
    with app.app_context():
        customer = db.session.get(Customer, world["mine"])
        stamp = utcnow() - timedelta(days=2)
        authors = [db.session.get(User, world[key].id) for key in ("sales", "manager", "frontdesk")]
        for index in range(27):
            author = authors[index % 3]
            note = notes.create_note(author, customer, NoteData(
                kind="visit" if index % 3 == 2 else "call", body=f"记录{index:02d}")).note
            db.session.flush()
            note.created_at = stamp + timedelta(minutes=index)
        db.session.commit()
    _login(client, world[role])
    response = client.get(f"/customers/{world['mine']}")
    if shown is None:
        assert response.status_code == 404
        return
    html = response.data.decode()
    seen = re.findall(r"记录(\d\d)", html)
    while (older := re.search(r'hx-get="(/customers/\d+/notes\?before=[^"]+)"', html)):
        html = client.get(older.group(1).replace("&amp;", "&"), headers=HX).data.decode()
        seen += re.findall(r"记录(\d\d)", html)
    readable = [i for i in range(27) if shown == "all" or i % 3 == 2]
    assert seen == [f"{i:02d}" for i in reversed(readable)]


def _badges(html: str, note_id: int) -> list[str]:
    article = html.split(f'id="note-{note_id}"')[1].split("</header>")[0] + html.split(
        f'id="note-{note_id}"')[1].split('class="tag-cell">')[1].split("</p>")[0]
    return re.findall(r'<span class="(?:note-kind|tag)[^>]*>[^<]*</span>', article)


def test_note_badges_are_the_same_on_every_page_that_shows_the_note(client, world, app):
    """The kind and tag badges of a note: on the customer page, its older pages, the
    note alone, the notes list and the quick-entry answer (pages of notes import the
    badge macros once, a note alone imports them itself)."""
    from tests.factories import make_tag

    with app.app_context():
        tag = make_tag("回头客", "来源")
        customer = db.session.get(Customer, world["mine"])
        note = make_note(db.session.get(User, world["sales"].id), customer, "带标签", kind="visit",
                         tag_ids=[tag.id], commit=True)
        note_id, tag_id = note.id, tag.id
    _login(client, world["sales"])
    pages = [client.get(f"/customers/{world['mine']}").data.decode(),
             client.get(f"/customers/{world['mine']}/notes", headers=HX).data.decode(),
             client.get(f"/notes/{note_id}", headers=HX).data.decode(),
             client.get(f"/notes/{note_id}").data.decode(),
             client.get("/notes", query_string={"tag": tag_id}).data.decode()]
    expected = _badges(pages[0], note_id)
    assert len(expected) == 2 and "note-kind-visit" in expected[0] and 'title="来源">回头客<' in expected[1]
    for html in pages[1:]:
        assert _badges(html, note_id) == expected
    saved = client.post(f"/customers/{world['mine']}/notes", headers=HX,
                        data={"kind": "visit", "body": "又来了", "tags": str(tag_id)}).data.decode()
    new_id = int(re.search(r'id="note-(\d+)" data-testid="note"', saved).group(1))
    assert _badges(saved, new_id) == expected


def test_quick_entry_does_not_read_the_customers_phones_or_tags(client, world, app):
    """A note save answers with the form and the note, not the card: the customer's
    phones and tags are not read. A refused plain post still shows the page."""
    from tests.conftest import statements_run

    _login(client, world["sales"])
    with app.app_context(), statements_run(db.engine) as statements:
        response = client.post(f"/customers/{world['mine']}/notes", headers=HX, data={"kind": "call", "body": "回访"})
    assert response.status_code == 200 and "回访" in response.data.decode()
    joined = [" ".join(s.split()) for s in statements]
    assert not [s for s in joined if "FROM customer_phones" in s or "FROM customer_tags" in s]
    refused = client.post(f"/customers/{world['mine']}/notes", data={"kind": "call", "body": " "})
    assert refused.status_code == 422 and "王小明" in refused.data.decode() and b"<html" in refused.data

# ---- comments and mentions ------------------------------------------------------------------------------

def test_comment_fragment_and_plain_post(client, world, app):
    _login(client, world["sales"])
    response = client.post(f"/notes/{world['my_note']}/comments", headers=HX, data={"body": "好的 @ghost"})
    html = response.data.decode()
    assert response.status_code == 200 and f'hx-swap-oob="beforeend:#note-{world["my_note"]}-comments"' in html
    assert "autofocus" in html.split("hx-swap-oob")[0] and "好的" in html.split("hx-swap-oob")[1]
    plain = client.post(f"/notes/{world['my_note']}/comments", data={"body": "第二条"})
    assert plain.status_code == 303 and plain.headers["Location"] == f"/notes/{world['my_note']}"
    with app.app_context():
        assert _count(NoteComment) == 2


@pytest.mark.parametrize("body, message", [("", b"Write a comment first"), ("x" * 501, b"At most 500 characters")])
def test_comment_refusals(client, world, body, message):
    _login(client, world["sales"])
    for headers in (HX, {}):
        response = client.post(f"/notes/{world['my_note']}/comments", headers=headers, data={"body": body})
        assert response.status_code == 422 and message in response.data
        assert (b"<html" in response.data) is (not headers)


def test_mentions_notify_and_open_the_note(client, world, app):
    _login(client, world["sales"])
    client.post(f"/notes/{world['my_note']}/comments", headers=HX,
                data={"body": f"@{world['manager'].username} 请看"})
    with app.app_context():
        mention_id = db.session.scalar(select(Mention.id))
    assert client.post(f"/mentions/{mention_id}/read", headers=HX).status_code == 404  # not theirs
    manager = app.test_client()
    _login(manager, world["manager"])
    response = manager.post(f"/mentions/{mention_id}/read", headers=HX)
    assert response.status_code == 204 and response.headers["HX-Redirect"] == f"/notes/{world['my_note']}"
    with app.app_context():
        assert db.session.get(Mention, mention_id).read_at is not None
    plain = manager.post(f"/mentions/{mention_id}/read")
    assert plain.status_code == 303 and plain.headers["Location"] == f"/notes/{world['my_note']}"


def test_mention_suggestions(client, world):
    _login(client, world["sales"])
    response = client.get("/mentions/suggest", headers=HX, query_string={"body": "请 @wang"})
    assert response.status_code == 200 and b"<html" not in response.data
    assert '<option value="请 @wang.fang ">王芳 (@wang.fang)</option>' in response.data.decode()
    assert client.get("/mentions/suggest", headers=HX, query_string={"mention": "no at"}).data.strip() == b""
    assert b"<html" in client.get("/mentions/suggest?q=@li").data


# ---- the notes list ------------------------------------------------------------------------------------------

def _tags(app):
    with app.app_context():
        group = TagGroup(name="需求")
        db.session.add(group)
        db.session.flush()
        made = [Tag(group_id=group.id, name=name) for name in ("报价", "安装", "售后")]
        db.session.add_all(made)
        db.session.commit()
        return [tag.id for tag in made]


def test_notes_list_filters_by_several_tags(client, world, app):
    quote, install, after = _tags(app)
    _login(client, world["sales"])
    for body, tags in (("两个标签", [quote, install]), ("一个标签", [quote]), ("无标签", [])):
        client.post(f"/customers/{world['mine']}/notes", headers=HX, data={"kind": "call", "body": body, "tags": tags})
    page = client.get(f"/notes?tag={quote}&tag={install}")
    html = page.data.decode()
    assert page.status_code == 200 and "<html" in html
    assert "两个标签" in html and "一个标签" not in html and "别人的备注" not in html
    fragment = client.get(f"/notes?tag={quote}", headers=HX).data.decode()
    assert "<html" not in fragment and "两个标签" in fragment and "一个标签" in fragment and "无标签" not in fragment
    chip = re.search(rf'data-tag-id="{install}">[^<]*<span class="tag-count">(\d+)<', fragment)
    assert chip.group(1) == "1"
    assert f'href="/notes?tag={quote}&amp;tag={install}"' in fragment  # the chip adds its tag
    assert 'hx-push-url="true"' in fragment
    assert f'name="tag" value="{quote}" form="notes-filters"' in fragment


def test_notes_list_ignores_junk_in_the_url(client, world):
    _login(client, world["sales"])
    response = client.get("/notes?kind=fax&author=abc&tag=x&from=2026-99-01&page=-3&q=" + "%" * 300)
    assert response.status_code == 200


# ---- quality --------------------------------------------------------------------------------------------------

def test_quality_view_lists_incomplete_notes_and_neglected_customers(client, world, app):
    with app.app_context():
        template = NoteTemplate(name="电话回访", kind="call", prompts={}, required_sections=["needs"])
        db.session.add(template)
        db.session.commit()
        notes.create_note(db.session.get(User, world["sales"].id), db.session.get(Customer, world["mine"]),
                          NoteData(kind="call", body="没写需求", template_id=template.id))
        db.session.commit()
        pool = db.session.get(Customer, world["pool"])
        pool.created_at = utcnow() - timedelta(days=50)
        db.session.commit()
    _login(client, world["manager"])
    html = client.get("/notes/quality").data.decode()
    assert "电话回访" in html and "Customer needs" in html and "公海客户" in html
    fragment = client.get("/notes/quality?days=60", headers=HX).data.decode()
    assert "<html" not in fragment and "公海客户" not in fragment
    assert "公海客户" in client.get("/notes/quality?days=0", headers=HX).data.decode()  # clamped to 1
    assert client.get("/notes/quality?days=abc").status_code == 200


# ---- templates admin -------------------------------------------------------------------------------------------

def test_admin_creates_and_edits_a_template(client, login_as, app):
    login_as("admin")
    assert b"<html" in client.get("/note-templates/new").data
    response = client.post("/note-templates/new", headers=HX, data={
        "name": "到访登记", "kind": "visit", "prompt_summary": "到访目的：", "required_sections": ["summary"],
        "active": "y"})
    assert response.status_code == 204 and response.headers["HX-Redirect"] == "/note-templates"
    with app.app_context():
        template = db.session.scalar(select(NoteTemplate))
        assert (template.kind, template.required_sections, template.active) == ("visit", ["summary"], True)
    assert "到访登记" in client.get("/note-templates").data.decode()
    form = client.get(f"/note-templates/{template.id}/edit", headers=HX).data.decode()
    assert 'value="到访目的："' in form and "<html" not in form
    response = client.post(f"/note-templates/{template.id}/edit", data={"name": "到访", "kind": "visit"})
    assert response.status_code == 303
    with app.app_context():
        assert db.session.get(NoteTemplate, template.id).active is False
    assert client.get("/note-templates/999999/edit").status_code == 404


@pytest.mark.parametrize("data, message", [
    ({"name": "", "kind": "call"}, b"Give the template a name"),
    ({"name": "taken", "kind": "call"}, b"Another template has this name"),
    ({"name": "new", "kind": "fax"}, b"Not a valid choice"),
    ({"name": "new", "kind": "call", "prompt_plan": "x" * 201}, b"At most 200 characters"),
])
def test_template_form_refusals(client, login_as, app, data, message):
    with app.app_context():
        db.session.add(NoteTemplate(name="Taken", kind="call", prompts={}, required_sections=[]))
        db.session.commit()
    login_as("admin")
    response = client.post("/note-templates/new", headers=HX, data=data)
    assert response.status_code == 422 and message in response.data
    assert data["name"].encode() in response.data


def test_markup_in_a_template_name_stays_text_in_the_toast_and_the_list(client, login_as):
    login_as("admin")
    response = client.post("/note-templates/new", data={"name": "<img src=x>", "kind": "call", "active": "y"})
    assert response.status_code == 303
    html = client.get(response.headers["Location"]).data.decode()
    assert "<img src=x>" not in html and html.count("&lt;img src=x&gt;") == 2  # toast and table
