"""The tag management page (T1) and the tag filter macro (T2): roles, each htmx
endpoint as fragment and as full page, bad input, merge and delete."""

import json
import re

import pytest
from sqlalchemy import func, select

from extensions import db
from models import AuditEvent, Customer, CustomerNote, Tag, TagGroup, User, customer_tags
from services import customers, tags

HX = {"HX-Request": "true"}

ENDPOINTS = [
    ("get", "/tags"),
    ("post", "/tags/groups"),
    ("get", "/tags/groups/{group}"),
    ("get", "/tags/groups/{group}/edit"),
    ("post", "/tags/groups/{group}"),
    ("post", "/tags/groups/{group}/delete"),
    ("post", "/tags/groups/{group}/tags"),
    ("get", "/tags/{tag}"),
    ("get", "/tags/{tag}/edit"),
    ("post", "/tags/{tag}"),
    ("get", "/tags/{tag}/merge"),
    ("post", "/tags/{tag}/merge"),
    ("post", "/tags/{tag}/delete"),
]


@pytest.fixture
def build(app, make_user):
    """Run ``fn(manager)`` in an app context, as a manager of its own; returns the
    result (ids, not instances, cross the boundary)."""
    owner = make_user("manager")

    def run(fn):
        with app.app_context():
            result = fn(db.session.get(User, owner.id))
            db.session.commit()
            return result

    return run


@pytest.fixture
def seeded(build):
    """A group 需求 with tags 报价 and 询价; a customer carrying both and a note
    carrying 报价; an empty group 其他."""

    def make(actor):
        group = tags.create_group(actor, "需求", "green")
        empty = tags.create_group(actor, "其他", "grey")
        quote = tags.create_tag(actor, group.id, "报价")
        enquiry = tags.create_tag(actor, group.id, "询价", "red")
        customer = customers.create_customer(actor, customers.CustomerData(name="王五"))
        customers.set_tags(actor, customer, [quote.id, enquiry.id])
        db.session.commit()
        note = CustomerNote(customer_id=customer.id, author_id=actor.id, kind="call", body="问价")
        note.tags.append(quote)
        db.session.add(note)
        db.session.commit()
        return {"group": group.id, "empty": empty.id, "quote": quote.id, "enquiry": enquiry.id,
                "customer": customer.id, "note": note.id}

    return build(make)


def _toast(response):
    return json.loads(response.headers["HX-Trigger"])["toast"]["message"]


def _count(app, model, *where):
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


def _audit_actions(app):
    with app.app_context():
        return [e.action for e in db.session.scalars(select(AuditEvent).order_by(AuditEvent.id))
                if e.action.startswith("tag")]


# ---- who may ---------------------------------------------------------------------------

@pytest.mark.parametrize("role", ["sales", "frontdesk"])
@pytest.mark.parametrize("method, path", ENDPOINTS)
def test_staff_get_403_on_every_tags_endpoint(client, login_as, seeded, role, method, path):
    login_as(role)
    url = path.format(group=seeded["empty"], tag=seeded["quote"])
    data = {"name": "x", "colour": "grey", "target_id": str(seeded["enquiry"])}
    page = getattr(client, method)(url, data=data)
    assert page.status_code == 403 and b"<html" in page.data
    fragment = getattr(client, method)(url, data=data, headers=HX)
    assert fragment.status_code == 403 and b"<html" not in fragment.data


def test_staff_changed_nothing(app, client, login_as, seeded):
    before = _audit_actions(app)
    login_as("sales")
    client.post(f"/tags/{seeded['quote']}/delete", headers=HX)
    client.post(f"/tags/{seeded['quote']}", data={"name": "改", "colour": ""}, headers=HX)
    assert _count(app, Tag) == 2 and _audit_actions(app) == before


@pytest.mark.parametrize("method, path", ENDPOINTS)
def test_anonymous_is_sent_to_login(client, method, path):
    response = getattr(client, method)(path.format(group=1, tag=1))
    assert response.status_code == 303 and response.headers["Location"].startswith("/login")
    fragment = getattr(client, method)(path.format(group=1, tag=1), headers=HX)
    assert fragment.headers["HX-Redirect"].startswith("/login")


