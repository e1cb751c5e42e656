import re
import time
import urllib.parse

import pytest

from tests.conftest import TEST_PASSWORD, login

HX = {"HX-Request": "true"}


def test_login_page_renders(client):
    response = client.get("/login")
    assert response.status_code == 200
    assert b'name="username"' in response.data and b'name="password"' in response.data


def test_anonymous_page_redirects_to_login_with_next(client):
    response = client.get("/admin/users")
    assert response.status_code == 303
    assert response.headers["Location"] == "/login?next=/admin/users"


def test_anonymous_htmx_request_gets_hx_redirect_not_a_login_form(client):
    response = client.post("/admin/users/1/active", headers=HX, data={"active": "0"})
    assert response.headers["HX-Redirect"] == "/login"
    assert b"<form" not in response.data


def test_login_success_goes_to_next_but_never_off_site(client, make_user):
    user = make_user("sales")
    response = client.post("/login?next=/account", data={"username": user.username, "password": TEST_PASSWORD})
    assert response.headers["Location"] == "/account"
    client.post("/logout")
    for evil in ("//evil.example/x", "https://evil.example", "/\\evil.example"):
        response = client.post(f"/login?next={evil}", data={"username": user.username, "password": TEST_PASSWORD})
        assert response.headers["Location"] == "/", evil
        client.post("/logout")


@pytest.mark.parametrize("raw_next", [
    "/%09/evil.example/x", "/%0a/x", "/%0d/evil.example", "%09//evil.example", "/x%e2%80%8ey",
    "/\\evil.example", "\\\\evil.example", "/%5cevil.example", "%2f%2fevil.example",
    "///evil.example", "//evil.example", "https:evil.example", "https://evil.example",
    "javascript:alert(1)", "JavaScript%3Aalert(1)", "evil.example", "/%e3%80%80/evil.example",
])
def test_login_never_redirects_off_site(client, make_user, raw_next):
    """Known bypass forms of ``next`` (percent-encoded as a browser would send them)
    sign the user in and land on the home page."""
    user = make_user("sales")
    response = client.post(f"/login?next={raw_next}",
                           data={"username": user.username, "password": TEST_PASSWORD})
    assert response.status_code == 303
    assert response.headers["Location"] == "/"


@pytest.mark.parametrize("good", ["/customers?tag=1", "/account", "/customers/5/notes?before=3", "/search?q=%E5%BC%A0"])
def test_login_keeps_a_same_site_next(client, make_user, good):
    user = make_user("sales")
    response = client.post("/login", query_string={"next": urllib.parse.unquote(good)},
                           data={"username": user.username, "password": TEST_PASSWORD})
    assert response.status_code == 303
    assert urllib.parse.unquote(response.headers["Location"]) == urllib.parse.unquote(good)


def test_wrong_password_shows_message_and_keeps_username(client, make_user):
    user = make_user("sales")
    response = login(client, user.username, "not the password")
    assert response.status_code == 422
    assert b"Wrong username or password" in response.data
    assert f'value="{user.username}"'.encode() in response.data


def _login_from(client, address: str, username: str, password: str = TEST_PASSWORD):
    return client.post("/login", data={"username": username, "password": password},
                       environ_overrides={"REMOTE_ADDR": address})


def test_eleventh_attempt_is_locked_for_that_account_only(client, make_user):
    """Ten failures from ten addresses (one address alone has to wait first) lock
    the name; the right password from yet another address is refused."""
    victim, bystander = make_user("sales"), make_user("sales")
    for attempt in range(10):
        _login_from(client, f"10.0.0.{attempt}", victim.username, "wrong guess 1")
    response = _login_from(client, "10.0.1.1", victim.username)
    assert response.status_code == 422
    assert b"Too many failed sign-in attempts" in response.data
    assert _login_from(client, "10.0.1.1", bystander.username).status_code == 303


def test_one_address_waits_longer_after_each_failure_and_cannot_lock_an_account(client, make_user):
    """Five failures cost nothing; then the address must wait before its next try
    (the right password too): others, and the account, are not held back by it."""
    victim = make_user("sales")
    for _ in range(5):
        assert b"Wrong username or password" in _login_from(client, "10.9.9.9", victim.username, "bad guess 1").data
    for _ in range(10):
        waiting = _login_from(client, "10.9.9.9", victim.username)
        assert waiting.status_code == 422 and b"Too many failed sign-in attempts" in waiting.data
    assert _login_from(client, "10.8.8.8", victim.username).status_code == 303


def test_lockout_message_does_not_reveal_whether_user_exists(client, make_user):
    user = make_user("sales")
    for attempt in range(11):  # from many addresses, so the names lock (not an address)
        real = _login_from(client, f"10.1.{attempt}.1", user.username, "wrong guess 1")
        ghost = _login_from(client, f"10.2.{attempt}.1", "no.such.person", "wrong guess 1")
    assert b"Try again in 15 minutes" in real.data
    assert real.status_code == ghost.status_code
    assert _same_page(real.data, user.username) == _same_page(ghost.data, "no.such.person")


