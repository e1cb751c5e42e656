"""Every message, toast and form error that carries a name or a title reaches the
browser as text: escaped in the HTML (flashed or in place), or as plain JSON text in
``HX-Trigger`` (the client sets it with textContent). A lazy translation with a name
in it is Markup-like, so it used to arrive as HTML (htmx then ran the hx-post in it)."""

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from markupsafe import escape

from extensions import db
from models import Customer, User
from services import customers, office_time, tags, tasks
from services.customers import CustomerData
from tests.conftest import TEST_PASSWORD, login

EVIL = "x<b hx-get=/logout>"  # fits every name field (tags: 32 characters)
RAW = "<b hx-get"
HX = {"HX-Request": "true"}
BOTH = pytest.mark.parametrize("headers", [HX, {}], ids=["htmx", "plain"])
ROOT = Path(__file__).resolve().parent.parent


def assert_shown_as_text(client, response, message: str, *, then: str | None = None) -> None:
    """``message`` reaches the user as text in ``response``, the page it redirects to,
    or ``then`` (the page an htmx refresh reloads); raw markup appears nowhere."""
    pages = [response]
    target = response.headers.get("HX-Redirect") or then or (
        response.headers.get("Location") if response.status_code in (302, 303) else None)
    if target:
        pages.append(client.get(target))
    shown = False
    for page in pages:
        html = page.get_data(as_text=True)
        assert RAW not in html, html
        shown |= str(escape(message)) in html
        trigger = json.loads(page.headers.get("HX-Trigger", "{}"))
        shown |= trigger.get("toast", {}).get("message") == message
    assert shown, f"{message!r} was not shown"


@pytest.fixture
def make(app):
    """Rows through the services, committed: ``make.customer(owner, name)``."""

    class Make:
        def customer(self, owner: User | None, name: str = EVIL, creator: User | None = None) -> int:
            with app.app_context():
                actor = db.session.get(User, (creator or owner).id)
                data = CustomerData(name=name, owner_id=owner.id if owner else None)
                customer = customers.create_customer(actor, data, acknowledge_duplicates=True)
                db.session.commit()
                return customer.id

        def task(self, customer_id: int, assignee: User, title: str = EVIL) -> int:
            with app.app_context():
                person = db.session.get(User, assignee.id)
                due = office_time.office_today(app.config["OFFICE_TIMEZONE"]) + timedelta(days=1)
                task = tasks.create_task(person, db.session.get(Customer, customer_id), due_date=due,
                                         title=title, assignee_id=person.id)
                db.session.commit()
                return task.id

    return Make()


def test_no_view_flashes_but_through_notify():
    """One way to flash (htmx.notify, plain text): a direct flash() is how a lazy
    string with a title in it reached the page as HTML."""
    offenders = [str(path.relative_to(ROOT)) for path in (ROOT / "blueprints").rglob("*.py")
                 if path.name != "htmx.py" and re.search(r"\bflash\(", path.read_text(encoding="utf-8"))]
    assert offenders == []


# ---- follow-ups ------------------------------------------------------------------------------

@BOTH
def test_task_done_and_reopened_messages(client, login_as, make, headers):
    sales = login_as("sales")
    task_id = make.task(make.customer(sales, "客户"), sales)
    done = client.post(f"/tasks/{task_id}/done", headers=headers)
    assert_shown_as_text(client, done, f"Done: {EVIL}")
    reopened = client.post(f"/tasks/{task_id}/reopen", headers=headers)
    assert_shown_as_text(client, reopened, f"Reopened: {EVIL}")


@BOTH
def test_reassign_message_and_refusal_carry_the_name_as_text(client, login_as, make_user, make, headers):
    login_as("manager")
    owner = make_user("sales")
    colleague = make_user("manager", display_name=EVIL)
    stranger = make_user("sales", display_name=EVIL)
    task_id = make.task(make.customer(owner, "客户"), owner, title="回电话")
    refused = client.post(f"/tasks/{task_id}/reassign", headers=headers, data={"assignee_id": str(stranger.id)})
    assert refused.status_code == 422
    assert_shown_as_text(client, refused, f"{EVIL} cannot open this customer. Assign the customer first.")
    moved = client.post(f"/tasks/{task_id}/reassign", headers=headers, data={"assignee_id": str(colleague.id)})
    assert_shown_as_text(client, moved, f"Now with {EVIL}.")


