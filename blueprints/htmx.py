"""The htmx glue, in one place: whether a request wants a fragment, rendering the
page or the fragment, and response headers that drive the client (toasts,
redirects). htmx-flask is used here only, so it can be swapped without touching views.
"""

from __future__ import annotations

import json

from flask import Response, render_template
from htmx_flask import make_response
from htmx_flask import request as htmx_request


def wants_fragment() -> bool:
    """True for an htmx request that will swap part of the page. A boosted
    navigation or a history restore wants the whole page."""
    hx = htmx_request.htmx
    return bool(hx) and not hx.boosted and not hx.history_restore_request


def is_htmx() -> bool:
    return bool(htmx_request.htmx)


def render(
    page: str, fragment: str | None = None, /, *, status: int = 200, toast=None,
    undo_url: str | None = None, **context,
) -> Response:
    """Render ``page``, or ``fragment`` when the request is an htmx swap. Always sets
    ``Vary: HX-Request`` so no cache mixes the two. ``toast`` (text or (text, level))
    is shown by the client after the swap, or on the page itself when a whole page
    is rendered (flashed through :func:`notify`)."""
    swap = wants_fragment()
    if toast is not None and not swap:
        notify(*(toast if isinstance(toast, tuple) else (toast,)))
    template = fragment if fragment and swap else page
    response = make_response(render_template(template, **context), status)
    response.vary.add("HX-Request")
    if toast is not None and swap:
        add_toast(response, toast, undo_url=undo_url)
    return response


def fragment(template: str, /, **options) -> Response:
    """Render the partial ``template`` for every request, htmx or not: for the
    endpoints whose answer is only ever a piece of a page (a table row, a dropdown, a
    panel). ``options`` as for :func:`render` (``status``, ``toast``, ``undo_url``,
    the template's context)."""
    return render(template, template, **options)


def add_toast(response: Response, toast, *, undo_url: str | None = None) -> Response:
    """Ask the client to show a toast: ``toast`` is a message or (message, level),
    level being "success" (default), "info" or "error". With ``undo_url`` the toast
    carries an Undo button that POSTs there."""
    message, level = toast if isinstance(toast, tuple) else (toast, "success")
    triggers = json.loads(response.headers.get("HX-Trigger", "{}"))
    triggers["toast"] = {"message": str(message), "level": level}
    if undo_url:
        triggers["toast"]["undo"] = undo_url
    # json.dumps escapes non-ASCII, so Chinese text survives the latin-1 header.
    response.headers["HX-Trigger"] = json.dumps(triggers)
    return response


def add_event(response: Response, name: str) -> Response:
    """Fire the client event ``name`` after this response (``HX-Trigger``), so other
    parts of the page can refresh themselves with ``hx-trigger="name from:body"``."""
    triggers = json.loads(response.headers.get("HX-Trigger", "{}"))
    triggers[name] = True
    response.headers["HX-Trigger"] = json.dumps(triggers)
    return response


def redirect(url: str, *, status: int = 303) -> Response:
    """Redirect the whole browser: ``HX-Redirect`` for htmx requests (so a page never
    lands inside a fragment), an ordinary 303 otherwise."""
    from flask import redirect as flask_redirect

    if is_htmx():
        response = make_response("", 204, redirect=url)
    else:
        response = flask_redirect(url, code=status)
    response.vary.add("HX-Request")
    return response


def notify(message, level: str = "success") -> None:
    """Show ``message`` as a toast on the next full page (after a redirect). The only
    way views flash: always plain text, because a lazy translation with a name in it
    is Markup-like and would reach the session and the template marked safe, so a
    task title or a customer's name would be HTML there. (Toasts in ``HX-Trigger``
    are plain text too: see :func:`add_toast`.)"""
    from flask import flash

    flash(str(message), level)


def refresh() -> Response:
    """Reload the current page (after an Undo, say); flash a message to show after."""
    response = make_response("", 204, refresh=True)
    response.vary.add("HX-Request")
    return response


def no_swap(toast=None) -> Response:
    """204: nothing to swap (htmx leaves the page as it is), with an optional toast."""
    response = make_response("", 204)
    response.vary.add("HX-Request")
    if toast is not None:
        add_toast(response, toast)
    return response
