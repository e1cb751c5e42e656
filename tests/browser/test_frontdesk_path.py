"""The front desk's path (U4): from the home page, a caller's last four digits →
their page → a saved call note, with the keyboard only, in at most 8 key actions.
Typing a text counts as one action, and so does every key pressed (Tab, Enter,
Ctrl+Enter). Waiting for the page is not an action.

Before the lookup was the search box this took 27: 8000, Enter (the list), 11 Tabs to
the first row, Enter, 11 Tabs to the note box, the note, Ctrl+Enter."""

from __future__ import annotations

import re
import secrets

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from extensions import db
from models import CustomerNote, CustomerPhone, User
from services import customers, notes
from services.customers import CustomerData
from services.notes import NoteData
from tests.browser.test_browser import htmx_idle, sign_in

pytestmark = pytest.mark.browser

MOST_KEY_ACTIONS = 8


class Keys:
    """The keyboard, counting what the user does: a text typed is one action, each
    key pressed one more."""

    def __init__(self, page):
        self.page, self.actions = page, []

    def type(self, text: str) -> None:
        self.page.keyboard.type(text)
        self.actions.append(f"type {text!r}")

    def press(self, key: str) -> None:
        self.page.keyboard.press(key)
        self.actions.append(key)


def _caller(live_app, new_user):
    """A salesperson's customer whose phone ends in four digits no other customer's
    ends in, with a note the front desk may not read; and a front desk."""
    seller, desk = new_user("sales"), new_user("frontdesk")
    with live_app.app_context():
        while True:
            digits = "139" + "".join(secrets.choice("0123456789") for _ in range(8))
            taken = select(CustomerPhone.id).where(CustomerPhone.digits.like(f"%{digits[-4:]}"))
            if db.session.scalar(taken.limit(1)) is None:
                break
        owner = db.session.get(User, seller.id)
        customer = customers.create_customer(owner, CustomerData(
            name=f"张伟华{secrets.token_hex(2)}", phones=[("mobile", digits)]), acknowledge_duplicates=True)
        notes.create_note(owner, customer, NoteData(kind="call", body="销售的报价记录"))
        db.session.commit()
        return desk, customer.id, digits


@pytest.mark.parametrize("locale,wait_for_results", [("zh-CN", False), ("en-US", True)])
def test_last_four_digits_to_a_saved_call_note(page, live_server, live_app, new_user, locale, wait_for_results):
    desk, customer_id, digits = _caller(live_app, new_user)
    sign_in(page, live_server, desk.username)
    box = page.locator("#lookup-search")
    expect(box).to_be_focused()  # the home page starts in the lookup box
    keys = Keys(page)

    keys.type(digits[-4:])
    if wait_for_results:  # a calm typist: the dropdown shows the caller first
        expect(page.locator("#lookup-search-results").get_by_test_id("suggest-customer")).to_have_count(1)
    keys.press("Enter")  # a fast one: Enter opens the first result once it comes
    expect(page).to_have_url(re.compile(rf"/customers/{customer_id}\?focus=note$"))
    body = page.locator("#note-new-body")
    expect(body).to_be_focused()

    text = f"来电咨询报价 {secrets.token_hex(3)}"
    keys.type(text)
    keys.press("Control+Enter")
    expect(page.locator("#notes-list .note").first).to_contain_text(text)
    htmx_idle(page)
    expect(page.locator("#note-new-body")).to_have_value("")

    assert len(keys.actions) <= MOST_KEY_ACTIONS, keys.actions
    assert len(keys.actions) == 4, keys.actions
    with live_app.app_context():
        saved = db.session.scalars(select(CustomerNote).where(CustomerNote.body == text)).one()
        assert (saved.customer_id, saved.author_id, saved.kind) == (customer_id, desk.id, "call")
    expect(page.locator("#notes")).not_to_contain_text("销售的报价记录")


def test_slash_focuses_the_lookup_box_and_escape_empties_it(page, live_server, live_app, new_user):
    desk, customer_id, digits = _caller(live_app, new_user)
    sign_in(page, live_server, desk.username)
    box = page.locator("#lookup-search")
    expect(box).to_be_focused()
    page.keyboard.press("/")  # already there: no slash typed into the box
    expect(box).to_have_value("")
    page.keyboard.press("Tab")  # away, to the Find button
    expect(box).not_to_be_focused()
    page.keyboard.press("/")
    expect(box).to_be_focused()
    expect(box).to_have_value("")
    box.press_sequentially(digits[-4:])
    option = page.locator("#lookup-search-results [role=option]").first
    expect(option).to_be_visible()
    box.press("ArrowDown")
    expect(option).to_have_attribute("aria-selected", "true")
    box.press("Escape")
    expect(box).to_have_value("")
    expect(page.locator("#lookup-search-results")).to_be_hidden()


def test_tag_chooser_filters_and_ticks_with_the_keyboard(page, live_server, live_app, new_user):
    from services import tags

    seller = new_user("sales")
    suffix = secrets.token_hex(2)
    with live_app.app_context():
        owner = db.session.get(User, seller.id)
        group = tags.create_group(owner, f"组{suffix}")
        tags.create_tag(owner, group.id, f"华南{suffix}")
        tags.create_tag(owner, group.id, f"华北{suffix}")
        customer = customers.create_customer(owner, CustomerData(name=f"标签客户{suffix}"), acknowledge_duplicates=True)
        db.session.commit()
        customer_id = customer.id
    sign_in(page, live_server, seller.username)
    page.goto(f"/customers/{customer_id}?focus=note")
    chooser = page.locator("#note-new-tags-picker")
    expect(chooser.locator(".tag-option").first).to_be_hidden()  # folded
    page.keyboard.type("带标签的记录")
    chooser.locator("summary").focus()
    page.keyboard.press("Enter")
    flt = chooser.locator(".tag-chooser-filter")
    expect(flt).to_be_focused()
    flt.press_sequentially(f"华北{suffix}")
    expect(chooser.locator(".tag-option", has_text=f"华南{suffix}")).to_be_hidden()
    flt.press("Enter")  # ticks the first match, does not submit
    expect(chooser.locator(".tag-option", has_text=f"华北{suffix}").locator("input")).to_be_checked()
    expect(chooser.locator("[data-tag-chooser-chosen]")).to_contain_text(f"华北{suffix}")
    flt.press("Control+Enter")
    expect(page.locator("#notes-list .note").first).to_contain_text(f"华北{suffix}")
