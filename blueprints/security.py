"""Sessions that really end, and the headers every response carries.

The session cookie holds the user's random session token (see ``User.get_id``);
rotating the token in the database ends every session at once. On top of that a
session ends after ``IDLE_TIMEOUT_MINUTES`` without a request and
``ABSOLUTE_TIMEOUT_HOURS`` after sign-in.
"""

from __future__ import annotations

import time

from flask import current_app, request, session, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_user, logout_user

from blueprints import htmx
from blueprints.access import ROLE_LABELS
from extensions import login_manager
from services import accounts, policy

# img-src allows data: URIs: Pico's stylesheet draws its select, search and date icons
# as inline SVG images (an image cannot run script).
CSP = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)

# Endpoints a user who must change their password may still reach.
_PASSWORD_CHANGE_ALLOWED = {"auth.change_password", "auth.logout", "static"}
# How often the idle clock in the cookie is refreshed; fewer Set-Cookie headers.
_TOUCH_EVERY_SECONDS = 30


def start_session(user) -> None:
    """Sign ``user`` in on this browser: a fresh session (no fixation), the clocks
    for both timeouts, and the user's current token in the cookie."""
    session.clear()
    login_user(user, remember=False)
    now = int(time.time())
    session["signed_in_at"] = now
    session["seen_at"] = now


def end_session() -> None:
    logout_user()
    session.clear()


def client_ip() -> str | None:
    """The peer address. Behind a reverse proxy, deploy with ProxyFix (see README)
    so this is the client's address."""
    return request.remote_addr


@login_manager.user_loader
def load_user(token: str):
    return accounts.get_by_session_token(token)


@login_manager.unauthorized_handler
def unauthorized():
    """Anonymous request for a page that needs a user: the login page, by
    HX-Redirect for htmx (never a login form inside a fragment)."""
    if request.method == "GET" and not htmx.is_htmx():
        target = url_for("auth.login", next=request.full_path.rstrip("?"))
    else:
        target = url_for("auth.login")
    return htmx.redirect(target)


def _session_expired() -> bool:
    now = int(time.time())
    config = current_app.config
    signed_in_at = session.get("signed_in_at", 0)
    seen_at = session.get("seen_at", 0)
    if now - signed_in_at > config["ABSOLUTE_TIMEOUT_HOURS"] * 3600:
        return True
    if now - seen_at > config["IDLE_TIMEOUT_MINUTES"] * 60:
        return True
    if now - seen_at >= _TOUCH_EVERY_SECONDS:
        session["seen_at"] = now
    return False


def _enforce_session_rules():
    if request.endpoint == "static" or not current_user.is_authenticated:
        return None
    if _session_expired():
        end_session()
        htmx.notify(_l("Your session has ended. Please sign in again."), "info")
        return htmx.redirect(url_for("auth.login"))
    if current_user.must_change_password and request.endpoint not in _PASSWORD_CHANGE_ALLOWED:
        return htmx.redirect(url_for("auth.change_password"))
    return None


def _set_security_headers(response):
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("X-Frame-Options", "DENY")
    if request.endpoint != "static":
        # No page may linger in a shared front-desk browser's cache or back button.
        headers["Cache-Control"] = "no-store"
    return response


def _template_helpers():
    # The user behind the proxy, resolved once per render: a page asks ``may`` a few
    # times per row, and each attribute read through ``current_user`` looks it up again.
    user = current_user._get_current_object()
    return {
        "may": lambda action, obj=None: policy.may(user, action, obj),
        "visible_fields": lambda customer=None: policy.visible_fields(user, customer),
        "note_actions": lambda note: policy.note_actions(user, note),
        "role_label": lambda role: ROLE_LABELS.get(role, role),
    }


def init_app(app) -> None:
    app.context_processor(_template_helpers)
    login_manager.init_app(app)
    login_manager.session_protection = "basic"
    app.before_request(_enforce_session_rules)
    app.after_request(_set_security_headers)
