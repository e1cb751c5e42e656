"""Administration: staff accounts and the audit log."""

from __future__ import annotations

from flask import Blueprint, abort, request, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from blueprints import htmx
from blueprints.access import authorize, permission_required
from blueprints.admin import audit_text
from blueprints.admin.forms import UserCreateForm, UserEditForm, parse_audit_filter
from blueprints.security import client_ip
from extensions import db
from models import User
from services import accounts, audit, customers, pool
from services.errors import DomainError
from services.ids import format_cursor, parse_cursor, parse_id

bp = Blueprint("admin", __name__, url_prefix="/admin")


def _actor() -> User:
    return current_user._get_current_object()


def get_managed_user(user_id: int) -> User:
    """The user with ``user_id``, if the current user may manage them. Raises 404 for
    an unknown id and 403 for oneself (use the account page)."""
    user = db.session.get(User, user_id) or abort(404)
    authorize(_actor(), "users.manage", user)
    return user


@bp.get("/users")
@permission_required("users.view")
def users():
    """Every staff account."""
    return htmx.render("admin/users.html", users=accounts.list_users())


@bp.route("/users/new", methods=["GET", "POST"])
@permission_required("users.manage")
def create_user():
    """Create an account with a one-time password, shown once."""
    form = UserCreateForm()
    if form.validate_on_submit():
        password = accounts.generate_password()
        try:
            user = accounts.create_user(
                form.username.data,
                password,
                form.role.data,
                display_name=form.display_name.data or "",
                language=form.language.data,
                claim_limit=form.claim_limit.data,
                must_change_password=True,
                actor=_actor(),
                ip=client_ip(),
            )
        except DomainError as refused:
            form.refuse(refused)
        else:
            db.session.commit()
            return htmx.render(
                "admin/password_issued.html", "admin/_password_issued.html",
                user=user, password=password,
                toast=_l("Account %(name)s created.", name=user.username),
            )
    return htmx.render(
        "admin/user_form.html", "admin/_user_form.html", form=form, user=None,
        status=422 if form.errors else 200,
    )


@bp.route("/users/<id:user_id>/edit", methods=["GET", "POST"])
@permission_required("users.manage")
def edit_user(user_id: int):
    """Change name, role, language or claim limit. A role change ends the user's
    sessions."""
    user = get_managed_user(user_id)
    form = UserEditForm(obj=user) if request.method == "GET" else UserEditForm()
    if request.method == "GET":
        form.language.data = user.language or ""
    if form.validate_on_submit():
        accounts.update_user(
            _actor(), user,
            display_name=form.display_name.data or "",
            role=form.role.data,
            language=form.language.data,
            claim_limit=form.claim_limit.data,
            ip=client_ip(),
        )
        db.session.commit()
        response = htmx.redirect(url_for("admin.users"))
        return htmx.add_toast(response, _l("Saved."))
    return htmx.render(
        "admin/user_form.html", "admin/_user_form.html", form=form, user=user,
        status=422 if form.errors else 200,
    )


@bp.post("/users/<id:user_id>/active")
@permission_required("users.manage")
def set_active(user_id: int):
    """Deactivate (``active=0``; every session ends at once) or reactivate."""
    user = get_managed_user(user_id)
    active = request.form.get("active") == "1"
    if not active and user.active and pool.owned_count_all(user.id):
        # P7: their customers go to the pool or a colleague, in the same transaction.
        if "handover_to" not in request.form:
            return htmx.render("admin/handover.html", "admin/_handover_row.html", user=user,
                               owned=pool.owned_count_all(user.id), colleagues=_colleagues(user))
        # "" is the pool; junk names no colleague (0) and is refused, not read as the pool.
        to_user = (parse_id(request.form["handover_to"]) or 0) if request.form["handover_to"] else None
        try:
            accounts.hand_over(_actor(), user, to_user, ip=client_ip())
        except DomainError as refused:
            return htmx.render("admin/handover.html", "admin/_handover_row.html", user=user, status=422,
                               owned=pool.owned_count_all(user.id), colleagues=_colleagues(user),
                               error=refused.message)
    elif not active and user.active:
        accounts.hand_over(_actor(), user, None, ip=client_ip())  # no customers; open follow-ups, if any
    accounts.set_active(_actor(), user, active, ip=client_ip())
    db.session.commit()
    message = _l("%(name)s reactivated.", name=user.username) if active else _l(
        "%(name)s deactivated. Their sessions have ended.", name=user.username
    )
    return htmx.render("admin/users.html", "admin/_user_row.html", user=user,
                       users=accounts.list_users(), toast=message)


def _colleagues(leaving: User) -> list[User]:
    return [u for u in customers.owner_choices() if u.id != leaving.id]


@bp.post("/users/<id:user_id>/reset-password")
@permission_required("users.manage")
def reset_password(user_id: int):
    """Issue a one-time password; the user must change it at next sign-in."""
    user = get_managed_user(user_id)
    password = accounts.reset_password(_actor(), user, ip=client_ip())
    db.session.commit()
    return htmx.render("admin/password_issued.html", user=user, password=password,
                       toast=_l("Password of %(name)s reset.", name=user.username))


@bp.get("/audit")
@permission_required("audit.view")
def audit_log():
    """The audit log, newest first, filtered by kind, user, customer and dates; htmx
    swaps the rows (a changed filter) or appends older ones (keyset paging)."""
    form, flt = parse_audit_filter(request.args)
    after = parse_cursor(request.args.get("after"))
    events, more = audit.events_page(flt, after=after) if not form.errors else ([], False)
    context = {"events": events, "more": more, "form": form, "flt": flt, "names": audit_text.user_names(events),
               "describe": audit_text.describe, "kind_label": audit_text.kind_label,
               "describe_target": audit_text.describe_target, "format_cursor": format_cursor}
    status = 422 if form.errors else 200
    if after is not None:  # "Older": only the rows that follow
        return htmx.render("admin/audit.html", "admin/_audit_rows.html", status=status, **context)
    return htmx.render("admin/audit.html", "admin/_audit_results.html", status=status,
                       oob=htmx.wants_fragment(), **context)
