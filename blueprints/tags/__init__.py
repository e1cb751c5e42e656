"""Tags: views (being built)."""

from flask import Blueprint

bp = Blueprint("tags", __name__)
