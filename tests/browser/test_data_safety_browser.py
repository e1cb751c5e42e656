"""The Data safety page in the browser: Back up now runs in the background and the page
shows the result by itself (htmx polling); nothing scrolls sideways on a phone.

With DESKBOOK_SHOTS set to a folder, screenshots of the page at 1366 and 390 px, in
Chinese and English, are written there."""

from __future__ import annotations

import os

import pytest
from playwright.sync_api import expect

from services import scheduler
from tests.browser.test_browser import expect_same_document, mark_document, settle, sign_in

pytestmark = pytest.mark.browser

# What in the page's main part sticks out to the right of the window (the site header's
# own layout is not this page's). Tables scroll inside their .overflow-auto box.
WIDE = """[...document.querySelectorAll('main *')]
  .filter(e => !e.closest('.overflow-auto')
               && e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
  .map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right)).slice(0, 8)"""


def test_back_up_now_and_see_the_result_without_reloading(page, live_server, new_user):
    admin = new_user("admin", language="en")
    sign_in(page, live_server, admin.username)
    page.goto("/admin/data-safety")
    settle(page)
    mark_document(page)
    page.get_by_test_id("backup-now-button").click()
    expect(page.locator("#toasts .toast").last).to_contain_text("Backup started")
    expect(page.get_by_test_id("backup-result")).to_contain_text("Last run succeeded", timeout=60000)
    expect(page.get_by_test_id("download").first).to_be_visible()
    expect_same_document(page)
    assert scheduler.wait_for_background(60)


@pytest.mark.parametrize("width", [1366, 390])
@pytest.mark.parametrize("language", ["zh", "en"])
def test_the_page_fits_the_screen(page, live_server, new_user, width, language):
    admin = new_user("admin", language=language)
    page.set_viewport_size({"width": width, "height": 900})
    sign_in(page, live_server, admin.username)
    page.goto("/admin/data-safety")
    settle(page)
    expect(page.get_by_test_id("jobs-table")).to_be_visible()
    folder = os.environ.get("DESKBOOK_SHOTS")
    if folder:
        page.screenshot(path=os.path.join(folder, f"data-safety-{language}-{width}.png"), full_page=True)
    assert page.evaluate(WIDE) == []