def _same_page(html: bytes, username: str) -> bytes:
    """The page with the typed name and the CSRF token (signed with the second it was
    made, so two pages a second apart differ there) taken out."""
    return re.sub(rb'"X-CSRFToken": "[^"]*"|name="csrf_token" type="hidden" value="[^"]*"', b"token",
                  html.replace(username.encode(), b"X"))


def test_cookie_captured_before_logout_is_refused_after(app, client, login_as):
    login_as("sales")
    assert client.get("/").status_code == 200
    captured = client.get_cookie("deskbook_session").value
    response = client.post("/logout")
    assert response.headers["Location"] == "/login"
    thief = app.test_client()
    thief.set_cookie("deskbook_session", captured)
    assert thief.get("/").status_code == 303


def test_logout_is_post_only(client, login_as):
    login_as("sales")
    assert client.get("/logout").status_code == 405
    assert client.get("/").status_code == 200


def test_idle_timeout(app, client, login_as):
    login_as("sales")
    with client.session_transaction() as session:
        session["seen_at"] = int(time.time()) - 31 * 60
    response = client.get("/")
    assert response.headers["Location"] == "/login"
    assert client.get("/").status_code == 303  # stays signed out


def test_absolute_timeout(app, client, login_as):
    login_as("sales")
    with client.session_transaction() as session:
        session["signed_in_at"] = int(time.time()) - 12 * 3600 - 1
    assert client.get("/").headers["Location"] == "/login"


def test_activity_keeps_the_session_alive(client, login_as):
    login_as("sales")
    with client.session_transaction() as session:
        session["seen_at"] = int(time.time()) - 29 * 60
    assert client.get("/").status_code == 200
    with client.session_transaction() as session:
        assert int(time.time()) - session["seen_at"] < 5


def test_session_cookie_flags(client, make_user):
    user = make_user("sales")
    response = login(client, user.username)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Expires" not in cookie  # a browser-session cookie, no remember-me
    assert "Secure" not in cookie
    assert "remember_token" not in str(response.headers)


def test_cookie_is_secure_when_https_is_configured(make_app, make_user):
    app = make_app(WTF_CSRF_ENABLED=False, HTTPS=True)
    user = make_user("sales")
    response = login(app.test_client(), user.username)
    assert "Secure" in response.headers["Set-Cookie"]


def test_must_change_password_first(client, login_as):
    login_as("sales", must_change_password=True)
    assert client.get("/").headers["Location"] == "/account/password"
    assert client.get("/", headers=HX).headers["HX-Redirect"] == "/account/password"
    response = client.post("/account/password", data={
        "current_password": TEST_PASSWORD, "new_password": "my own new passphrase",
        "confirm": "my own new passphrase"})
    assert response.status_code == 303
    assert client.get("/").status_code == 200


def test_change_password_errors_stay_next_to_the_field(client, login_as):
    login_as("sales")
    response = client.post("/account/password", headers=HX, data={
        "current_password": TEST_PASSWORD, "new_password": "12345678", "confirm": "12345678"})
    assert response.status_code == 422
    assert b'id="password-form"' in response.data and b"<html" not in response.data
    assert b"too common" in response.data
    response = client.post("/account/password", data={
        "current_password": TEST_PASSWORD, "new_password": "one long phrase", "confirm": "another"})
    assert response.status_code == 422 and b"The two passwords differ" in response.data


def test_wrong_current_passwords_lock_the_account_and_are_audited(app, client, login_as):
    """Guessing the current password on the account page counts like failed sign-ins."""
    from sqlalchemy import select

    from extensions import db
    from models import AuditEvent

    user = login_as("sales")
    attempt = {"new_password": "my own new passphrase", "confirm": "my own new passphrase"}
    for guess in range(10):
        response = client.post("/account/password", headers=HX,
                               data={**attempt, "current_password": f"guess {guess}xx"})
        assert response.status_code == 422
    assert b"Too many failed sign-in attempts" in response.data
    right = client.post("/account/password", data={**attempt, "current_password": TEST_PASSWORD})
    assert right.status_code == 422 and b"Too many failed sign-in attempts" in right.data
    with app.app_context():
        lines = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "password.change_failure")).all()
        assert len(lines) == 11 and {line.actor_id for line in lines} == {user.id}
        assert lines[0].ip == "127.0.0.1"
    client.post("/logout")
    assert _login_from(client, "10.7.7.7", user.username).status_code == 422  # sign-in is locked too


def test_change_password_ends_other_sessions_but_keeps_this_one(app, client, make_user):
    user = make_user("sales")
    other_browser = app.test_client()
    login(client, user.username)
    login(other_browser, user.username)
    client.post("/account/password", data={
        "current_password": TEST_PASSWORD, "new_password": "my own new passphrase",
        "confirm": "my own new passphrase"})
    assert client.get("/").status_code == 200
    assert other_browser.get("/").status_code == 303


@pytest.mark.parametrize("language, expected", [("en", b"Welcome"), ("zh", "欢迎".encode())])
def test_account_language_setting(client, login_as, language, expected):
    login_as("sales")
    response = client.post("/account", data={"language": language})
    assert response.status_code == 303
    assert expected in client.get("/", headers={"Accept-Language": "de"}).data


def test_account_language_rejects_unknown_values(client, login_as):
    login_as("sales")
    response = client.post("/account", data={"language": "fr"})
    assert response.status_code == 422
