"""Fixtures for the browser tests: the app served on a real port, Debian's Chromium,
and a guard on every page that fails the test on a Content-Security-Policy
violation or on any request leaving the live server.

CSRF stays enabled here: the browser must prove the hidden fields and the
``X-CSRFToken`` header from ``hx-headers`` work.
"""

from __future__ import annotations

import itertools
import os
import secrets
import threading
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest
from werkzeug.serving import make_server

from extensions import db
from services import accounts
from tests.conftest import IN_CI, TEST_PASSWORD, migrated_app

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    # Any name but the live server resolves to nothing: an asset from the internet fails.
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1",
]

# Playwright injects init scripts whatever the page's CSP says. Violations are kept in
# the page and also reported through a binding, so those on earlier pages count too.
CSP_LISTENER = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", function (event) {
  var text = event.violatedDirective + " blocked " + (event.blockedURI || "inline") +
    " on " + event.documentURI;
  window.__cspViolations.push(text);
  if (window.__reportCspViolation) window.__reportCspViolation(text);
});
"""


@pytest.fixture(scope="session")
def live_app(tmp_path_factory):
    instance = tmp_path_factory.mktemp("browser-instance")
    app = migrated_app(f"sqlite:///{instance}/browser.db", str(instance))
    yield app
    with app.app_context():
        db.engine.dispose()


def _buffered(app):
    """``app`` answering with its whole body read and closed before anything is sent.
    Werkzeug's development server skips closing an answer when the browser resets
    the connection while the server drains the request (Chromium does, leaving a
    page whose favicon is still loading): the static file it had open was then
    reported unclosed when collected, failing whichever test ran at that moment."""
    def buffered(environ, start_response):
        answer = app(environ, start_response)
        try:
            return [b"".join(answer)]
        finally:
            if hasattr(answer, "close"):
                answer.close()
    return buffered


@pytest.fixture(scope="session")
def live_server(live_app):
    """The app on 127.0.0.1 and a free port, for the whole run; yields the base URL."""
    server = make_server("127.0.0.1", 0, _buffered(live_app), threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture(scope="session")
def new_user(live_app):
    """Create a user on the shared server: ``new_user("admin", language="en")``.
    Usernames are unique per call; returns id, username and display_name."""
    counter = itertools.count(1)
    run = secrets.token_hex(2)

    def make(role: str = "sales", **kwargs) -> SimpleNamespace:
        username = f"{role}-{run}-{next(counter)}"
        kwargs.setdefault("display_name", f"{role.title()} {username}")
        with live_app.app_context():
            user = accounts.create_user(username, TEST_PASSWORD, role, **kwargs)
            db.session.commit()
            return SimpleNamespace(
                id=user.id, username=user.username, display_name=user.display_name
            )

    return make


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        if IN_CI:
            pytest.fail(f"Chromium not found at {CHROMIUM}: the browser tests are mandatory in CI")
        pytest.skip(f"Chromium not found at {CHROMIUM}: browser tests skipped")
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()
    finally:
        playwright.stop()


@dataclass
class Guard:
    """What went wrong in one browser context: requests off the live server and CSP
    violations (console messages, page errors and ``securitypolicyviolation`` events)."""

    base_url: str
    outside_requests: list[str] = field(default_factory=list)
    csp_problems: list[str] = field(default_factory=list)

    def on_request(self, request) -> None:
        url = request.url
        if not (url == self.base_url or url.startswith(self.base_url + "/")):
            self.outside_requests.append(f"{request.method} {url}")

    def on_message(self, text: str) -> None:
        if "Content Security Policy" in text or "Refused to" in text:
            self.csp_problems.append(text)

    def on_violation(self, text: str) -> None:
        if text not in self.csp_problems:
            self.csp_problems.append(text)

    def collect_from_pages(self, context) -> None:
        for page in context.pages:
            if page.is_closed():
                continue
            for text in page.evaluate("window.__cspViolations || []"):
                self.on_violation(text)

    def problems(self) -> list[str]:
        return [f"request outside the live server: {r}" for r in self.outside_requests] + [
            f"CSP: {p}" for p in self.csp_problems
        ]


def guarded_context(browser, base_url: str, **options):
    """A new browser context with a :class:`Guard` attached; returns (context, guard)."""
    guard = Guard(base_url)
    context = browser.new_context(base_url=base_url, **options)
    context.on("request", guard.on_request)
    context.on("console", lambda message: guard.on_message(message.text))
    context.on("weberror", lambda error: guard.on_message(str(error.error)))
    context.expose_function("__reportCspViolation", guard.on_violation)
    context.add_init_script(CSP_LISTENER)
    return context, guard


@pytest.fixture
def locale():
    """The browser's language; override with ``@pytest.mark.parametrize`` or a fixture."""
    return "en-US"


@pytest.fixture
def context(browser, live_server, locale):
    """A fresh browser context per test, checked by the guard at the end."""
    context, guard = guarded_context(browser, live_server, locale=locale)
    context.set_default_timeout(5000)
    yield context
    guard.collect_from_pages(context)
    context.close()
    problems = guard.problems()
    if problems:
        pytest.fail("The browser saw problems:\n" + "\n".join(problems))


@pytest.fixture
def page(context):
    return context.new_page()


@pytest.fixture
def zh_catalog_compiled() -> bool:
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return os.path.exists(os.path.join(root, "translations", "zh", "LC_MESSAGES", "messages.mo"))
