"""The public pool's admin side: the office settings (P8), the pool events with the
weekly flows (P6, R1), tonight's recycling batch (P5) and the missing-cron banner."""

from __future__ import annotations

from datetime import date

from flask import Blueprint, current_app, g, request, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from blueprints import htmx
from blueprints.access import actor, permission_required
from blueprints.pool_admin.forms import SettingsForm, field_name
from blueprints.security import client_ip
from extensions import db
from models import PoolEventKind
from services import accounts, policy, pool, pool_stats, settings
from services.errors import DomainError
from services.ids import parse_id, parse_page
from services.office_time import office_today

bp = Blueprint("pool_admin", __name__)

CRON_LINE = "0 2 * * * cd /srv/deskbook && .venv/bin/flask --app app pool recycle"
EVENT_LABELS = {
    PoolEventKind.CREATE_IN_POOL: _l("Created in the pool"),
    PoolEventKind.CLAIM: _l("Claimed"),
    PoolEventKind.RELEASE: _l("Released"),
    PoolEventKind.ASSIGN: _l("Assigned"),
    PoolEventKind.RECYCLE: _l("Recycled"),
    PoolEventKind.HANDOVER: _l("Handed over"),
    PoolEventKind.RELEASE_UNDONE: _l("Release undone"),
}
STATS_WEEKS = 12


@bp.app_template_global()
def pool_sweep_overdue() -> bool:
    """For the banner in base.html: computed only when a template calls it, only for
    users with ``pool.history``, once per request."""
    if not current_user.is_authenticated or not policy.may(current_user, "pool.history"):
        return False
    if "pool_sweep_overdue" not in g:
        g.pool_sweep_overdue = pool.sweep_overdue()
    return g.pool_sweep_overdue


# ---- settings ------------------------------------------------------------------------

def _check_each(form: SettingsForm) -> dict | None:
    """Every setting checked by the settings service; errors go next to their field.
    Returns the values, or None when any is refused."""
    values, ok = {}, True
    for key, value in form.values().items():
        try:
            values[key] = settings.validate(key, value)
        except DomainError as refused:
            form.refuse(refused, field_name(key))
            ok = False
    return values if ok else None


@bp.route("/admin/settings", methods=["GET", "POST"], endpoint="settings")
@permission_required("settings.edit")
def settings_page():
    """Edit the pool rules; all are saved or none (settings.update), audited."""
    if request.method == "GET":
        form = SettingsForm(data={field_name(key): value for key, value in settings.get_all().items()})
        return htmx.render("pool_admin/settings.html", "pool_admin/_settings_form.html", form=form)
    form = SettingsForm()
    if form.validate_on_submit() and (values := _check_each(form)) is not None:
        try:
            changes = settings.update(actor(), values, ip=client_ip())
        except DomainError as refused:
            form.refuse(refused, field_name(refused.field or ""))
        else:
            db.session.commit()
            message = _l("Settings saved.") if changes else _l("Nothing changed.")
            if not htmx.is_htmx():
                htmx.notify(message)
                return htmx.redirect(url_for("pool_admin.settings"))
            return htmx.render("pool_admin/settings.html", "pool_admin/_settings_form.html",
                               form=form, toast=message)
    return htmx.render("pool_admin/settings.html", "pool_admin/_settings_form.html", form=form, status=422)



# ---- pool events and weekly flows ------------------------------------------------------

def _id_arg(name: str) -> int | None:
    return parse_id(request.args.get(name, "").strip().lstrip("#"))  # "#42" as the list shows it


def _date_arg(name: str) -> date | None:
    try:
        return date.fromisoformat(request.args.get(name, "")[:10])
    except ValueError:
        return None


def _event_filter() -> pool_stats.EventFilter:
    """The filter from the URL; anything unreadable filters nothing."""
    kind = request.args.get("kind", "")
    return pool_stats.EventFilter(
        kind=kind if kind in set(PoolEventKind) else "",
        user_id=_id_arg("user"), customer_id=_id_arg("customer"),
        date_from=_date_arg("from"), date_to=_date_arg("to"),
    )


def _filter_args(flt: pool_stats.EventFilter) -> dict:
    """The filter as URL arguments (for the pager links)."""
    args = {"kind": flt.kind, "user": flt.user_id, "customer": flt.customer_id,
            "from": flt.date_from and flt.date_from.isoformat(), "to": flt.date_to and flt.date_to.isoformat()}
    return {key: value for key, value in args.items() if value}


@bp.get("/pool/events")
@permission_required("pool.history")
def events():
    """Every pool event, newest first, filtered and paged; the weekly flows above.
    An htmx request gets the results only."""
    flt = _event_filter()
    page = parse_page(request.args.get("page"))
    found = pool_stats.find_events(flt, page=page)
    weeks = [] if htmx.wants_fragment() else pool_stats.weekly_counts(STATS_WEEKS, today=office_today())
    return htmx.render(
        "pool_admin/events.html", "pool_admin/_events.html",
        flt=flt, found=found, filter_args=_filter_args(flt), weeks=weeks,
        users=accounts.list_users(), event_labels=EVENT_LABELS,
    )


# ---- tonight's recycling batch --------------------------------------------------------

@bp.get("/pool/recycling")
@permission_required("pool.history")
def recycling():
    """What the next sweep would recycle, and why; when the sweep last ran."""
    return htmx.render(
        "pool_admin/recycling.html", due=pool.due_for_recycling(), last_sweep=pool.last_sweep_at(),
        sweep_overdue=pool.sweep_overdue(), rules=settings.get_all(), cron_line=CRON_LINE,
        timezone=current_app.config["OFFICE_TIMEZONE"], nightly_hour=settings.get("jobs.nightly_hour"),
    )
