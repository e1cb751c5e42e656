"""Signing in and out, and each user's own account settings."""

from __future__ import annotations

import unicodedata
from urllib.parse import urlsplit

from flask import Blueprint, current_app, request, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from sqlalchemy.exc import OperationalError

from blueprints import errors, htmx
from blueprints.access import permission_required
from blueprints.auth.forms import ChangePasswordForm, LanguageForm, LoginForm
from blueprints.security import client_ip, end_session, start_session
from extensions import db
from services import accounts
from services.errors import DomainError

bp = Blueprint("auth", __name__)


def _login_policy() -> accounts.LoginPolicy:
    return accounts.policy_from_config(current_app.config)


def _safe_next(target: str | None) -> str:
    """``target`` if it is a path on this site, else the home page: never an open
    redirect. Browsers drop tabs and newlines from a URL and read a backslash as a
    slash (``/<tab>/evil.example`` becomes ``//evil.example``), so any whitespace,
    control character or backslash refuses the target outright; what is left must
    start with one slash and have neither scheme nor host."""
    if not target or "\\" in target or any(
        char.isspace() or unicodedata.category(char).startswith("C") for char in target
    ):
        return url_for("main.home")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("main.home")
    return target


def _commit_unless_disk_full() -> bool:
    """Commit what signing in or out recorded (the audit line, the sign-in counters,
    a new session token). On a full disk that record is dropped and logged, and the
    sign-in or sign-out goes on: nobody is locked out of, or into, a server whose disk
    filled up. Returns whether it was saved."""
    try:
        db.session.commit()
        return True
    except (OSError, OperationalError) as error:
        if not errors.is_disk_full(error):
            raise
        db.session.rollback()
        current_app.logger.warning("disk full: sign-in or sign-out not recorded (%s)", error)
        return False


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Sign in. Wrong credentials and lockouts give the same kind of message, which
    never tells whether the username exists."""
    if current_user.is_authenticated:
        return htmx.redirect(url_for("main.home"))
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        try:
            user = accounts.authenticate(
                form.username.data, form.password.data, ip=client_ip(), policy=_login_policy()
            )
        except accounts.LoginRefused as refused:
            _commit_unless_disk_full()  # the failure counts towards the lockout
            error = refused.message
        else:
            _commit_unless_disk_full()
            start_session(user)
            return htmx.redirect(_safe_next(request.args.get("next")))
    status = 422 if error or form.errors else 200
    return htmx.render("auth/login.html", form=form, error=error, status=status)


@bp.post("/logout")
@login_required
def logout():
    """Sign out everywhere: the session token is replaced, so a copied cookie is
    refused afterwards."""
    accounts.logout(current_user._get_current_object(), ip=client_ip())
    # On a full disk the token is not replaced (other sessions stay valid); this browser's session ends all the same.
    _commit_unless_disk_full()
    end_session()
    htmx.notify(_l("You have signed out."), "success")
    return htmx.redirect(url_for("auth.login"))


@bp.route("/account/password", methods=["GET", "POST"])
@permission_required("account.edit_own")
def change_password():
    """Change one's own password; other sessions of the user end. Wrong current
    passwords count towards the account's sign-in lock."""
    form = ChangePasswordForm()
    if form.validate_on_submit():
        user = current_user._get_current_object()
        try:
            accounts.change_password(
                user, form.current_password.data, form.new_password.data, ip=client_ip(),
                policy=_login_policy(),
            )
        except DomainError as refused:
            db.session.commit()  # a wrong current password counts towards the lock
            form.refuse(refused)
        else:
            db.session.commit()
            start_session(user)
            htmx.notify(_l("Your password has been changed."), "success")
            return htmx.redirect(url_for("main.home"))
    status = 422 if form.errors else 200
    return htmx.render(
        "auth/change_password.html", "auth/_password_form.html", form=form, status=status
    )


@bp.route("/account", methods=["GET", "POST"])
@permission_required("account.edit_own")
def account():
    """One's own settings: the interface language."""
    form = LanguageForm(language=current_user.language or "")
    if form.validate_on_submit():
        accounts.set_language(current_user._get_current_object(), form.language.data)
        db.session.commit()
        htmx.notify(_l("Saved."), "success")
        return htmx.redirect(url_for("auth.account"))
    return htmx.render("auth/account.html", form=form, status=422 if form.errors else 200)
