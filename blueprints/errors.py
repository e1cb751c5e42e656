"""Generic, translated error pages: a full page, or a small partial for htmx."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from blueprints import forms, htmx
from extensions import login_manager

MESSAGES = {
    400: (_l("Bad request"), _l("The request could not be understood. Reload the page and try again.")),
    403: (_l("Not allowed"), _l("Your role does not allow this. Ask an administrator if you need it.")),
    404: (_l("Not found"), _l("There is nothing here. It may have been moved or removed.")),
    405: (_l("Not allowed"), _l("This address does not accept that kind of request.")),
    413: (_l("Too large"), _l("What you sent is too large.")),
    429: (_l("Too many requests"), _l("Please wait a moment and try again.")),
    500: (_l("Something went wrong"), _l("The error has been logged. Please try again; nothing you saved before is lost.")),
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


def init_app(app) -> None:
    app.before_request(forms.clean_query_string)  # bad input is refused before any view reads it
    app.register_error_handler(CSRFError, _handle_csrf_error)
    app.register_error_handler(HTTPException, _handle_http_error)
    # An unexpected exception reaches the HTTPException handler as InternalServerError,
    # after Flask has logged its traceback.
