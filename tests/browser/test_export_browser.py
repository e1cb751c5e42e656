"""Export buttons and the audit page in a browser: the buttons follow a filter htmx
swapped in, the download is a real file, and the audit filter swaps only its results."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from extensions import db
from models import User
from services import customers
from services.customers import CustomerData
from tests.browser.test_browser import expect_same_document, mark_document, settle, sign_in

pytestmark = pytest.mark.browser


@pytest.fixture
def office(live_app, new_user):
    manager, admin = new_user("manager"), new_user("admin")
    with live_app.app_context():
        boss = db.session.get(User, manager.id)
        name = f"意向客户{manager.id}"
        customers.create_customer(boss, CustomerData(name=name, stage="intent"), acknowledge_duplicates=True)
        db.session.commit()
    return {"manager": manager, "admin": admin, "name": name}


def test_export_buttons_follow_the_filter_and_download(page, live_server, office):
    sign_in(page, live_server, office["manager"].username)
    page.goto("/customers")
    settle(page)
    mark_document(page)
    page.locator("select[name=stage]").select_option("intent")
    expect(page).to_have_url(re.compile(r"stage=intent"))
    excel = page.get_by_test_id("customer-export").get_by_role("button", name="Export Excel")
    expect(excel).to_have_attribute("href", re.compile(r"/customers/export\?format=xlsx&stage=intent"))
    expect_same_document(page)
    with page.expect_download() as download:
        page.get_by_test_id("customer-export").get_by_role("button", name="Export CSV").click()
    assert download.value.suggested_filename.startswith("customers-")
    assert download.value.suggested_filename.endswith(".csv")
    with open(download.value.path(), encoding="utf-8-sig") as file:
        assert office["name"] in file.read()


def test_audit_filter_swaps_results_and_shows_bad_dates_next_to_the_field(page, live_server, office):
    sign_in(page, live_server, office["admin"].username)
    page.goto("/admin/audit")
    settle(page)
    mark_document(page)
    page.locator("#kind").select_option("login.success")
    expect(page).to_have_url(re.compile(r"kind=login.success"))
    expect(page.locator("#audit-results tbody tr").first).to_contain_text("Signed in")
    page.locator("#date_from").fill("2026-03-02")
    page.locator("#date_to").fill("2026-03-01")
    page.locator("#audit-filters button[type=submit]").click()
    expect(page.get_by_test_id("audit-filter-error")).to_be_visible()
    expect_same_document(page)
