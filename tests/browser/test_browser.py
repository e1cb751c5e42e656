"""The flows htmx and the browser drive: language negotiation, sign-out that really
ends the session, the "/" shortcut, htmx actions with their CSRF header and toasts,
the unauthenticated htmx path, and no CSP violation or outside request anywhere
(checked by the guard in conftest.py for every test)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import guarded_context
from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.browser

LOGIN_URL = re.compile(r"/login(\?.*)?$")


def home_url(base: str) -> re.Pattern:
    return re.compile(re.escape(base) + r"/$")


def settle(page) -> None:
    """Wait for the stylesheets after a navigation the test did not start with goto.
    Checking visibility forces a layout; before app.css is in, Chromium would lay out
    with Pico's own icons (data: URIs, refused by the CSP) and the guard would fire."""
    page.wait_for_load_state("load")


def htmx_idle(page) -> None:
    """Wait until htmx has no request in flight and has settled what it swapped in:
    an element swapped in answers its own htmx triggers only once processed."""
    # A locator, not wait_for_function: a string predicate is evaluated with eval()
    # once the first check fails, which the page's CSP refuses (and the guard reports).
    expect(page.locator(".htmx-request, .htmx-swapping, .htmx-settling, .htmx-added")).to_have_count(0)


def sign_in(page, base: str, username: str) -> None:
    page.goto("/login")
    form = page.locator("main form")
    form.locator("[name=username]").fill(username)
    form.locator("[name=password]").fill(TEST_PASSWORD)
    form.locator("button[type=submit]").click()
    expect(page).to_have_url(home_url(base))
    settle(page)


def expect_login_page(page) -> None:
    expect(page).to_have_url(LOGIN_URL)
    settle(page)
    expect(page.locator("main form [name=password]")).to_be_visible()


def mark_document(page) -> None:
    """Tag the current document; :func:`expect_same_document` proves no reload happened."""
    page.evaluate("window.__sameDocument = true")


def expect_same_document(page) -> None:
    assert page.evaluate("window.__sameDocument === true"), "the page was reloaded"


@pytest.mark.parametrize(
    ("locale", "lang"), [("zh-CN", "zh-CN"), ("en-US", "en")], ids=["zh-CN", "en-US"]
)
def test_home_language_follows_browser(page, live_server, new_user, locale, lang, zh_catalog_compiled):
    user = new_user("sales", language=None)
    sign_in(page, live_server, user.username)
    expect(page.locator("html")).to_have_attribute("lang", lang)
    welcome = page.get_by_test_id("welcome")
    expect(welcome).to_be_visible()
    expect(welcome).to_contain_text(user.display_name)
    if lang == "en":
        expect(welcome).to_have_text(re.compile(r"^\s*Welcome"))
    elif zh_catalog_compiled:
        expect(welcome).to_contain_text("欢迎")


def test_logout_refuses_the_old_cookie(browser, page, context, live_server, new_user):
    user = new_user("sales")
    sign_in(page, live_server, user.username)
    cookies = context.cookies()
    assert any(cookie["name"] == "deskbook_session" for cookie in cookies)

    page.get_by_test_id("logout").click()
    expect_login_page(page)
    expect(page.get_by_test_id("logout")).to_have_count(0)

    replay, guard = guarded_context(browser, live_server, locale="en-US")
    try:
        replay.add_cookies(cookies)
        stale = replay.new_page()
        stale.goto("/")
        expect_login_page(stale)
        guard.collect_from_pages(replay)
    finally:
        replay.close()
    assert guard.problems() == []


def test_slash_focuses_global_search(page, live_server, new_user):
    user = new_user("sales")
    sign_in(page, live_server, user.username)
    search = page.locator("#global-search")
    expect(search).not_to_be_focused()
    page.keyboard.press("/")
    expect(search).to_be_focused()
    # Pressed again in the empty box, "/" still only means "search here": no slash.
    page.keyboard.press("/")
    expect(search).to_have_value("")
    # Once typing in the box, "/" is an ordinary character.
    page.keyboard.type("a/")
    expect(search).to_have_value("a/")


