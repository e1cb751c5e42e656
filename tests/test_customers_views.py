import re

import pytest
from sqlalchemy import select

from extensions import db
from models import Customer, CustomerChange, Tag, TagGroup
from services import accounts, customers
from services.customers import CustomerData
from tests.conftest import TEST_PASSWORD, login
from tests.factories import make_customer

HX = {"HX-Request": "true"}
FORM = {"name": "王小明", "company": "", "mobile": "", "mobile_2": "", "landline": "", "email": "",
        "address": "", "region": "", "type": "individual", "stage": "potential", "importance": "B",
        "source": "call", "birthday": "", "owner_id": ""}


@pytest.fixture
def world(app):
    """Two salespeople, one customer each, one pool customer, one archived."""
    with app.app_context():
        s1 = accounts.create_user("s1", TEST_PASSWORD, "sales")
        s2 = accounts.create_user("s2", TEST_PASSWORD, "sales")
        admin = accounts.create_user("boss", TEST_PASSWORD, "admin")
        own = make_customer(s1, "甲客户", phone="13800138000", address="北京市朝阳区")
        foreign = make_customer(s2, "乙客户", phone="13900139000", address="上海市浦东新区")
        pool = make_customer(admin, "丙客户")
        archived = make_customer(s1, "丁客户")
        customers.archive(admin, archived)
        db.session.commit()
        return {"own": own.id, "foreign": foreign.id, "pool": pool.id, "archived": archived.id}


def _as(client, app, role):
    with app.app_context():
        if role in ("s1", "s2", "boss"):
            username = role
        else:
            username = f"{role}.x"
            accounts.create_user(username, TEST_PASSWORD, role)
            db.session.commit()
    assert login(client, username).status_code == 303


ENDPOINTS = [
    ("get", "/customers/{id}"), ("get", "/customers/{id}/edit"), ("post", "/customers/{id}/edit"),
    ("post", "/customers/{id}/archive"), ("post", "/customers/{id}/restore"),
    ("post", "/customers/{id}/purge"), ("get", "/customers/{id}/history"),
]
# What a role gets for another salesperson's customer: 404 where it may not know the
# customer, 403 where it may see it but not do this, 200/422 where allowed.
EXPECTED_FOREIGN = {
    "s1": [404, 404, 404, 403, 403, 403, 404],
    "frontdesk": [200, 403, 403, 403, 403, 403, 403],
    "manager": [200, 200, 422, 200, 204, 403, 200],
}


@pytest.mark.parametrize("role", list(EXPECTED_FOREIGN))
@pytest.mark.parametrize("index", range(len(ENDPOINTS)))
def test_role_endpoint_foreign_id_matrix(app, client, world, role, index):
    _as(client, app, role)
    method, path = ENDPOINTS[index]
    expected = EXPECTED_FOREIGN[role][index]
    url = path.format(id=world["foreign"])
    response = getattr(client, method)(url, data={"name": ""}, headers=HX)
    assert response.status_code == expected, (role, method, url)
    if expected == 404:
        assert "乙客户".encode() not in response.data and b"13900139000" not in response.data
        full = getattr(client, method)(url, data={"name": ""})
        assert full.status_code == 404
    unknown = getattr(client, method)(path.format(id=999999), headers=HX)
    assert unknown.status_code in (403, 404)


def test_sales_sees_own_and_pool_in_the_list(app, client, world):
    _as(client, app, "s1")
    page = client.get("/customers").data.decode()
    assert "甲客户" in page and "丙客户" in page
    assert "乙客户" not in page and "丁客户" not in page


def test_front_desk_sees_basic_card_only(app, client, world):
    _as(client, app, "frontdesk")
    page = client.get(f"/customers/{world['foreign']}").data.decode()
    assert "乙客户" in page and "139 0013 9000" in page and "s2" in page
    assert "上海市浦东新区" not in page  # the address is not on the basic card
    assert "Change history" not in page


def test_list_filter_fragment_and_bookmarkable_url(app, client, world):
    _as(client, app, "boss")
    full = client.get("/customers?owner=pool")
    fragment = client.get("/customers?owner=pool", headers=HX)
    assert b"<html" in full.data and b"<html" not in fragment.data
    assert "丙客户".encode() in fragment.data and "甲客户".encode() not in fragment.data
    assert "HX-Request" in fragment.headers["Vary"]
    archived = client.get("/customers?archived=1", headers=HX).data.decode()
    assert "丁客户" in archived and "甲客户" not in archived


