"""The pool in the browser: claim from the pool page (the row changes in place, a
toast), then the countdown on the customer page."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from extensions import db
from models import Customer, User
from services import customers
from services.customers import CustomerData
from tests.browser.test_browser import expect_same_document, mark_document, settle, sign_in

pytestmark = pytest.mark.browser


def test_claim_from_the_pool_page_then_see_the_countdown(page, live_app, live_server, new_user):
    sales, desk = new_user("sales"), new_user("frontdesk")
    name = f"公海浏览器客户{sales.id}"
    with live_app.app_context():
        customer = customers.create_customer(db.session.get(User, desk.id), CustomerData(name=name),
                                             acknowledge_duplicates=True)
        db.session.commit()
        customer_id = customer.id
    sign_in(page, live_server, sales.username)
    page.goto(f"/pool?q={name}")
    settle(page)
    mark_document(page)
    row = page.locator(f"#pool-row-{customer_id}")
    row.get_by_test_id("claim-row").click()
    expect(row.get_by_test_id("claimed-by")).to_contain_text(sales.display_name)
    expect(page.locator("#toasts .toast").last).to_contain_text(name)
    expect_same_document(page)
    row.get_by_role("link", name=name).click()
    settle(page)
    expect(page.get_by_test_id("recycle-clock")).to_contain_text("30")


@pytest.mark.parametrize("locale", ["zh-CN"])
def test_refused_claim_keeps_the_row_then_a_claim_updates_the_counts(page, live_app, live_server, new_user, locale):
    """At the limit the row stays, Claim button and all, with the real numbers beside
    it; once allowed, the claim succeeds in place, the counts above the list follow
    (out-of-band swap) and the green toast replaces the red one."""
    sales, desk = new_user("sales", claim_limit=0), new_user("frontdesk")
    name = f"限额客户{sales.id}"
    with live_app.app_context():
        customer_id = customers.create_customer(db.session.get(User, desk.id), CustomerData(name=name),
                                                acknowledge_duplicates=True).id
        db.session.commit()
    sign_in(page, live_server, sales.username)
    page.goto(f"/pool?q={name}")
    settle(page)
    standing = page.get_by_test_id("claim-standing")
    expect(standing).to_contain_text("已拥有 0 / 0")
    row = page.locator(f"#pool-row-{customer_id}")
    row.get_by_test_id("claim-row").click()
    expect(row.get_by_test_id("claim-refusal")).to_contain_text("你名下已有 0 个客户，上限为 0 个")
    expect(row.get_by_role("link", name=name)).to_be_visible()
    expect(row.get_by_test_id("claim-row")).to_be_visible()
    expect(page.locator("#toasts .toast-error")).to_have_count(1)
    with live_app.app_context():
        db.session.get(User, sales.id).claim_limit = 5
        db.session.commit()
    row.get_by_test_id("claim-row").click()
    expect(row.get_by_test_id("claimed-by")).to_contain_text(sales.display_name)
    expect(standing).to_contain_text("已拥有 1 / 5")
    expect(standing).to_contain_text("今日已领取 1 / 20")
    expect(page.locator("#toasts .toast-success")).to_contain_text(name)
    expect(page.locator("#toasts .toast-error")).to_have_count(0)


@pytest.mark.parametrize("locale", ["en-US"])
def test_release_other_needs_details_then_undo_brings_it_back(page, live_app, live_server, new_user, locale):
    sales = new_user("sales")
    name = f"Undo customer {sales.id}"
    with live_app.app_context():
        owner = db.session.get(User, sales.id)
        customer_id = customers.create_customer(owner, CustomerData(name=name, owner_id=sales.id),
                                                acknowledge_duplicates=True).id
        db.session.commit()
    sign_in(page, live_server, sales.username)
    page.goto(f"/customers/{customer_id}")
    settle(page)
    mark_document(page)
    page.locator(".release-box > summary").click()
    form = page.get_by_test_id("release-form")
    form.locator("select[name=reason]").select_option("other")
    form.get_by_test_id("release").click()
    # Still open, the choice kept, the message next to the details field.
    expect(page.get_by_test_id("release-error")).to_have_text("Say why.")
    expect(page.locator(".release-box")).to_have_attribute("open", "")
    expect(page.get_by_test_id("release-form").locator("select[name=reason]")).to_have_value("other")
    expect(page.locator("#toasts .toast")).to_have_count(0)
    expect_same_document(page)
    page.get_by_test_id("release-form").locator("[name=reason_text]").fill("Moved abroad")
    page.get_by_test_id("release-form").get_by_test_id("release").click()
    expect(page.get_by_test_id("claim")).to_be_visible()
    toast = page.locator("#toasts .toast-success").last
    expect(toast).to_contain_text("back in the public pool")
    toast.get_by_role("button", name="Undo").click()
    settle(page)
    expect(page.get_by_test_id("recycle-clock")).to_be_visible()
    expect(page.locator("#toasts .toast").last).to_contain_text("Release undone")
    with live_app.app_context():
        assert db.session.get(Customer, customer_id).owner_id == sales.id