def test_htmx_deactivate_sends_csrf_header_and_shows_toast(page, live_server, new_user):
    admin = new_user("admin")
    target = new_user("sales")
    sign_in(page, live_server, admin.username)
    page.goto("/admin/users")
    mark_document(page)

    row = page.locator(f"#user-{target.id}")
    expect(row).to_contain_text("Active")
    row.get_by_role("button", name="Deactivate").click()

    expect(row).to_contain_text("Deactivated")
    expect(row).to_have_class(re.compile(r"\binactive\b"))
    expect(row.get_by_role("button", name="Reactivate")).to_be_visible()
    expect(page.locator("#toasts")).to_contain_text(f"{target.username} deactivated")
    expect(page.locator("#alerts")).to_be_empty()
    expect_same_document(page)


def test_htmx_create_user_shows_field_error_then_password(page, live_server, new_user):
    admin = new_user("admin")
    sign_in(page, live_server, admin.username)
    page.goto("/admin/users/new")
    mark_document(page)

    form = page.locator("#user-form")
    form.locator("#username").fill("A B!")
    form.locator("#display_name").fill("Grace Hopper")
    form.locator("#role").select_option("sales")
    form.locator("#language").select_option("en")
    form.locator("#claim_limit").fill("5")
    form.locator("button[type=submit]").click()

    error = page.locator("#username-error")
    expect(error).to_be_visible()
    expect(page.locator("#username")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#display_name")).to_have_value("Grace Hopper")
    expect(page.locator("#role")).to_have_value("sales")
    expect(page.locator("#claim_limit")).to_have_value("5")
    expect_same_document(page)

    username = f"grace-{admin.id}"
    page.locator("#username").fill(username)
    page.locator("#user-form button[type=submit]").click()

    issued = page.get_by_test_id("password-issued")
    expect(issued).to_be_visible()
    expect(issued).to_contain_text(username)
    expect(issued.locator(".one-time-password")).to_have_text(re.compile(r"^\w{4}(-\w{4}){3}$"))
    expect(page.locator("#toasts")).to_contain_text(f"Account {username} created.")
    expect_same_document(page)


def test_htmx_action_without_cookies_redirects_to_login(page, context, live_server, new_user):
    admin = new_user("admin")
    target = new_user("sales")
    sign_in(page, live_server, admin.username)
    page.goto("/admin/users")

    context.clear_cookies()
    with page.expect_response(re.compile(rf"/admin/users/{target.id}/active$")) as answer:
        page.locator(f"#user-{target.id}").get_by_role("button", name="Deactivate").click()
    response = answer.value
    assert (response.status, response.headers.get("hx-redirect")) == (204, "/login")

    expect_login_page(page)
    expect(page.locator("#users")).to_have_count(0)


def test_htmx_action_after_session_ended_elsewhere_redirects_to_login(
    page, live_app, live_server, new_user
):
    """The cookie is still sent (so is its CSRF token) but the session token was
    rotated, as by signing out on another computer."""
    from extensions import db
    from models import User
    from services import accounts

    admin = new_user("admin")
    target = new_user("sales")
    sign_in(page, live_server, admin.username)
    page.goto("/admin/users")

    with live_app.app_context():
        accounts.logout(db.session.get(User, admin.id))
        db.session.commit()
    page.locator(f"#user-{target.id}").get_by_role("button", name="Deactivate").click()

    expect_login_page(page)
    expect(page.locator("#users")).to_have_count(0)


def test_guard_catches_inline_script_and_outside_request(browser, live_server):
    """The guard itself: a page (served by a route, not the app) with an inline script
    under a CSP and an image from elsewhere must be reported twice over."""
    context, guard = guarded_context(browser, live_server)
    try:
        context.route(
            f"{live_server}/__guard-probe",
            lambda route: route.fulfill(
                status=200,
                headers={"Content-Type": "text/html", "Content-Security-Policy": "script-src 'self'"},
                body='<p>probe</p><script>document.title = "ran"</script>'
                '<img src="http://example.invalid/pixel.png" alt="">',
            ),
        )
        page = context.new_page()
        page.goto("/__guard-probe")
        expect(page.locator("p")).to_have_text("probe")
        assert page.title() != "ran"
        page.wait_for_function("window.__cspViolations.length > 0")
        guard.collect_from_pages(context)
    finally:
        context.close()
    assert any("example.invalid" in request for request in guard.outside_requests)
    assert any("Refused to" in p or "script-src" in p for p in guard.csp_problems)
