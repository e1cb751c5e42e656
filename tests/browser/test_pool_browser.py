"""The pool in the browser: claim from the pool page (the row changes in place, a
toast), then the countdown on the customer page."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from extensions import db
from models import User
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
