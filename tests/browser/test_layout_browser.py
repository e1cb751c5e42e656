"""Every main page fits a 1366 px screen and a 390 px phone, for every role, in
Chinese and English (U2, U4): no page scrolls sideways, no table hides columns
behind its own scroll bar at 1366 px; on a phone the menu folds behind one button,
the header stays short, the filters fold so that results show on the first screen,
and the pool table keeps its name and Claim button. And the customer card prints
without navigation, forms or buttons.

One browser context per role and language; each page is loaded once per width."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.layout_world import ROLES, build_office, main_pages, sign_in_context

pytestmark = pytest.mark.browser

WIDTHS = {"desktop": (1366, 768), "phone": (390, 844)}

# Elements wider than the box they scroll in; the table wrappers (.overflow-auto) hide
# columns that way without any sign of it.
OVERFLOWS = """() => {
  const doc = document.documentElement;
  const shown = el => el.getClientRects().length > 0;
  const hidden = [...document.querySelectorAll('.overflow-auto')]
    .filter(box => box.scrollWidth > box.clientWidth + 1)
    .map(box => (box.querySelector('table') || box).className || box.tagName);
  // A button's label never wraps (取/消 one character per line).
  const wrapping = [...document.querySelectorAll('button, [role=button]')]
    .filter(b => shown(b) && getComputedStyle(b).whiteSpace !== 'nowrap').map(b => b.textContent.trim());
  // Chinese has no italics: the browser would slant the glyphs.
  const slanted = doc.lang.startsWith('zh') ? [...document.querySelectorAll('main *')]
    .filter(e => shown(e) && e.childElementCount === 0 && getComputedStyle(e).fontStyle === 'italic')
    .map(e => e.textContent.trim().slice(0, 20)) : [];
  return {scroll: doc.scrollWidth, client: doc.clientWidth, hidden, wrapping, slanted};
}"""


@pytest.fixture(scope="module")
def office(live_app):
    return build_office(live_app)


@pytest.fixture(scope="module", params=[("zh-CN", r) for r in ROLES] + [("en-US", r) for r in ROLES],
                ids=lambda p: f"{p[0]}-{p[1]}")
def signed_in(request, browser, live_server, office):
    locale, role = request.param
    context, guard = sign_in_context(browser, live_server, office.users[role].username, locale=locale)
    yield role, context
    guard.collect_from_pages(context)
    context.close()
    assert not guard.problems(), guard.problems()


def test_no_page_scrolls_sideways(signed_in, office):
    role, context = signed_in
    page = context.new_page()
    failures = []
    for width_name, (width, height) in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": height})
        for url in main_pages(office)[role]:
            response = page.goto(url)
            assert response.status == 200, (url, response.status)
            found = page.evaluate(OVERFLOWS)
            if found["scroll"] > found["client"]:
                failures.append(f"{url} at {width}px scrolls sideways: {found['scroll']} > {found['client']}")
            if width_name == "desktop" and found["hidden"]:
                failures.append(f"{url} at {width}px hides columns behind a scroll bar: {found['hidden']}")
            if found["wrapping"] or found["slanted"]:
                failures.append(f"{url}: buttons that may wrap {found['wrapping']}, italic Chinese {found['slanted']}")
    page.close()
    assert not failures, "\n".join(failures)


def test_phone_header_menu_and_filters(signed_in, office):
    role, context = signed_in
    page = context.new_page()
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/customers")
    header = page.locator("header.site-header").bounding_box()
    assert header["height"] <= 130, header
    links = page.locator("#nav-links")
    expect(links).to_be_hidden()
    toggle = page.get_by_test_id("nav-toggle")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(links).to_be_visible()
    # A label never breaks one character per line: each link is one line high.
    for link in links.locator("a:visible").all():
        box = link.bounding_box()
        assert box["height"] < 50 and box["width"] > 30, (link.inner_text(), box)
    toggle.click()
    expect(links).to_be_hidden()
    # Filters are folded; a result row shows on the first screen.
    expect(page.locator("#customer-filters")).to_be_hidden()
    first_row = page.locator("#customer-results tbody tr").first
    assert first_row.bounding_box()["y"] < 844
    page.locator("details.filter-fold > summary").first.click()
    expect(page.locator("#customer-filters")).to_be_visible()
    if role == "sales":
        page.goto("/pool")
        row = page.locator("#pool-results tbody tr").first
        assert row.bounding_box()["y"] < 844
        expect(row.get_by_test_id("claim-row")).to_be_visible()
        # A row is a card: its cells are captioned.
        assert page.evaluate("getComputedStyle(document.querySelector('#pool-results tbody td:nth-child(2)'),"
                             " '::before').content").strip('"') != "none"
    page.close()


def test_desktop_list_shows_name_and_action(signed_in, office):
    """At 1366 px the list's first and last columns are on screen: the pool's name and
    Claim button (with the claim counts) for sales; the customer list for the front desk."""
    role, context = signed_in
    page = context.new_page()
    page.set_viewport_size({"width": 1366, "height": 768})
    page.goto("/customers" if role == "frontdesk" else "/pool")
    row = page.locator("main table tbody tr").first
    cells = [row.locator("td.cell-name a"), row.locator("td").last]
    if role == "sales":
        cells.append(row.get_by_test_id("claim-row"))
        expect(page.get_by_test_id("claim-standing")).to_be_visible()
    else:
        expect(page.get_by_test_id("claim-standing")).to_have_count(0)
    for element in cells:
        expect(element).to_be_visible()
        box = element.bounding_box()
        assert box["x"] + box["width"] <= 1366, box
    page.close()


def test_customer_card_prints_without_controls(signed_in, office):
    role, context = signed_in
    page = context.new_page()
    page.goto(f"/customers/{office.card_id}")
    expect(page.get_by_test_id("print")).to_be_visible()
    page.emulate_media(media="print")
    expect(page.locator("#customer-card")).to_be_visible()
    expect(page.get_by_test_id("customer-name")).to_be_visible()
    for hidden in ("header.site-header", "main form", "main button", "#toasts", ".pool-panel", "[data-testid=print]"):
        for element in page.locator(hidden).all():
            expect(element).to_be_hidden()
    if role != "frontdesk":  # the front desk sees the basic card only
        expect(page.get_by_text("客户来电咨询CRM系统的价格").first).to_be_visible()
    page.emulate_media(media="screen")
    expect(page.get_by_test_id("print")).to_be_visible()
    page.close()
