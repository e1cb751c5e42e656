"""Input the database cannot store: a NUL character in any text field, a date far
outside the calendar anyone means, control characters in a query string. Each is a
message next to the field (or is stripped from the query), never a 500 — PostgreSQL
is where they failed."""

from datetime import date

import pytest
from sqlalchemy import func, select

from extensions import db
from models import Customer, CustomerNote, FollowUpTask, NoteComment, TagGroup
from services import customers, notes
from services.customers import CustomerData
from services.notes import NoteData
from tests.test_customers_views import FORM

HX = {"HX-Request": "true"}
NUL = "cannot be saved"


def _count(model) -> int:
    count = db.session.scalar(select(func.count()).select_from(model))
    db.session.commit()
    return count


@pytest.fixture
def mine(app, login_as):
    user = login_as("sales")
    with app.app_context():
        customer = customers.create_customer(user, CustomerData(name="王小明"))
        note = notes.create_note(user, customer, NoteData(kind="call", body="第一次来电")).note
        db.session.commit()
        return {"customer": customer.id, "note": note.id}


def _refused(response, message=NUL) -> str:
    assert response.status_code in (200, 422), response.status_code
    page = response.get_data(as_text=True)
    assert message in page
    return page


@pytest.mark.parametrize("field", ["body", "needs", "mention"])
def test_a_nul_in_a_note_field_is_a_message_next_to_it(app, client, mine, field):
    data = {"kind": "call", "body": "报价", field: "报\x00价"}
    _refused(client.post(f"/customers/{mine['customer']}/notes", headers=HX, data=data))
    with app.app_context():
        assert _count(CustomerNote) == 1


@pytest.mark.parametrize("when", ["0001-01-01T10:00", "1899-12-31T23:59", "9999-12-31T23:59"])
def test_a_contact_time_out_of_range_is_a_message_next_to_it(app, client, mine, when):
    data = {"kind": "call", "body": "报价", "contacted_at": when}
    _refused(client.post(f"/customers/{mine['customer']}/notes", headers=HX, data=data), "between the years 1900")
    with app.app_context():
        assert _count(CustomerNote) == 1


def test_a_nul_in_a_comment_a_task_and_a_customer_is_a_message(app, client, mine):
    _refused(client.post(f"/notes/{mine['note']}/comments", headers=HX, data={"body": "好\x00的"}))
    due = date.today().isoformat()
    _refused(client.post(f"/customers/{mine['customer']}/tasks", headers=HX, data={"title": "寄\x00", "due_date": due}))
    _refused(client.post("/customers/new", headers=HX, data={**FORM, "name": "李\x00四"}))
    _refused(client.post(f"/customers/{mine['customer']}/edit", headers=HX,
                         data={**FORM, "address": "人民路\x00"}))
    with app.app_context():
        assert (_count(NoteComment), _count(FollowUpTask), _count(Customer)) == (0, 0, 1)


def test_a_nul_in_a_tag_group_name_is_a_message(app, client, login_as):
    login_as("admin")
    _refused(client.post("/tags/groups", headers=HX, data={"name": "行\x00业", "colour": "blue"}))
    with app.app_context():
        assert _count(TagGroup) == 0


@pytest.mark.parametrize("path", ["/customers", "/notes", "/search", "/search/suggest"])
def test_control_characters_in_a_query_string_are_dropped(app, client, mine, path):
    response = client.get(path, headers=HX, query_string={"q": "王\x00小明\x07"})
    assert response.status_code == 200
    if path in ("/customers", "/search"):
        assert "王小明" in response.get_data(as_text=True)
