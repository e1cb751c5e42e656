"""The home page: a dashboard per role (F2) — follow-ups due, mentions and recent
customers for sales staff and managers, a lookup-first page for the front desk."""

from __future__ import annotations

from flask import Blueprint, current_app

from blueprints import htmx
from blueprints.access import actor, permission_required
from services import dashboard
from services.office_time import office_today

bp = Blueprint("main", __name__)


def _has_endpoint(endpoint: str) -> bool:
    """Links to parts of the app that may be switched off or not built yet."""
    return endpoint in current_app.view_functions


@bp.get("/")
@permission_required("home.view")
def home():
    """The signed-in user's start page: their dashboard (see services.dashboard)."""
    board = dashboard.build(actor(), today=office_today(), timezone=current_app.config["OFFICE_TIMEZONE"])
    return htmx.render("main/home.html", user=actor(), board=board, has_endpoint=_has_endpoint,
                       home_list_cap=dashboard.LIMIT)