@pytest.mark.parametrize("role", ["admin", "manager"])
def test_admins_and_managers_see_the_page(client, login_as, seeded, role):
    login_as(role)
    page = client.get("/tags")
    assert page.status_code == 200 and b"<html" in page.data
    text = page.data.decode()
    for name in ("需求", "其他", "报价", "询价"):
        assert name in text
    assert "1 customer · 1 note" in " ".join(text.split())  # 报价
    assert 'class="tag tag-red"' in text and 'class="tag tag-green"' in text
    fragment = client.get("/tags", headers=HX)
    assert fragment.status_code == 200 and b"<html" not in fragment.data
    assert b'id="tag-groups"' in fragment.data
    assert "HX-Request" in fragment.headers["Vary"]


@pytest.mark.parametrize("method, path", [p for p in ENDPOINTS if "{" in p[1]])
def test_unknown_ids_are_404(client, login_as, method, path):
    login_as("manager")
    url = path.format(group=999999, tag=999999)
    assert getattr(client, method)(url, data={"name": "x"}).status_code == 404
    fragment = getattr(client, method)(url, data={"name": "x"}, headers=HX)
    assert fragment.status_code == 404 and b"<html" not in fragment.data


def test_empty_page_says_what_to_do(client, login_as):
    login_as("admin")
    page = client.get("/tags").data.decode()
    assert "No tag groups yet" in page and 'id="new-group"' in page


# ---- groups ----------------------------------------------------------------------------

def test_create_group_fragment_gives_the_group_and_a_fresh_form(app, client, login_as):
    login_as("manager")
    response = client.post("/tags/groups", data={"name": " 行业 ", "colour": "blue"}, headers=HX)
    assert response.status_code == 200 and b"<html" not in response.data
    text = response.data.decode()
    with app.app_context():
        group = db.session.scalar(select(TagGroup))
        assert (group.name, group.colour) == ("行业", "blue")
    assert f'id="group-{group.id}"' in text and 'id="new-group"' in text
    assert 'id="new-group-name"' in text and 'value="行业"' not in text  # the form is fresh
    assert _toast(response) == "Group 行业 created."
    assert _audit_actions(app) == ["tag_group.create"]


def test_create_group_without_javascript_redirects_with_a_message(client, login_as):
    login_as("manager")
    response = client.post("/tags/groups", data={"name": "行业", "colour": "blue"})
    assert response.status_code == 303 and response.headers["Location"] == "/tags"
    assert "Group 行业 created." in client.get("/tags").data.decode()


@pytest.mark.parametrize("data, message", [
    ({"name": "", "colour": "grey"}, "Enter a name."),
    ({"name": "   ", "colour": "grey"}, "Enter a name."),
    ({"name": "x" * 33, "colour": "grey"}, "At most 32 characters (this has 33): shorten it."),
    ({"name": "需求", "colour": "grey"}, "A group of that name exists already."),
    ({"name": "ok", "colour": "chartreuse"}, "Not a valid choice"),
])
def test_create_group_bad_input(app, client, login_as, seeded, data, message):
    login_as("manager")
    response = client.post("/tags/groups", data=data, headers=HX)
    assert response.status_code == 422 and b"<html" not in response.data
    text = response.data.decode()
    assert 'id="new-group"' in text
    error = re.search(r'<small id="new-group-(\w+)-error" class="field-error">([^<]*)</small>', text)
    assert error and message in error.group(2)
    assert error.group(1) == ("colour" if "choice" in message else "name")
    assert _count(app, TagGroup) == 2
    page = client.post("/tags/groups", data=data)
    assert page.status_code == 422 and b"<html" in page.data and message.encode() in page.data


def test_script_in_a_name_is_kept_and_shown_inert(client, login_as):
    login_as("manager")
    bad = '<script>alert(1)</script><a hx-get="/logout">'
    refused = client.post("/tags/groups", data={"name": bad, "colour": "nope"}, headers=HX)
    assert refused.status_code == 422
    assert b"&lt;script&gt;alert(1)&lt;/script&gt;" in refused.data  # typed text kept
    assert b"<script>alert" not in refused.data and b'<a hx-get="/logout">' not in refused.data
    client.post("/tags/groups", data={"name": "<script>x</script>", "colour": "grey"})
    group_id = int(re.search(rb'id="group-(\d+)"', client.get("/tags").data).group(1))
    client.post(f"/tags/groups/{group_id}/tags", data={"name": '"><img src=x hx-get="/">', "colour": ""})
    page = client.get("/tags").data
    assert b"&lt;script&gt;x&lt;/script&gt;" in page and b"<script>x" not in page
    assert b"<img" not in page and b"&#34;&gt;&lt;img src=x hx-get=&#34;/&#34;&gt;" in page


