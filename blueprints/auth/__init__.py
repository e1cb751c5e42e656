"""Signing in and out, and each user's own account settings."""

from __future__ import annotations

from flask import Blueprint, current_app, request, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from sqlalchemy.exc import OperationalError

from blueprints import errors, htmx
from blueprints.auth.forms import ChangePasswordForm, LanguageForm, LoginForm
from blueprints.security import client_ip, end_session, start_session
from extensions import db
from services import accounts
from services.errors import DomainError
from services.policy import permission_required

bp = Blueprint("auth", __name__)


def _login_policy() -> accounts.LoginPolicy:
    from datetime import timedelta

    config = current_app.config
    return accounts.LoginPolicy(
        max_failures=config["LOGIN_MAX_FAILURES"],
        window=timedelta(minutes=config["LOGIN_FAILURE_WINDOW_MINUTES"]),
        lockout=timedelta(minutes=config["LOGIN_LOCKOUT_MINUTES"]),
    )


def _safe_next(target: str | None) -> str:
    """Only same-site paths: never an open redirect."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("main.home")


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
            error = refused.message
        else:
            start_session(user)
            return htmx.redirect(_safe_next(request.args.get("next")))
    status = 422 if error or form.errors else 200
    return htmx.render("auth/login.html", form=form, error=error, status=status)


@bp.post("/logout")
@login_required
def logout():
    """Sign out everywhere: the session token is replaced, so a copied cookie is
    refused afterwards."""
    try:
        accounts.logout(current_user._get_current_object(), ip=client_ip())
    except (OSError, OperationalError) as error:
        if not errors.is_disk_full(error):
            raise
        # The token could not be replaced (other sessions stay valid); this browser's session ends all the same.
        db.session.rollback()
    end_session()
    htmx.notify(_l("You have signed out."), "success")
    return htmx.redirect(url_for("auth.login"))


@bp.route("/account/password", methods=["GET", "POST"])
@permission_required("account.edit_own")
def change_password():
    """Change one's own password; other sessions of the user end."""
    form = ChangePasswordForm()
    if form.validate_on_submit():
        user = current_user._get_current_object()
        try:
            accounts.change_password(
                user, form.current_password.data, form.new_password.data, ip=client_ip()
            )
        except DomainError as refused:
            getattr(form, refused.field).errors.append(refused.message)
        else:
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
        htmx.notify(_l("Saved."), "success")
        return htmx.redirect(url_for("auth.account"))
    return htmx.render("auth/account.html", form=form, status=422 if form.errors else 200)