@pytest.mark.parametrize("query", ["?stage=bogus", "?page=-3", "?page=abc", "?tag=x&tag=999", "?sort=drop table",
                                   "?q=" + "%27%22%3C%3E*?" * 40])
def test_list_survives_odd_arguments(app, client, world, query):
    _as(client, app, "boss")
    assert client.get("/customers" + query).status_code == 200


def test_create_customer_with_normalised_phone(app, client, world):
    _as(client, app, "s1")
    response = client.post("/customers/new", headers=HX, data={**FORM, "name": "新客户", "mobile": "+86 137-0013-7000"})
    assert response.status_code == 204 and response.headers["HX-Redirect"].startswith("/customers/")
    with app.app_context():
        customer = db.session.scalar(select(Customer).where(Customer.name == "新客户"))
        assert [p.digits for p in customer.phones] == ["13700137000"]
        assert customer.owner.username == "s1"
    page = client.get(response.headers["HX-Redirect"]).data.decode()
    assert "137 0013 7000" in page and 'href="tel:13700137000"' in page


@pytest.mark.parametrize("field, value, message", [
    ("name", "", "Enter the customer&#39;s name."),
    ("name", "x" * 101, "At most 100 characters (this has 101): shorten it."),
    ("mobile", "abc-123", "Not a phone number"),
    ("email", "not-an-email", "Enter an email address such as name@example.com."),
    ("birthday", "1990-13-45", "Enter the birthday as a date, e.g. 1985-06-30."),
    ("stage", "won", "Not a valid choice"),
])
def test_bad_input_shows_next_to_the_field_and_keeps_typing(app, client, world, field, value, message):
    _as(client, app, "s1")
    data = {**FORM, "company": '<script>alert(1)</script><b hx-get="/x">', field: value}
    response = client.post("/customers/new", headers=HX, data=data)
    assert response.status_code == 422
    assert message in response.data.decode()
    assert b'id="customer-form"' in response.data and b"<html" not in response.data
    assert b"&lt;script&gt;alert(1)&lt;/script&gt;&lt;b hx-get=" in response.data
    assert b"<script>alert" not in response.data


def test_script_in_fields_is_shown_inert_on_the_card(app, client, world):
    _as(client, app, "s1")
    response = client.post("/customers/new", data={**FORM, "name": '<img src=x onerror=alert(1)>',
                                                   "address": '<a hx-post="/logout">x</a>'})
    page = client.get(response.headers["Location"]).data.decode()
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert '<a hx-post="/logout">' not in page


def test_duplicate_warning_while_typing(app, client, world):
    _as(client, app, "s1")
    own = client.get("/customers/duplicates?mobile=138-0013-8000", headers=HX).data.decode()
    assert "甲客户" in own and "same phone" in own
    foreign = client.get("/customers/duplicates?mobile=13900139000", headers=HX).data.decode()
    assert "A customer you cannot open" in foreign and "s2" in foreign
    assert "乙客户" not in foreign and "上海" not in foreign
    assert client.get("/customers/duplicates?name=nobody", headers=HX).data.strip() == b""


def test_duplicate_on_save_needs_save_anyway(app, client, world):
    _as(client, app, "s1")
    data = {**FORM, "name": "另一个人", "mobile": "13900139000"}
    first = client.post("/customers/new", headers=HX, data=data)
    assert first.status_code == 422 and b"acknowledge_duplicates" in first.data
    assert "另一个人".encode() in first.data  # typing kept
    second = client.post("/customers/new", headers=HX, data={**data, "acknowledge_duplicates": "y"})
    assert second.status_code == 204


def test_owner_cannot_be_set_through_the_form_by_sales(app, client, world):
    _as(client, app, "s1")
    with app.app_context():
        s2 = accounts.get_by_username("s2").id
    client.post("/customers/new", data={**FORM, "name": "想给别人", "owner_id": str(s2)})
    client.post(f"/customers/{world['own']}/edit", data={**FORM, "name": "甲客户", "owner_id": str(s2)})
    with app.app_context():
        assert db.session.scalar(select(Customer).where(Customer.name == "想给别人")).owner.username == "s1"
        assert db.session.get(Customer, world["own"]).owner.username == "s1"


