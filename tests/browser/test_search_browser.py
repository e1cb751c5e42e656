"""The header's search box (S1): "/" focuses it, typing shows grouped results with
highlights, the arrow keys and Enter open one, Esc empties the box, and a phone
number nobody has offers a new customer with it filled in."""

from __future__ import annotations

import re
import secrets

import pytest
from playwright.sync_api import expect

from extensions import db
from models import User
from services import customers, notes
from services.customers import CustomerData
from services.notes import NoteData
from tests.browser.test_browser import settle, sign_in

pytestmark = pytest.mark.browser


@pytest.fixture
def desk(live_app, new_user):
    """A salesperson with two customers whose names share a unique word, one with a
    note that mentions it."""
    sales = new_user("sales")
    word = f"欧阳{secrets.token_hex(3)}"
    with live_app.app_context():
        me = db.session.get(User, sales.id)
        first = customers.create_customer(me, CustomerData(name=f"{word}娜", company="东方贸易"),
                                          acknowledge_duplicates=True)
        customers.create_customer(me, CustomerData(name=f"{word}峰"), acknowledge_duplicates=True)
        notes.create_note(me, first, NoteData(kind="call", body=f"给{word}娜报价"))
        db.session.commit()
    return {"sales": sales, "word": word}


def test_search_as_you_type_with_the_keyboard(page, live_server, desk):
    sign_in(page, live_server, desk["sales"].username)
    box, dropdown = page.locator("#global-search"), page.locator("#global-search-results")

    page.keyboard.press("/")
    expect(box).to_be_focused()
    box.press_sequentially(desk["word"])
    expect(dropdown).to_be_visible()
    expect(box).to_have_attribute("aria-expanded", "true")
    expect(dropdown.get_by_test_id("suggest-customer")).to_have_count(2)
    expect(dropdown.get_by_test_id("suggest-note")).to_have_count(1)
    expect(dropdown.locator("#suggest-customers-head")).to_contain_text("Customers")
    expect(dropdown.locator("#suggest-notes-head")).to_contain_text("Notes")
    expect(dropdown.locator("mark").first).to_have_text("欧阳")

    first = dropdown.get_by_role("option").first
    target = first.get_attribute("href")
    box.press("ArrowDown")
    expect(first).to_have_attribute("aria-selected", "true")
    expect(box).to_have_attribute("aria-activedescendant", first.get_attribute("id"))
    box.press("ArrowDown")
    expect(first).to_have_attribute("aria-selected", "false")
    box.press("ArrowUp")
    expect(first).to_have_attribute("aria-selected", "true")
    box.press("Enter")
    expect(page).to_have_url(re.compile(re.escape(target) + "$"))
    settle(page)

    page.keyboard.press("/")
    box.press_sequentially(desk["word"])
    expect(dropdown.get_by_test_id("suggest-customer")).to_have_count(2)
    box.press("Escape")
    expect(box).to_have_value("")
    expect(dropdown).to_be_hidden()

    phone = "136" + "".join(secrets.choice("0123456789") for _ in range(8))
    box.press_sequentially(f"{phone[:3]} {phone[3:7]} {phone[7:]}")
    new_customer = dropdown.get_by_test_id("suggest-new-customer")
    expect(dropdown.get_by_test_id("suggest-no-customer")).to_be_visible()
    expect(new_customer).to_have_attribute("href", f"/customers/new?phone={phone}")
    box.press("Enter")  # nothing is chosen: the first option, "New customer"
    expect(page.locator("#mobile")).to_have_value(phone)
    settle(page)


def test_no_search_while_an_input_method_composes(page, live_server, desk):
    """Pinyin typed into a Chinese input method (driven through Chromium's own IME
    protocol) sends nothing until the word is chosen, then one search."""
    sign_in(page, live_server, desk["sales"].username)
    box, dropdown = page.locator("#global-search"), page.locator("#global-search-results")
    searches = []
    page.on("request", lambda request: "/search/suggest" in request.url and searches.append(request.url))
    box.focus()
    ime = page.context.new_cdp_session(page)
    for typed in ("o", "ou", "ouy", "ouya", "ouyang"):
        ime.send("Input.imeSetComposition", {"text": typed, "selectionStart": len(typed), "selectionEnd": len(typed)})
    # Longer than the trigger's delay: a search for the pinyin would have gone out by now.
    page.wait_for_timeout(700)
    assert searches == []
    with page.expect_response(lambda response: "/search/suggest" in response.url):
        ime.send("Input.insertText", {"text": desk["word"]})
    expect(dropdown.get_by_test_id("suggest-customer")).to_have_count(2)
    assert len(searches) == 1
