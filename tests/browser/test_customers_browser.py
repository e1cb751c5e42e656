"""Customer flows htmx drives: the duplicate warning while typing, filtering the list
by two tags (only the results swap, the URL keeps the filter), archive with Undo."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from extensions import db
from models import Tag, TagGroup, User
from services import customers
from services.customers import CustomerData
from tests.browser.test_browser import expect_same_document, mark_document, settle, sign_in

pytestmark = pytest.mark.browser


@pytest.fixture
def office(live_app, new_user):
    """A salesperson with a customer, a colleague's customer, a manager, and two tags
    on some customers. Names are unique per test run of the shared server."""
    sales, colleague, manager = new_user("sales"), new_user("sales"), new_user("manager")
    suffix = str(sales.id)
    with live_app.app_context():
        me = db.session.get(User, sales.id)
        other = db.session.get(User, colleague.id)
        group = TagGroup(name=f"行业{suffix}")
        db.session.add(group)
        db.session.flush()
        a, b = Tag(group_id=group.id, name=f"制造{suffix}"), Tag(group_id=group.id, name=f"出口{suffix}")
        db.session.add_all([a, b])
        db.session.commit()
        phone = f"1380000{int(suffix):04d}"
        both = customers.create_customer(me, CustomerData(name=f"两标签{suffix}"), acknowledge_duplicates=True)
        one = customers.create_customer(me, CustomerData(name=f"一标签{suffix}"), acknowledge_duplicates=True)
        customers.set_tags(me, both, [a.id, b.id])
        customers.set_tags(me, one, [a.id])
        theirs = customers.create_customer(other, CustomerData(name=f"同事客户{suffix}", phones=[("mobile", phone)]),
                                           acknowledge_duplicates=True)
        db.session.commit()
        return {"sales": sales, "colleague": colleague, "manager": manager, "phone": phone,
                "tags": (a.id, b.id), "both": both.name, "one": one.name, "theirs": (theirs.id, theirs.name)}


def test_duplicate_warning_while_typing_names_only_the_owner(page, live_server, office):
    sign_in(page, live_server, office["sales"].username)
    page.goto("/customers/new")
    settle(page)
    mark_document(page)
    page.locator("#name").fill("新来电客户")
    phone = office["phone"]
    page.locator("#mobile").press_sequentially(phone[:3] + " " + phone[3:7] + " " + phone[7:])
    warning = page.get_by_test_id("duplicate-warning")
    expect(warning).to_contain_text(office["colleague"].display_name)
    expect(warning).not_to_contain_text(office["theirs"][1])
    page.locator("#customer-form button[type=submit]").click()
    expect(page.locator("[name=acknowledge_duplicates]")).to_be_visible()
    expect(page.locator("#name")).to_have_value("新来电客户")
    expect_same_document(page)
    page.locator("[name=acknowledge_duplicates]").check()
    page.locator("#customer-form button[type=submit]").click()
    expect(page.get_by_test_id("customer-name")).to_have_text("新来电客户")
    settle(page)


def test_filter_by_two_tags_swaps_results_and_keeps_url(page, live_server, office):
    a, b = office["tags"]
    sign_in(page, live_server, office["sales"].username)
    page.goto("/customers")
    settle(page)
    mark_document(page)
    results = page.locator("#customer-results")
    expect(results).to_contain_text(office["both"])
    # Chips keep their own width (Pico would stretch the children of a [role=group]).
    chips = page.locator(".tag-filter .tag-chip")
    assert chips.count() >= 2 and all(chips.nth(n).bounding_box()["width"] < 200 for n in range(chips.count()))
    page.locator(f"#customer-results a[href*='tag={a}']").first.click()
    expect(page).to_have_url(re.compile(rf"tag={a}"))
    expect(results).to_contain_text(office["one"])
    page.locator(f"#customer-results a[href*='tag={b}']").first.click()
    expect(page).to_have_url(re.compile(rf"tag={a}&tag={b}|tag={b}&tag={a}"))
    expect(results).to_contain_text(office["both"])
    expect(results).not_to_contain_text(office["one"])
    expect(page.get_by_test_id("result-count")).to_contain_text("1")
    # Another filter keeps the tags (the hidden inputs belong to the filter form).
    page.locator("select[name=stage]").select_option("potential")
    expect(page).to_have_url(re.compile(r"stage=potential"))
    expect(results).to_contain_text(office["both"])
    expect(results).not_to_contain_text(office["one"])
    expect_same_document(page)
    page.go_back()
    expect(page).to_have_url(re.compile(rf"tag={b}"))
    settle(page)


def test_archive_and_undo(page, live_server, office):
    customer_id, name = office["theirs"]
    sign_in(page, live_server, office["manager"].username)
    page.goto(f"/customers/{customer_id}")
    settle(page)
    page.get_by_test_id("archive").click()
    expect(page.locator("#customer-card .archived-note")).to_be_visible()
    undo = page.locator("#toasts .toast-undo")
    expect(undo).to_be_visible()
    undo.click()
    settle(page)
    expect(page.get_by_test_id("archive")).to_be_visible()
    expect(page.locator("#customer-card .archived-note")).to_have_count(0)
    page.goto("/customers")
    expect(page.locator("#customer-results")).to_contain_text(name)
