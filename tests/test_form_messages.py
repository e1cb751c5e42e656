"""Bad input is caught and every message says what to do (U3, C2): a birthday in the
future or before 1900, a pasted text longer than the limit (kept, and refused with
the limit named: no maxlength cuts it short unseen), empty required fields named in
the office's words; and a template's prompts are placeholders, its sections named
in the toast as the form names them."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest

from extensions import db
from models import Customer, NoteTemplate, User
from services import customers, notes, office_time, tags
from services.customers import CustomerData
from services.notes import NoteData
from tests.conftest import login

HX = {"HX-Request": "true"}
FORM = {"name": "王小明", "company": "", "mobile": "", "mobile_2": "", "landline": "", "email": "",
        "address": "", "region": "", "type": "individual", "stage": "potential", "importance": "B",
        "source": "call", "birthday": ""}


@pytest.fixture
def seller(client, make_user):
    user = make_user("sales", display_name="李销售")
    login(client, user.username)
    return user


@pytest.fixture
def customer_id(app, seller):
    with app.app_context():
        customer = customers.create_customer(db.session.get(User, seller.id), CustomerData(name="张伟华"),
                                             acknowledge_duplicates=True)
        db.session.commit()
        return customer.id


def _errors(html: str) -> list[str]:
    return re.findall(r'class="field-error">([^<]*)<', html)


# ---- customer form ---------------------------------------------------------------

@pytest.mark.parametrize("birthday", ["2099-01-01", "1800-05-05", "1900-01-01", "tomorrow"])
def test_birthday_must_be_in_the_past_and_after_1900(app, client, seller, birthday):
    if birthday == "tomorrow":
        with app.app_context():
            birthday = (office_time.office_today() + timedelta(days=1)).isoformat()
    response = client.post("/customers/new", headers=HX, data={**FORM, "birthday": birthday})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert _errors(html) == ["Enter a birthday in the past, after 1900."]  # one message, not two
    assert f'value="{birthday}"' in html


def test_a_past_birthday_is_saved_and_the_rule_is_shown_next_to_the_field(app, client, seller):
    form = client.get("/customers/new").get_data(as_text=True)
    assert "Optional: a day in the past, after 1900." in form
    response = client.post("/customers/new", data={**FORM, "name": "生日客户", "birthday": "1985-06-30"})
    assert response.status_code == 303
    with app.app_context():
        assert db.session.scalars(db.select(Customer).filter_by(name="生日客户")).one().birthday.year == 1985


def test_a_pasted_long_name_is_kept_and_refused_with_the_limit(app, client, seller):
    pasted = "长" * 10_000
    response = client.post("/customers/new", headers=HX, data={**FORM, "name": pasted})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "At most 100 characters (this has 10000): shorten it." in html
    assert f'value="{pasted}"' in html  # nothing cut
    with app.app_context():
        assert db.session.scalars(db.select(Customer).filter_by(name=pasted[:100])).first() is None


def test_no_form_field_cuts_typing_short(client, seller, customer_id):
    for url in ("/customers/new", f"/customers/{customer_id}/edit"):
        page = client.get(url)
        assert page.status_code == 200 and "maxlength" not in page.get_data(as_text=True).split("<main")[1], url
    detail = client.get(f"/customers/{customer_id}").get_data(as_text=True)
    for form_id in ("note-form", "task-form"):
        form = re.search(rf'<form id="{form_id}".*?</form>', detail, re.S).group(0)
        assert "maxlength" not in form, form_id
    assert 'placeholder="None"' not in detail  # no template chosen: no prompt at all


def test_required_name_says_what_to_do_in_chinese(client, seller):
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "zh"
    html = client.post("/customers/new", headers=HX, data={**FORM, "name": ""}).get_data(as_text=True)
    assert _errors(html) == ["请填写客户姓名。"] and "该字段是必填字段" not in html


def test_bad_email_says_what_to_type(client, seller):
    html = client.post("/customers/new", headers=HX, data={**FORM, "email": "zhang@"}).get_data(as_text=True)
    assert _errors(html) == ["Enter an email address such as name@example.com."]


# ---- note, comment, task ---------------------------------------------------------

def test_a_long_note_is_kept_and_refused_with_the_limit(client, seller, customer_id):
    body = "话" * (notes.BODY_MAX + 1)
    response = client.post(f"/customers/{customer_id}/notes", headers=HX, data={"kind": "call", "body": body})
    html = response.get_data(as_text=True)
    assert response.status_code == 422 and body in html
    assert f"At most {notes.BODY_MAX} characters (this has {notes.BODY_MAX + 1}): shorten it." in html


def test_a_note_with_a_bad_date_says_how_to_write_it(client, seller, customer_id):
    response = client.post(f"/customers/{customer_id}/notes", headers=HX,
                           data={"kind": "call", "body": "回电", "follow_up_on": "下周"})
    assert _errors(response.get_data(as_text=True)) == ["Enter the follow-up date, e.g. 2026-03-01."]


def test_a_long_comment_is_refused_with_the_limit(app, client, seller, customer_id):
    with app.app_context():
        note = notes.create_note(db.session.get(User, seller.id), db.session.get(Customer, customer_id),
                                 NoteData(kind="call", body="有评论")).note
        db.session.commit()
        note_id = note.id
    page = client.get(f"/customers/{customer_id}").get_data(as_text=True)
    assert 'maxlength="500"' not in page
    response = client.post(f"/notes/{note_id}/comments", headers=HX, data={"body": "评" * (notes.COMMENT_MAX + 1)})
    assert response.status_code == 422
    assert f"At most {notes.COMMENT_MAX} characters" in response.get_data(as_text=True)


def test_a_long_task_title_is_refused_with_the_limit(client, seller, customer_id):
    response = client.post(f"/customers/{customer_id}/tasks", headers=HX,
                           data={"title": "跟" * 201, "due_date": "2030-01-01", "assignee_id": str(seller.id)})
    assert response.status_code == 422
    assert "At most 200 characters (this has 201): shorten it." in response.get_data(as_text=True)


# ---- tag and user forms ----------------------------------------------------------

def test_tag_and_user_forms_say_the_limit(app, client, login_as):
    login_as("admin")
    with app.app_context():
        group = tags.create_group(db.session.scalars(db.select(User).filter_by(role="admin")).first(), "行业")
        db.session.commit()
        group_id = group.id
    tag = client.post(f"/tags/groups/{group_id}/tags", headers=HX, data={"name": "标" * 40, "colour": ""})
    assert tag.status_code == 422 and "At most 32 characters (this has 40): shorten it." in tag.get_data(as_text=True)
    assert "maxlength" not in client.get("/tags").get_data(as_text=True).split("<main")[1]
    user = client.post("/admin/users/new", headers=HX, data={"username": "", "role": "sales"})
    assert "Enter a username." in user.get_data(as_text=True)
    assert "maxlength" not in client.get("/admin/users/new").get_data(as_text=True).split("<main")[1]


# ---- templates: prompts as placeholders, sections named alike ----------------------

def test_template_sections_are_named_alike_in_form_and_toast(app, client, seller, customer_id):
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "zh"
    with app.app_context():
        template = NoteTemplate(name="来电登记X", kind="call", required_sections=["summary", "needs"],
                                prompts={"summary": "来电事由：", "needs": "客户需求：", "plan": "下一步："})
        db.session.add(template)
        db.session.commit()
        template_id = template.id
    form = client.get(f"/customers/{customer_id}/notes/new", headers=HX,
                      query_string={"template_id": template_id}).get_data(as_text=True)
    assert 'placeholder="来电事由："' in form and "来电事由：</textarea>" not in form
    labels = re.findall(r'<label for="note-new-(summary|needs)"[^>]*>([^\n<]*)', form)
    assert [label.strip() for _name, label in labels] == ["沟通摘要", "客户需求"]
    assert form.count("模板“来电登记X”要求填写。") == 2
    saved = client.post(f"/customers/{customer_id}/notes", headers=HX,
                        data={"kind": "call", "body": "客户来电", "template_id": str(template_id), "summary": "",
                              "needs": "", "plan": ""})
    assert saved.status_code == 200
    toast = json.loads(saved.headers["HX-Trigger"])["toast"]["message"]
    assert "尚未填写：沟通摘要、客户需求。" in toast