def test_edit_group_fragment_and_page(client, login_as, seeded):
    login_as("manager")
    url = f"/tags/groups/{seeded['group']}/edit"
    fragment = client.get(url, headers=HX)
    assert fragment.status_code == 200 and b"<html" not in fragment.data
    assert f'id="group-{seeded["group"]}-head"'.encode() in fragment.data
    assert 'value="需求"'.encode() in fragment.data
    page = client.get(url)
    assert b"<html" in page.data and 'value="需求"'.encode() in page.data
    cancel = client.get(f"/tags/groups/{seeded['group']}", headers=HX)
    assert b"<form" not in cancel.data.split(b"Edit")[0] and "需求".encode() in cancel.data


def test_update_group_redraws_the_group(app, client, login_as, seeded):
    login_as("manager")
    url = f"/tags/groups/{seeded['group']}"
    response = client.post(url, data={"name": "客户需求", "colour": "teal"}, headers=HX)
    assert response.status_code == 200 and _toast(response) == "Group 客户需求 saved."
    text = response.data.decode()
    assert f'id="group-{seeded["group"]}"' in text
    assert 'class="tag tag-teal"' in text  # 报价 follows its group's colour
    assert 'class="tag tag-red"' in text  # 询价 keeps its own
    assert _audit_actions(app)[-1] == "tag_group.rename"
    taken = client.post(url, data={"name": "其他", "colour": "teal"}, headers=HX)
    assert taken.status_code == 422 and b"A group of that name exists already." in taken.data
    assert 'value="其他"'.encode() in taken.data
    # The form swaps the whole group: the errors come back with the tags still there.
    assert taken.data.decode().strip().startswith(f'<section id="group-{seeded["group"]}"')
    assert "询价".encode() in taken.data


def test_delete_group(app, client, login_as, seeded):
    login_as("manager")
    refused = client.post(f"/tags/groups/{seeded['group']}/delete", headers=HX)
    assert refused.status_code == 422 and b"Only an empty group can be deleted" in refused.data
    page = client.get("/tags").data.decode()
    assert page.count("Delete group") == 1  # offered for the empty group only
    response = client.post(f"/tags/groups/{seeded['empty']}/delete", headers=HX)
    assert response.status_code == 200 and response.data.strip() == b""
    assert _toast(response) == "Group 其他 deleted."
    assert _count(app, TagGroup) == 1 and _audit_actions(app)[-1] == "tag_group.delete"


def test_delete_group_without_javascript(client, login_as, seeded):
    login_as("manager")
    response = client.post(f"/tags/groups/{seeded['empty']}/delete")
    assert response.status_code == 303 and response.headers["Location"] == "/tags"
    refused = client.post(f"/tags/groups/{seeded['group']}/delete")
    assert refused.status_code == 422 and b"<html" in refused.data


# ---- tags ------------------------------------------------------------------------------

def test_create_tag_gives_the_row_and_a_fresh_form(app, client, login_as, seeded):
    login_as("manager")
    url = f"/tags/groups/{seeded['empty']}/tags"
    response = client.post(url, data={"name": "待定", "colour": "amber"}, headers=HX)
    assert response.status_code == 200 and _toast(response) == "Tag 待定 created."
    text = response.data.decode()
    with app.app_context():
        tag = db.session.scalar(select(Tag).where(Tag.name == "待定"))
        assert (tag.group_id, tag.colour) == (seeded["empty"], "amber")
    assert f'id="tag-{tag.id}"' in text and f'id="group-{seeded["empty"]}-new-tag"' in text
    assert f'id="group-{seeded["empty"]}-head"' in text and 'hx-swap-oob="true"' in text
    assert "Delete group" not in text  # the group is no longer empty
    assert _audit_actions(app)[-1] == "tag.create"


