"""The home page."""

from __future__ import annotations

from flask import Blueprint
from flask_login import current_user

from blueprints import htmx
from services.policy import permission_required

bp = Blueprint("main", __name__)


@bp.get("/")
@permission_required("home.view")
def home():
    """The signed-in user's start page."""
    return htmx.render("main/home.html", user=current_user)