def test_edit_records_history_and_shows_it(app, client, world):
    _as(client, app, "s1")
    form = client.get(f"/customers/{world['own']}/edit").data.decode()
    assert 'value="13800138000"' in form
    response = client.post(f"/customers/{world['own']}/edit", headers=HX,
                           data={**FORM, "name": "甲客户", "mobile": "13800138000", "stage": "deal",
                                 "address": "北京市朝阳区"})
    assert response.status_code == 204
    history = client.get(f"/customers/{world['own']}/history", headers=HX).data.decode()
    assert "Stage" in history and "Potential" in history and "Deal" in history
    assert "<html" not in history
    assert "<html" in client.get(f"/customers/{world['own']}/history").data.decode()


def test_archive_with_undo_and_restore(app, client, world):
    _as(client, app, "manager")
    response = client.post(f"/customers/{world['own']}/archive", headers=HX)
    assert response.status_code == 200 and b'id="customer-card"' in response.data
    toast = response.headers["HX-Trigger"]
    assert f"/customers/{world['own']}/restore" in toast
    assert "甲客户" not in client.get("/customers").data.decode()
    undo = client.post(f"/customers/{world['own']}/restore", headers=HX)
    assert undo.status_code == 204 and undo.headers["HX-Refresh"] == "true"
    assert "甲客户" in client.get("/customers").data.decode()


def test_archive_without_htmx_redirects_to_the_customer_page(app, client, world):
    """A plain form post (no JavaScript) is saved and redirected, with the message
    on the page it lands on; it used to render the page without its context, a 500."""
    _as(client, app, "manager")
    response = client.post(f"/customers/{world['own']}/archive")
    assert response.status_code == 303 and response.headers["Location"] == f"/customers/{world['own']}"
    with app.app_context():
        assert db.session.get(Customer, world["own"]).archived_at is not None
    page = client.get(response.headers["Location"]).data.decode()
    assert "甲客户 archived." in page


def test_purge_needs_the_typed_name_and_admin(app, client, world):
    _as(client, app, "boss")
    wrong = client.post(f"/customers/{world['archived']}/purge", headers=HX, data={"confirm_name": "丁"})
    assert wrong.status_code == 422 and b"Type the customer" in wrong.data
    not_archived = client.post(f"/customers/{world['own']}/purge", headers=HX, data={"confirm_name": "甲客户"})
    assert not_archived.status_code == 422
    done = client.post(f"/customers/{world['archived']}/purge", headers=HX, data={"confirm_name": "丁客户"})
    assert done.headers["HX-Redirect"] == "/customers?archived=1"
    with app.app_context():
        assert db.session.get(Customer, world["archived"]) is None
        changes = select(CustomerChange).where(CustomerChange.customer_id == world["archived"])
        assert not db.session.scalars(changes).all()


def test_a_refused_purge_without_htmx_redirects_with_the_reason(app, client, world):
    _as(client, app, "boss")
    response = client.post(f"/customers/{world['archived']}/purge", data={"confirm_name": "丁"})
    assert response.status_code == 303 and response.headers["Location"] == f"/customers/{world['archived']}"
    with app.app_context():
        assert db.session.get(Customer, world["archived"]) is not None
    assert "Type the customer" in client.get(response.headers["Location"]).data.decode()


def test_tag_filter_counts_in_list(app, client, world):
    with app.app_context():
        group = TagGroup(name="行业")
        db.session.add(group)
        db.session.flush()
        a, b = Tag(group_id=group.id, name="制造"), Tag(group_id=group.id, name="教育")
        db.session.add_all([a, b])
        db.session.commit()
        boss = accounts.get_by_username("boss")
        customers.set_tags(boss, db.session.get(Customer, world["own"]), [a.id, b.id])
        customers.set_tags(boss, db.session.get(Customer, world["pool"]), [a.id])
        db.session.commit()
        a_id, b_id = a.id, b.id
    _as(client, app, "boss")
    both = client.get(f"/customers?tag={a_id}&tag={b_id}", headers=HX).data.decode()
    assert "甲客户" in both and "丙客户" not in both
    one = client.get(f"/customers?tag={a_id}", headers=HX).data.decode()
    assert "甲客户" in one and "丙客户" in one
    assert re.search(r"2 customers", one)