@pytest.mark.parametrize("data, message", [
    ({"name": "", "colour": ""}, "Enter a name."),
    ({"name": "y" * 33, "colour": ""}, "At most 32 characters (this has 33): shorten it."),
    ({"name": "报价", "colour": ""}, "This group already has a tag of that name."),
    ({"name": "ok", "colour": "rainbow"}, "Not a valid choice"),
])
def test_create_tag_bad_input(app, client, login_as, seeded, data, message):
    login_as("manager")
    url = f"/tags/groups/{seeded['group']}/tags"
    response = client.post(url, data=data, headers=HX)
    assert response.status_code == 422 and message.encode() in response.data
    assert f'id="group-{seeded["group"]}-new-tag"'.encode() in response.data
    assert b"<html" not in response.data and b'class="field-error"' in response.data
    assert _count(app, Tag) == 2
    assert client.post(url, data=data).status_code == 422


def test_edit_tag_fragment_page_and_cancel(client, login_as, seeded):
    login_as("manager")
    url = f"/tags/{seeded['quote']}/edit"
    fragment = client.get(url, headers=HX)
    assert fragment.status_code == 200 and b"<html" not in fragment.data
    assert fragment.data.count(b'hx-target="this"') == 1
    assert 'value="报价"'.encode() in fragment.data
    assert f'id="tag-{seeded["quote"]}-name"'.encode() in fragment.data
    page = client.get(url)
    assert b"<html" in page.data and 'value="报价"'.encode() in page.data
    row = client.get(f"/tags/{seeded['quote']}", headers=HX)
    assert b'data-testid="edit-tag"' in row.data and b'name="name"' not in row.data
    assert client.get(f"/tags/{seeded['quote']}").data.count(b"<html") == 1


def test_rename_tag_returns_the_same_row(app, client, login_as, seeded):
    login_as("manager")
    response = client.post(f"/tags/{seeded['quote']}", data={"name": "报价单", "colour": "pink"},
                           headers=HX)
    assert response.status_code == 200 and _toast(response) == "Tag 报价单 saved."
    text = response.data.decode()
    assert text.strip().startswith(f'<li id="tag-{seeded["quote"]}"')
    assert 'class="tag tag-pink"' in text and "报价单" in text
    with app.app_context():
        customer = db.session.get(Customer, seeded["customer"])
        assert sorted(t.name for t in customer.tags) == ["报价单", "询价"]
    assert _audit_actions(app)[-1] == "tag.rename"


@pytest.mark.parametrize("data, message", [
    ({"name": "", "colour": ""}, "Enter a name."),
    ({"name": "z" * 33, "colour": ""}, "At most 32 characters (this has 33): shorten it."),
    ({"name": "询价", "colour": ""}, "This group already has a tag of that name."),
    ({"name": "ok", "colour": "#f00"}, "Not a valid choice"),
])
def test_rename_tag_bad_input(app, client, login_as, seeded, data, message):
    login_as("manager")
    response = client.post(f"/tags/{seeded['quote']}", data=data, headers=HX)
    assert response.status_code == 422 and message.encode() in response.data
    assert f'<li id="tag-{seeded["quote"]}"'.encode() in response.data
    assert f'value="{data["name"]}"'.encode() in response.data or not data["name"]
    with app.app_context():
        assert db.session.get(Tag, seeded["quote"]).name == "报价"
    page = client.post(f"/tags/{seeded['quote']}", data=data)
    assert page.status_code == 422 and b"<html" in page.data and message.encode() in page.data


def test_merge_form_offers_every_other_tag(build, client, login_as, seeded):
    build(lambda actor: tags.create_tag(actor, seeded["empty"], "别组"))
    login_as("manager")
    fragment = client.get(f"/tags/{seeded['quote']}/merge", headers=HX)
    assert fragment.status_code == 200 and b"<html" not in fragment.data
    text = fragment.data.decode()
    assert f'<option value="{seeded["enquiry"]}">询价</option>' in text
    assert f'<option value="{seeded["quote"]}"' not in text
    assert '<optgroup label="其他">' in text and "hx-confirm" in text
    assert b"<html" in client.get(f"/tags/{seeded['quote']}/merge").data