@BOTH
def test_a_refused_task_assignee_is_named_as_text(client, login_as, make_user, make, headers):
    sales = login_as("manager")
    customer_id = make.customer(make_user("sales"), "客户", creator=sales)
    stranger = make_user("sales", display_name=EVIL)
    due = (office_time.office_today("Asia/Shanghai") + timedelta(days=2)).isoformat()
    response = client.post(f"/customers/{customer_id}/tasks", headers=headers,
                           data={"title": "回电话", "due_date": due, "assignee_id": str(stranger.id)})
    assert response.status_code == 422
    assert_shown_as_text(client, response, f"{EVIL} cannot open this customer. Assign the customer first.")


# ---- notes, mentions, templates -------------------------------------------------------------

@BOTH
def test_mention_refusal_names_the_typed_name_as_text(client, login_as, make, headers):
    sales = login_as("sales")
    customer_id = make.customer(sales, "客户")
    response = client.post(f"/customers/{customer_id}/notes", headers=headers,
                           data={"kind": "call", "body": "打过电话", "mention": EVIL.replace(" ", "")})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "<bhx-get" not in html
    assert str(escape("No active colleague is called x<bhx-get=/logout>.")) in html


@BOTH
def test_template_created_and_saved_messages(app, client, login_as, headers):
    login_as("admin")
    created = client.post("/note-templates/new", headers=headers, data={"name": EVIL, "kind": "call"})
    assert_shown_as_text(client, created, f"Template {EVIL} created.")
    with app.app_context():
        from models import NoteTemplate

        template_id = db.session.scalar(db.select(NoteTemplate.id).where(NoteTemplate.name == EVIL))
    saved = client.post(f"/note-templates/{template_id}/edit", headers=headers,
                        data={"name": EVIL, "kind": "visit"})
    assert_shown_as_text(client, saved, f"Template {EVIL} saved.")


# ---- tags ------------------------------------------------------------------------------------

@BOTH
def test_tag_messages(app, client, login_as, headers):
    manager = login_as("manager")
    created = client.post("/tags/groups", headers=headers, data={"name": EVIL, "colour": "blue"})
    assert_shown_as_text(client, created, f"Group {EVIL} created.")
    with app.app_context():
        group_id = tags.all_groups()[0].id
    tag = client.post(f"/tags/groups/{group_id}/tags", headers=headers, data={"name": EVIL, "colour": ""})
    assert_shown_as_text(client, tag, f"Tag {EVIL} created.")
    with app.app_context():
        tag_id = tags.all_groups()[0].tags[0].id
        other = tags.create_tag(db.session.get(User, manager.id), group_id, "其他")
        db.session.commit()
        other_id = other.id
    merged = client.post(f"/tags/{other_id}/merge", headers=headers, data={"target_id": str(tag_id)})
    assert_shown_as_text(client, merged, f"其他 merged into {EVIL}.")
    deleted = client.post(f"/tags/{tag_id}/delete", headers=headers)
    assert_shown_as_text(client, deleted, f"Tag {EVIL} deleted.")


# ---- customers and the pool -----------------------------------------------------------------

FORM = {"company": "", "mobile": "", "mobile_2": "", "landline": "", "email": "", "address": "",
        "region": "", "type": "individual", "stage": "potential", "importance": "B", "source": "call",
        "birthday": "", "owner_id": "", "acknowledge_duplicates": "y"}


@BOTH
def test_customer_saved_archived_and_restored_messages(client, login_as, make, headers):
    manager = login_as("manager")
    created = client.post("/customers/new", headers=headers, data={**FORM, "name": EVIL})
    assert_shown_as_text(client, created, f"Customer {EVIL} saved.")
    customer_id = make.customer(manager)
    archived = client.post(f"/customers/{customer_id}/archive", headers=headers)
    assert_shown_as_text(client, archived, f"{EVIL} archived.")
    restored = client.post(f"/customers/{customer_id}/restore", headers=headers)
    assert_shown_as_text(client, restored, f"{EVIL} restored.", then=f"/customers/{customer_id}")


@BOTH
def test_pool_claim_release_and_assign_messages(client, login_as, make_user, make, headers):
    sales = make_user("sales", display_name=EVIL)
    manager = make_user("manager")
    customer_id = make.customer(None, creator=manager)
    login(client, sales.username)
    claimed = client.post(f"/pool/{customer_id}/claim", headers=headers)
    assert_shown_as_text(client, claimed, f"{EVIL} is now yours.")
    released = client.post(f"/customers/{customer_id}/release", headers=headers, data={"reason": "no_need"})
    assert_shown_as_text(client, released, f"{EVIL} is back in the public pool.")
    client.post("/logout")
    login(client, manager.username, TEST_PASSWORD)
    assigned = client.post(f"/customers/{customer_id}/assign", headers=headers, data={"to_user_id": str(sales.id)})
    assert_shown_as_text(client, assigned, f"Assigned to {EVIL}.")