def test_sales_form_has_no_owner_field_and_saves_without_it(app, client, world):
    _as(client, app, "s1")
    assert b'name="owner_id"' not in client.get("/customers/new").data
    data = {k: v for k, v in FORM.items() if k != "owner_id"}
    response = client.post("/customers/new", headers=HX, data={**data, "name": "无负责人字段"})
    assert response.status_code == 204


def test_merge_and_undo_through_the_views(app, client, world):
    _as(client, app, "s1")
    assert client.get(f"/customers/{world['own']}/merge").status_code == 403
    assert client.post(f"/customers/{world['pool']}/merge", data={"drop_id": world["own"]}).status_code == 403
    client.post("/logout")
    _as(client, app, "manager")
    page = client.get(f"/customers/{world['own']}/merge?q=丙").data.decode()
    assert "丙客户" in page and "Merge into this one" in page
    fragment = client.get(f"/customers/{world['own']}/merge?q=丙", headers=HX)
    assert b"<html" not in fragment.data and "丙客户".encode() in fragment.data
    assert client.post(f"/customers/{world['pool']}/merge", data={"drop_id": 999999}).status_code == 404
    response = client.post(f"/customers/{world['pool']}/merge", data={"drop_id": world["own"]})
    assert response.headers["Location"] == f"/customers/{world['pool']}"
    merged = client.get(f"/customers/{world['own']}").data.decode()
    assert "Merged into" in merged and "Undo merge" in merged
    same = client.post(f"/customers/{world['pool']}/merge", headers=HX, data={"drop_id": world["pool"]})
    assert same.status_code == 204 and "error" in same.headers["HX-Trigger"]
    undone = client.post(f"/customers/{world['own']}/unmerge")
    assert undone.headers["Location"] == f"/customers/{world['own']}"
    with app.app_context():
        assert db.session.get(Customer, world["own"]).archived_at is None
    again = client.post(f"/customers/{world['own']}/unmerge", headers=HX)
    assert again.status_code == 204 and "error" in again.headers["HX-Trigger"]


# ---- who opened another salesperson's customer (issue 15, item 15) -------------------------------

def _views():
    from models import AuditEvent

    return [(e.actor_name, e.target_id, e.details["owner_id"]) for e in db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "customer.view").order_by(AuditEvent.id))]


@pytest.mark.parametrize("role", ["manager", "boss"])
def test_reading_a_colleagues_customer_is_audited_once_a_day(app, client, world, role):
    _as(client, app, role)
    for _ in range(3):
        assert client.get(f"/customers/{world['foreign']}").status_code == 200
    client.get(f"/customers/{world['own']}", headers={"HX-Request": "true", "HX-Boosted": "true"})
    client.get(f"/customers/{world['pool']}")
    with app.app_context():
        s1, s2 = (accounts.get_by_username(name).id for name in ("s1", "s2"))
        name = "boss" if role == "boss" else "manager.x"
        assert _views() == [(name, world["foreign"], s2), (name, world["own"], s1)]


@pytest.mark.parametrize("role", ["s1", "frontdesk"])
def test_owners_and_the_front_desk_leave_no_view_lines(app, client, world, role):
    _as(client, app, role)
    assert client.get(f"/customers/{world['own']}").status_code == 200
    with app.app_context():
        assert _views() == []


def test_the_next_office_day_gets_a_line_of_its_own(app, world):
    from datetime import date

    from services import audit

    with app.app_context():
        boss = accounts.get_by_username("boss")
        customer = db.session.get(Customer, world["foreign"])
        written = []
        for day in (date(2026, 12, 1), date(2026, 12, 1), date(2026, 12, 2)):
            written.append(audit.record_customer_view(boss, customer, day=day))
            db.session.commit()  # as the view does
        assert written == [True, False, True]
        assert len(_views()) == 2

@pytest.fixture
def archived_sheet(app, world):
    """The archived customer of ``world`` with a note and a task from before it was
    archived (restored, written on, archived again)."""
    from datetime import date, timedelta

    from services import notes, tasks
    from services.notes import NoteData

    with app.app_context():
        s1, boss = accounts.get_by_username("s1"), accounts.get_by_username("boss")
        customer = db.session.get(Customer, world["archived"])
        customers.restore(boss, customer)
        note = notes.create_note(s1, customer, NoteData(kind="call", body="归档前的备注")).note
        task = tasks.create_task(s1, customer, due_date=date.today() + timedelta(days=2), title="归档前的跟进")
        customers.archive(boss, customer)
        db.session.commit()
        return {"customer": customer.id, "note": note.id, "task": task.id}