def test_merge_with_no_other_tag(build, client, login_as):
    def make(actor):
        return tags.create_tag(actor, tags.create_group(actor, "唯一", "grey").id, "孤单").id

    tag_id = build(make)
    login_as("manager")
    text = client.get(f"/tags/{tag_id}/merge", headers=HX).data.decode()
    assert "There is no other tag to merge into." in text and "<select" not in text


def test_merge_removes_the_row_and_updates_the_target(app, client, login_as, seeded):
    login_as("manager")
    response = client.post(f"/tags/{seeded['quote']}/merge", data={"target_id": seeded["enquiry"]},
                           headers=HX)
    assert response.status_code == 200 and _toast(response) == "报价 merged into 询价."
    text = response.data.decode()
    assert f'id="tag-{seeded["quote"]}"' not in text
    target_row = re.search(rf'<li id="tag-{seeded["enquiry"]}"[^>]*>', text).group(0)
    assert 'hx-swap-oob="true"' in target_row
    assert "1 customer · 1 note" in " ".join(text.split())  # no duplicate row for 王五
    with app.app_context():
        assert db.session.get(Tag, seeded["quote"]) is None
        assert [t.name for t in db.session.get(CustomerNote, seeded["note"]).tags] == ["询价"]
    assert _count(app, customer_tags, customer_tags.c.customer_id == seeded["customer"]) == 1
    assert _audit_actions(app)[-1] == "tag.merge"


@pytest.mark.parametrize("target", ["", "abc", "999999", "same"])
def test_merge_bad_target(app, client, login_as, seeded, target):
    login_as("manager")
    target = str(seeded["quote"]) if target == "same" else target
    response = client.post(f"/tags/{seeded['quote']}/merge", data={"target_id": target}, headers=HX)
    assert response.status_code == 422 and b"<html" not in response.data
    assert b'class="field-error"' in response.data
    assert _count(app, Tag) == 2 and "tag.merge" not in _audit_actions(app)


def test_merge_without_javascript(app, client, login_as, seeded):
    login_as("admin")
    response = client.post(f"/tags/{seeded['quote']}/merge", data={"target_id": seeded["enquiry"]})
    assert response.status_code == 303 and response.headers["Location"] == "/tags"
    assert "报价 merged into 询价." in client.get("/tags").data.decode()


def test_delete_tag_removes_the_row_and_its_uses(app, client, login_as, seeded):
    login_as("manager")
    page = client.get("/tags").data.decode()
    assert 'hx-confirm="Delete the tag 报价? It is taken off 1 customer and 1 note."' in page
    response = client.post(f"/tags/{seeded['quote']}/delete", headers=HX)
    assert response.status_code == 200 and _toast(response) == "Tag 报价 deleted."
    assert f'id="tag-{seeded["quote"]}"'.encode() not in response.data
    assert f'id="group-{seeded["group"]}-head"'.encode() in response.data  # out of band
    with app.app_context():
        assert [t.name for t in db.session.get(Customer, seeded["customer"]).tags] == ["询价"]
        assert db.session.get(CustomerNote, seeded["note"]).tags == []
    assert _audit_actions(app)[-1] == "tag.delete"


def test_deleting_the_last_tag_offers_to_delete_the_group(build, client, login_as):
    def make(actor):
        return tags.create_tag(actor, tags.create_group(actor, "临时", "grey").id, "一次").id

    tag_id = build(make)
    login_as("manager")
    response = client.post(f"/tags/{tag_id}/delete", headers=HX)
    assert b"Delete group" in response.data and b'hx-swap-oob="true"' in response.data


def test_delete_tag_without_javascript(client, login_as, seeded):
    login_as("manager")
    response = client.post(f"/tags/{seeded['quote']}/delete")
    assert response.status_code == 303 and response.headers["Location"] == "/tags"


def test_get_requests_write_nothing(app, client, login_as, seeded):
    login_as("manager")
    before = _audit_actions(app)
    for method, path in ENDPOINTS:
        if method == "get":
            client.get(path.format(group=seeded["group"], tag=seeded["quote"]), headers=HX)
    assert _audit_actions(app) == before and _count(app, Tag) == 2
