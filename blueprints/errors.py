"""Generic, translated error pages: a full page, or a small partial for htmx."""

from __future__ import annotations

import errno

from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

from blueprints import forms, htmx
from extensions import db, login_manager

MESSAGES = {
    400: (_l("Bad request"), _l("The request could not be understood. Reload the page and try again.")),
    403: (_l("Not allowed"), _l("Your role does not allow this. Ask an administrator if you need it.")),
    404: (_l("Not found"), _l("There is nothing here. It may have been moved or removed.")),
    405: (_l("Not allowed"), _l("This address does not accept that kind of request.")),
    413: (_l("Too large"), _l("What you sent is too large.")),
    429: (_l("Too many requests"), _l("Please wait a moment and try again.")),
    500: (_l("Something went wrong"),
          _l("The error has been logged. Please try again; nothing you saved before is lost.")),
    507: (_l("Disk full"), _l("The server's disk is full: your change was not saved. "
                             "Tell your administrator, and try again once space is freed.")),
}


def render_error(code: int):
    title, message = MESSAGES.get(code, MESSAGES[500])
    return htmx.render(
        "errors/page.html", "errors/_error.html", status=code, code=code, title=title, message=message
    )


def _handle_http_error(error: HTTPException):
    return render_error(error.code or 500)


def _handle_csrf_error(_error: CSRFError):
    # A signed-out browser has lost its CSRF token with its session: send it to the
    # login page rather than calling its request malformed.
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    return render_error(400)


def is_disk_full(error: Exception) -> bool:
    """Whether ``error`` says the disk is full: an OSError (the search index, a
    file), SQLite's "database or disk is full", PostgreSQL's disk_full (53100)."""
    if isinstance(error, OSError):
        return error.errno == errno.ENOSPC
    cause = getattr(error, "orig", None)
    return "database or disk is full" in str(cause) or getattr(cause, "sqlstate", None) == "53100"


def _handle_storage_error(error: Exception):
    if not is_disk_full(error):
        raise error  # logged with its traceback, then the generic 500 page
    db.session.rollback()
    return htmx.add_toast(render_error(507), (str(MESSAGES[507][1]), "error"))


def init_app(app) -> None:
    app.before_request(forms.clean_query_string)  # bad input is refused before any view reads it
    app.register_error_handler(CSRFError, _handle_csrf_error)
    app.register_error_handler(HTTPException, _handle_http_error)
    app.register_error_handler(OSError, _handle_storage_error)
    app.register_error_handler(OperationalError, _handle_storage_error)
    # An unexpected exception reaches the HTTPException handler as InternalServerError,
    # after Flask has logged its traceback.