@pytest.mark.parametrize("headers", [{}, HX], ids=["plain", "htmx"])
def test_archived_records_are_404_for_sales_and_the_filter_is_not_offered(client, app, archived_sheet, headers):
    _as(client, app, "s1")
    c, n = archived_sheet["customer"], archived_sheet["note"]
    for path in (f"/customers/{c}", f"/customers/{c}/notes", f"/customers/{c}/history", f"/notes/{n}",
                 f"/notes/{n}/revisions"):
        assert client.get(path, headers=headers).status_code == 404, path
    listed = client.get("/customers?archived=1", headers=headers).get_data(as_text=True)
    assert "丁客户" not in listed and "甲客户" in listed  # the toggle is ignored
    assert 'name="archived"' not in client.get("/customers").get_data(as_text=True)
    assert "归档前的跟进" not in client.get("/tasks?scope=all").get_data(as_text=True)


def test_the_archive_is_offered_to_those_who_archive(client, app, world):
    _as(client, app, "manager")
    assert 'name="archived"' in client.get("/customers").get_data(as_text=True)
    assert "丁客户" in client.get("/customers?archived=1", headers=HX).get_data(as_text=True)


def test_nothing_is_written_on_an_archived_customer_even_by_a_manager(client, app, archived_sheet):
    _as(client, app, "manager")
    c, n, t = archived_sheet["customer"], archived_sheet["note"], archived_sheet["task"]
    page = client.get(f"/customers/{c}").get_data(as_text=True)
    assert "归档前的备注" in page
    for offered in (f"/customers/{c}/edit", f"/customers/{c}/notes\"", f"/notes/{n}/comments",
                    f"/customers/{c}/assign"):
        assert offered not in page, offered
    writes = [
        (f"/customers/{c}/edit", dict(FORM, name="改名")), (f"/customers/{c}/notes", {"kind": "call", "body": "新"}),
        (f"/customers/{c}/tasks", {"title": "新", "due_date": "2999-01-01"}),
        (f"/customers/{c}/assign", {"to_user_id": "1"}), (f"/customers/{c}/release", {"reason": "no_need"}),
        (f"/customers/{c}/lock", {"locked": "1"}), (f"/notes/{n}/comments", {"body": "评论"}),
        (f"/notes/{n}/edit", {"kind": "call", "body": "改"}), (f"/notes/{n}/delete", {}),
        (f"/tasks/{t}/done", {}), (f"/tasks/{t}/snooze", {"days": "1"}),
    ]
    for path, data in writes:
        assert client.post(path, data=data, headers=HX).status_code == 403, path
    assert client.get(f"/customers/{c}/edit").status_code == 403
    with app.app_context():
        assert db.session.get(Customer, c).name == "丁客户"


def test_front_desk_list_shows_filters_and_sorts_on_the_basic_card_only(client, app, world):
    with app.app_context():
        boss = accounts.get_by_username("boss")
        customers.update_customer(boss, db.session.get(Customer, world["foreign"]),
                                  CustomerData(name="乙客户", phones=[("mobile", "13900139000")], stage="deal",
                                               address="上海市浦东新区", owner_id=accounts.get_by_username("s2").id))
    _as(client, app, "frontdesk")
    page = client.get("/customers").get_data(as_text=True)
    head = page.split("<thead>")[1].split("</thead>")[0]
    for hidden in ("Stage", "Tags", "Created", "Recycling"):
        assert hidden not in head, hidden
    assert "Owner" in head and "Phone" in head and "Last contact" in head
    for control in ('name="stage"', 'name="importance"', 'name="type"', 'name="source"', 'name="region"',
                    'name="archived"', "tag-filter-bar"):
        assert control not in page, control
    assert "成交" not in page  # the stage label of 乙客户
    filtered = client.get("/customers?stage=deal&importance=A&region=x&sort=last_contact", headers=HX)
    assert "甲客户" in filtered.get_data(as_text=True)  # forbidden filters are ignored
    client = app.test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    _as(client, app, "manager")
    head = client.get("/customers").get_data(as_text=True).split("<thead>")[1].split("</thead>")[0]
    for label in ("Stage", "Tags", "Last contact", "Created", "Recycling"):
        assert label in head, label
    assert "甲客户" not in client.get("/customers?stage=deal", headers=HX).get_data(as_text=True)
