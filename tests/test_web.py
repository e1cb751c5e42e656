"""Security headers, error pages, the htmx plumbing and CSRF."""

import json
import re
from pathlib import Path

import pytest
from flask import abort

from blueprints.security import CSP

HX = {"HX-Request": "true"}
ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("path", ["/login", "/", "/no-such-page"])
def test_security_headers_on_every_response(client, path):
    response = client.get(path)
    assert response.headers["Content-Security-Policy"] == CSP
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["Cache-Control"] == "no-store"


def test_pages_for_signed_in_users_are_not_stored(client, login_as):
    login_as("sales")
    response = client.get("/")
    assert response.headers["Cache-Control"] == "no-store"
    assert "HX-Request" in response.headers["Vary"]


def test_static_files_may_be_cached_and_carry_headers(client):
    response = client.get("/static/vendor/htmx-2.0.11.min.js")
    assert response.status_code == 200
    assert "no-store" not in response.headers.get("Cache-Control", "")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    response.close()


def test_the_icon_is_served_from_static(client):
    page = client.get("/login").data.decode()
    href = re.search(r'<link rel="icon" href="([^"]+)"', page).group(1)
    icon = client.get(href)
    assert icon.status_code == 200 and icon.mimetype == "image/svg+xml"
    icon.close()


def test_full_page_vs_fragment(client, login_as):
    login_as("admin")
    page = client.get("/admin/audit")
    fragment = client.get("/admin/audit", headers=HX)
    boosted = client.get("/admin/audit", headers={**HX, "HX-Boosted": "true"})
    restore = client.get("/admin/audit", headers={**HX, "HX-History-Restore-Request": "true"})
    assert b"<html" in page.data and b"<html" not in fragment.data
    assert b"<html" in boosted.data and b"<html" in restore.data
    for response in (page, fragment, boosted, restore):
        assert "HX-Request" in response.headers["Vary"]


@pytest.mark.parametrize("code", [400, 403, 404, 429, 500])
def test_error_pages_full_and_partial(make_app, code):
    app = make_app(PROPAGATE_EXCEPTIONS=False)

    @app.get("/boom")
    def boom():
        if code == 500:
            raise RuntimeError("secret internal detail")
        abort(code)

    client = app.test_client()
    page = client.get("/boom", headers={"Accept-Language": "en"})
    assert page.status_code == code
    assert b"<html" in page.data and f"{code}".encode() in page.data
    assert b"secret internal detail" not in page.data and b"Traceback" not in page.data
    partial = client.get("/boom", headers={**HX, "Accept-Language": "zh-CN"})
    assert partial.status_code == code
    assert b"<html" not in partial.data and b'class="error-box"' in partial.data
    assert partial.headers["Content-Security-Policy"] == CSP


def test_error_pages_are_translated(client):
    english = client.get("/nowhere").data
    chinese = client.get("/nowhere", headers={"Accept-Language": "zh-CN,zh;q=0.9"}).data
    assert b"Not found" in english
    assert "找不到".encode() in chinese or "不存在".encode() in chinese


def test_csrf_is_enforced_and_the_htmx_header_works(make_app, make_user):
    from tests.conftest import TEST_PASSWORD

    app = make_app()
    client = app.test_client()
    user = make_user("sales")
    no_token = client.post("/login", data={"username": user.username, "password": TEST_PASSWORD})
    assert no_token.headers["Location"] == "/login"  # a fresh form, with a token
    assert client.get("/").status_code == 303  # and not signed in
    page = client.get("/login").data.decode()
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    assert client.post("/login", data={"username": user.username, "password": TEST_PASSWORD,
                                       "csrf_token": token}).status_code == 303
    home = client.get("/").data.decode()
    header = json.loads(re.search(r"hx-headers='([^']+)'", home).group(1))
    refused = client.post("/account", headers=HX, data={"language": "en"})
    assert refused.status_code == 400 and b"<html" not in refused.data
    accepted = client.post("/account", headers={**HX, **header}, data={"language": "en"})
    assert accepted.headers["HX-Redirect"] == "/account"


def test_csrf_failure_of_a_signed_out_browser_goes_to_login(make_app):
    """A browser whose session is gone has no CSRF token either: it must land on the
    login page, not on "bad request"."""
    client = make_app().test_client()
    response = client.post("/admin/users/1/active", headers=HX, data={"active": "0"})
    assert response.headers["HX-Redirect"] == "/login"
    assert client.post("/logout").headers["Location"] == "/login"


