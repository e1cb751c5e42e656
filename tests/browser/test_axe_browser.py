"""Accessibility (U2, U4): axe-core finds no serious or critical violation on any
main page, for any role, on a 1366 px screen and (home, customers, pool) on a
390 px phone.

axe.min.js comes from the test dependency axe-playwright-python, never from the
app. The page's Content-Security-Policy refuses injected scripts, so these contexts
bypass it (Playwright's bypass_csp); the guard still fails on any request that
leaves the live server."""

from __future__ import annotations

import json

import pytest

from tests.browser.layout_world import ROLES, build_office, main_pages, sign_in_context

pytestmark = pytest.mark.browser

PHONE_PAGES = ("/", "/customers", "/pool")
BLOCKING = ("serious", "critical")


@pytest.fixture(scope="module")
def axe_script():
    from axe_playwright_python.base import AXE_SCRIPT

    return AXE_SCRIPT


@pytest.fixture(scope="module")
def office(live_app):
    return build_office(live_app)


def violations(page, axe_script) -> list[str]:
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(content=axe_script)
    found = page.evaluate("() => axe.run(document, {resultTypes: ['violations']}).then(r => r.violations)")
    return [f"{v['impact']} {v['id']}: {v['help']} — "
            + json.dumps([n["target"] for n in v["nodes"][:5]], ensure_ascii=False)
            for v in found if v["impact"] in BLOCKING]


@pytest.mark.parametrize("role", ROLES)
def test_no_serious_or_critical_violations(browser, live_server, office, axe_script, role):
    context, guard = sign_in_context(browser, live_server, office.users[role].username,
                                     locale="zh-CN", bypass_csp=True)
    page = context.new_page()
    problems = []
    for width, urls in ((1366, main_pages(office)[role]), (390, PHONE_PAGES)):
        page.set_viewport_size({"width": width, "height": 800})
        for url in urls:
            if url not in main_pages(office)[role]:
                continue
            assert page.goto(url).status == 200, url
            problems += [f"{url} at {width}px: {v}" for v in violations(page, axe_script)]
    guard.collect_from_pages(context)
    context.close()
    assert not guard.outside_requests, guard.outside_requests
    assert not problems, "\n".join(problems)
