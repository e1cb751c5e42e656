"""Notes (N1–N6): the notes section of the customer page (quick entry, paging back in
time, edit, revisions, delete, comments, @mentions), the notes list, the quality
view, and the note templates administrators edit.

Views live in ``entry`` (the customer page's notes), ``browse`` (notes list,
quality view, mentions) and ``admin`` (templates); this module holds the blueprint
and what the customer page needs from it.
"""

from __future__ import annotations

import re

from flask import Blueprint
from markupsafe import Markup, escape

from models import Customer, User
from services import notes, policy, tags

bp = Blueprint("notes", __name__)


def new_note_form(user: User, *, formdata=None, data: dict | None = None, choices_from=None):
    """A note form with the kinds ``user`` may write and the active templates:
    empty, filled from ``formdata`` (a submitted form) or from ``data`` (a note).
    ``choices_from``: a form this function made earlier in the request, whose
    template choices are taken instead of reading the templates again."""
    from flask_babel import lazy_gettext as _l

    from blueprints.notes.forms import NoteForm, kind_choices

    form = NoteForm(formdata=formdata, data=data)
    form.kind.choices = kind_choices(policy.note_kinds_for(user))
    if choices_from is not None:
        form.template_id.choices = list(choices_from.template_id.choices)
    else:
        form.template_id.choices = [("", _l("No template"))] + [(t.id, t.name) for t in notes.active_templates()]
    return form


def note_form_context(user: User, customer: Customer) -> dict:
    """What templates/notes/_form.html needs besides the form."""
    return {
        "note_tag_groups": tags.shown_groups(),
        "note_may_follow_up": policy.may(user, "task.create", customer),
    }


def customer_notes_context(user: User, customer: Customer) -> dict:
    """Everything templates/notes/_section.html needs on the customer page: the
    quick-entry form (only when ``user`` may write here) and the first page of the
    notes ``user`` may read, newest first, and whether others exist that ``user``
    may not read. Reads only; no count over all notes."""
    context = {"note_page": notes.customer_notes(user, customer), "note_form": None,
               "notes_hidden": notes.has_unreadable_notes(user, customer)}
    if policy.may(user, "note.create", customer):
        context["note_form"] = new_note_form(user)
        context.update(note_form_context(user, customer))
    return context


_MENTION_HTML = re.compile(r"(?<![\w@.])@([a-z0-9][a-z0-9._-]{1,31})", re.ASCII | re.IGNORECASE)


@bp.app_template_filter("note_text")
def note_text(text: str) -> Markup:
    """Note or comment text, escaped (markup typed by users stays text), with
    @mentions marked. Line breaks are kept by CSS (white-space: pre-line)."""
    escaped = str(escape(text or ""))
    return Markup(_MENTION_HTML.sub(r'<span class="mention">@\1</span>', escaped))


@bp.record_once
def note_labels(state) -> None:
    """The labels as Jinja globals: the same for every render (lazy translations), and
    seen by macros imported without the caller's context (cached once, not remade
    for each note)."""
    from blueprints.notes.forms import KIND_LABELS, SECTION_LABELS

    state.app.jinja_env.globals.update(note_kind_labels=KIND_LABELS, note_section_labels=SECTION_LABELS)


from blueprints.notes import admin, browse, entry  # noqa: E402,F401  (views register on bp)