def test_htmx_config_meta(client):
    page = client.get("/login").data.decode()
    config = json.loads(re.search(r'name="htmx-config" content=\'([^\']+)\'', page).group(1))
    assert config["historyCacheSize"] == 0
    assert config["includeIndicatorStyles"] is False
    assert config["allowEval"] is False
    assert config["selfRequestsOnly"] is True


def test_toast_header_is_ascii_json(client, login_as, make_user):
    login_as("admin")
    user = make_user("sales", username="zhao.lei")
    response = client.post(f"/admin/users/{user.id}/active", headers=HX, data={"active": "0"})
    trigger = json.loads(response.headers["HX-Trigger"])
    assert "zhao.lei" in trigger["toast"]["message"]
    assert trigger["toast"]["level"] == "success"


TEMPLATES = sorted((ROOT / "templates").rglob("*.html"))


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: str(p.relative_to(ROOT)))
def test_templates_have_no_inline_script_style_or_handlers(template):
    """The CSP forbids inline code; a template that needed it would break silently."""
    text = template.read_text(encoding="utf-8")
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text)
    assert "<style" not in text
    assert not re.search(r"\sstyle=", text)
    assert not re.search(r"\son[a-z]+=", text)
    assert "hx-on" not in text and "js:" not in text


def test_vendored_files_match_their_recorded_checksums():
    import hashlib

    table = (ROOT / "static/vendor/VENDOR.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (\S+\.(?:js|css)) \|.*\| ([0-9a-f]{64}) \|$", table, re.M)
    assert len(rows) == 2
    for name, digest in rows:
        assert hashlib.sha256((ROOT / "static/vendor" / name).read_bytes()).hexdigest() == digest


def test_starting_the_app_does_not_load_demo_only_libraries(tmp_path):
    """Faker is for the demo-data command and the benchmarks; a fresh process that
    builds the app (as every gunicorn worker does) must not import it."""
    import subprocess
    import sys

    code = (
        "import sys; from app import create_app; "
        f"create_app({{'TESTING': True, 'SECRET_KEY': 'x', 'INSTANCE_PATH': {str(tmp_path)!r}}}); "
        "print('faker' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=60, check=True)
    assert result.stdout.strip() == "False"


def test_csp_lets_picos_inline_icons_show_and_nothing_else_in(client):
    """Pico's select, search and date icons are data: SVG images; scripts, styles and
    frames stay on this site."""
    directives = [part.strip() for part in client.get("/login").headers["Content-Security-Policy"].split(";")]
    assert "img-src 'self' data:" in directives and "default-src 'self'" in directives
    assert not [d for d in directives if d.startswith(("script-src", "style-src", "frame-src"))]


def test_csp_keeps_forms_on_this_site(client):
    """An injected <form action="https://evil.example"> could not send anything away."""
    directives = [part.strip() for part in client.get("/login").headers["Content-Security-Policy"].split(";")]
    assert "form-action 'self'" in directives


def _makefile_waitress_arguments() -> list[str]:
    """The options `make run` passes to waitress-serve (host and port left out)."""
    line = next(line for line in (ROOT / "Makefile").read_text().splitlines() if "waitress-serve" in line)
    words = line.split("waitress-serve", 1)[1].split()
    kept, skip = [], False
    for word in words:
        if skip:
            skip = False
        elif word in ("--host", "--port"):
            skip = True
        elif not word.startswith("--call") and ":" not in word:
            kept.append(word)
    return kept


def test_waitress_as_make_run_starts_it_sends_no_server_header(tmp_path):
    """The Server header would name the server software to anyone who asks."""
    import os
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "DESKBOOK_INSTANCE_PATH": str(tmp_path), "SECRET_KEY": "test-secret",
           "DATABASE_URL": f"sqlite:///{tmp_path}/server.db"}
    argv = [sys.executable, "-m", "waitress", "--host", "127.0.0.1", "--port", str(port),
            *_makefile_waitress_arguments(), "--call", "app:create_app"]
    server = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _attempt in range(200):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=5) as response:
                    headers = response.headers
                break
            except OSError:
                if server.poll() is not None:
                    raise AssertionError("waitress-serve ended") from None
                time.sleep(0.05)
        else:
            raise AssertionError("waitress-serve did not answer")
    finally:
        server.terminate()
        server.wait(10)
    assert headers.get_all("Server") is None
    assert "form-action 'self'" in headers["Content-Security-Policy"]
