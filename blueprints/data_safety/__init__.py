"""Data safety (数据安全, D2/D5), for admins: the backups (download, back up now), and
the nightly jobs' last runs and results."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, g, request, send_file
from flask_babel import lazy_gettext as _l

from blueprints import htmx
from blueprints.access import actor, permission_required
from blueprints.security import client_ip
from extensions import db, reading_only
from models import utcnow
from services import audit, backup, leases, nightly, scheduler

bp = Blueprint("data_safety", __name__, url_prefix="/admin/data-safety")


def _context() -> dict:
    now = utcnow()
    states = leases.states(nightly.JOBS, now)
    backups = backup.list_backups(nightly.backup_folder())
    hour = leases.nightly_hour()
    return {"jobs": nightly.JOBS, "states": states, "backups": backups,
            "last_backup": backups[0] if backups else None, "backup_state": states["backup"],
            "next_run": leases.next_run(now, hour), "nightly_hour": hour,
            "timezone": current_app.config["OFFICE_TIMEZONE"], "starting": False,
            "job_text": {name: nightly.detail_text(state.details, state.message) for name, state in states.items()}}


@bp.app_template_global()
def nightly_trouble():
    """For the banner in base.html: the job an admin should look at (a failed or
    overdue backup first, then another failed job), or None. Computed only when the
    template calls it, once per request."""
    if "nightly_trouble" not in g:
        states = leases.states(nightly.JOBS)
        backup_state = states["backup"]
        trouble = backup_state if backup_state.attention else next(
            (state for name, state in states.items() if name not in ("backup", "pool_sweep")
             and state.attention == "failed"), None)
        g.nightly_trouble = trouble and {"name": trouble.name, "attention": trouble.attention,
                                         "label": nightly.JOBS[trouble.name].label}
    return g.nightly_trouble


@bp.get("")
@permission_required("backup.manage")
def page():
    """The backups and the nightly jobs."""
    return htmx.render("data_safety/page.html", "data_safety/_status.html", **_context())


@bp.get("/status")
@permission_required("backup.manage")
def status():
    """The status block alone (polled while a backup runs)."""
    return htmx.render("data_safety/page.html", "data_safety/_status.html", **_context())


@bp.post("/backup")
@permission_required("backup.manage")
def back_up_now():
    """Start a backup in the background, under the nightly backup's lease (so never
    two at once); the page polls the status until it is done."""
    if leases.states(["backup"])["backup"].running:
        toast = (_l("A backup is running already; wait for it to finish."), "info")
    else:
        user = actor()
        audit.record("backup.requested", user, ip=client_ip())
        db.session.commit()
        scheduler.in_background(current_app._get_current_object(), nightly.run, "backup", force=True,
                                started_by=user.username, actor_id=user.id)
        toast = (_l("Backup started. This page shows the result when it is done."), "info")
    with reading_only():  # no write lock held while the backup starts (SQLite)
        context = _context()
    context["starting"] = not context["backup_state"].running
    return htmx.render("data_safety/page.html", "data_safety/_status.html", toast=toast, **context)


@bp.get("/download")
@permission_required("backup.manage")
def download():
    """Stream the backup named by ``?file=``, if it is one that BACKUP_DIR lists (any
    other name, or a symbolic link placed there: 404); audited."""
    name = request.args.get("file", "")
    folder = nightly.backup_folder()
    found = next((item for item in backup.list_backups(folder) if item.name == name), None)
    if found is None or found.path.is_symlink():
        abort(404)
    audit.record("backup.download", actor(), ip=client_ip(), file=found.name, size=found.size)
    db.session.commit()
    return send_file(found.path, mimetype="application/gzip", as_attachment=True, download_name=found.name,
                     max_age=0)
