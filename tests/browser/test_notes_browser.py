"""The notes flows that htmx and the browser drive on the customer page: quick entry
with Ctrl+Enter (the note on top, the form cleared, focus back in the body), a
template prefilling the sections, an error kept in place, paging back in time, a
comment, and the @mention suggestions."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from extensions import db
from models import NoteTemplate, User
from services import customers, notes
from services.customers import CustomerData
from services.notes import NoteData
from tests.browser.test_browser import expect_same_document, htmx_idle, mark_document, settle, sign_in

pytestmark = pytest.mark.browser


@pytest.fixture
def customer_page(live_app, new_user):
    """A salesperson, a customer of theirs with 25 notes, and a template; yields
    (user, customer id)."""
    user = new_user("sales")
    with live_app.app_context():
        owner = db.session.get(User, user.id)
        customer = customers.create_customer(owner, CustomerData(name="浏览器客户"), acknowledge_duplicates=True)
        for index in range(25):
            notes.create_note(owner, customer, NoteData(kind="call", body=f"旧备注 {index:02d}"))
        db.session.commit()
        if db.session.query(NoteTemplate).filter_by(name="浏览器模板").first() is None:
            db.session.add(NoteTemplate(name="浏览器模板", kind="visit", required_sections=["summary"],
                                        prompts={"summary": "到访目的：", "needs": "", "plan": ""}))
            db.session.commit()
        return user, customer.id


def test_quick_entry_with_ctrl_enter(page, live_server, customer_page):
    user, customer_id = customer_page
    sign_in(page, live_server, user.username)
    page.goto(f"/customers/{customer_id}")
    settle(page)
    mark_document(page)
    body = page.locator("#note-form [name=body]")
    body.fill("客户来电 <b>不加粗</b>")
    body.press("Control+Enter")
    first = page.get_by_test_id("note").first
    expect(first).to_contain_text("客户来电 <b>不加粗</b>")
    expect(page.locator("#note-form [name=body]")).to_have_value("")
    expect(page.locator("#note-form [name=body]")).to_be_focused()
    expect(page.locator(".toast").last).to_contain_text("Note saved.")
    expect_same_document(page)

    page.locator("#note-form [name=body]").press("Control+Enter")  # empty: refused in place
    expect(page.locator("#note-form .field-error")).to_contain_text("Write something")
    htmx_idle(page)  # the form just swapped in must be processed before its select answers

    page.locator("#note-form [name=template_id]").select_option(label="浏览器模板")
    expect(page.locator("#note-form [name=summary]")).to_have_attribute("placeholder", "到访目的：")
    expect(page.locator("#note-form [name=summary]")).to_have_value("")  # a prompt, not text to delete
    expect(page.locator("#note-form [name=kind]")).to_have_value("visit")
    expect_same_document(page)


def test_older_notes_comments_and_mentions(page, live_server, customer_page, new_user):
    colleague = new_user("manager")
    user, customer_id = customer_page
    sign_in(page, live_server, user.username)
    page.goto(f"/customers/{customer_id}")
    settle(page)
    mark_document(page)
    notes_shown = page.get_by_test_id("note")
    expect(notes_shown).to_have_count(notes.PAGE_SIZE)
    page.get_by_test_id("older-notes").click()
    expect(notes_shown).to_have_count(25)
    expect(page.get_by_test_id("older-notes")).to_have_count(0)

    comment = page.locator("#note-form ~ #notes-list .comment-form [name=body]").first
    # Other tests share this server and its colleagues: look for this one's suggestion.
    comment.fill(f"@{colleague.username}")
    option = page.locator(f'.comment-form datalist option[value="@{colleague.username} "]')
    expect(option).to_have_count(1)
    comment.fill(f"请看 @{colleague.username}")
    comment.press("Enter")
    expect(page.locator(".note-comments .comment").first).to_contain_text("请看")
    expect_same_document(page)
