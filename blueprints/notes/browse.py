"""Reading notes across customers: the notes list with its tag filter (T2), the
note-quality view (N6), and @mention suggestions and read marks (N4)."""

from __future__ import annotations

from datetime import date

from flask import abort, request, url_for
from flask_babel import lazy_gettext as _l

from blueprints import htmx
from blueprints.access import actor, permission_required
from blueprints.notes import bp
from blueprints.tags.filter import toggle_tag_url
from extensions import db
from models import NoteKind
from services import mentions, notes_list, policy, tags
from services.ids import parse_bounded, parse_id, parse_ids, parse_page
from services.notes_list import NoteFilter

MAX_TAGS = 10


def _date(value: str | None) -> date | None:
    try:
        return date.fromisoformat((value or "").strip()) if value else None
    except ValueError:
        return None


def parse_filter(args) -> NoteFilter:
    """The list filter from URL arguments; unknown or malformed values are dropped,
    never an error (a bookmarked URL must keep working)."""
    kind = args.get("kind", "")
    author = args.get("author", "")
    return NoteFilter(
        kind=kind if kind in {k.value for k in NoteKind} else "",
        author=parse_id(author),
        tag_ids=parse_ids(args.getlist("tag"), limit=MAX_TAGS),
        date_from=_date(args.get("from")),
        date_to=_date(args.get("to")),
        q=args.get("q", "")[:100].strip(),
        page=parse_page(args.get("page"), 10_000),
    )


@bp.get("/notes")
@permission_required("note.read")
def index():
    """Every note the user may read, newest first, filtered by kind, author, tags
    (all must match), dates and words; htmx swaps only the results and the URL
    keeps the filter."""
    flt = parse_filter(request.args)
    page = notes_list.list_notes(actor(), flt)
    return htmx.render(
        "notes/index.html", "notes/_results.html", page=page, flt=flt, groups=tags.shown_groups(),
        authors=notes_list.authors(), toggle_tag_url=toggle_tag_url("notes.index", flt.as_args(), flt.tag_ids),
    )


@bp.get("/notes/quality")
@permission_required("quality.view")
def quality():
    """Note quality (N6): recent template notes with required sections left empty,
    and customers with no note for ``days`` days (1–365, default 30). htmx swaps
    the neglected-customers list only."""
    days = parse_bounded(request.args.get("days"), 30, 1, 365)
    page = parse_page(request.args.get("page"))
    neglected = notes_list.neglected_customers(actor(), days=days, page=page)
    if htmx.wants_fragment():
        return htmx.render("notes/quality.html", "notes/_neglected.html", neglected=neglected, days=days)
    return htmx.render("notes/quality.html", neglected=neglected, days=days,
                       incomplete=notes_list.incomplete_notes(actor()))


@bp.get("/mentions/suggest")
@permission_required("note.comment")
def mention_suggestions():
    """<option>s for a <datalist>: the typed text with its trailing "@prefix"
    completed to each matching active colleague."""
    text = request.args.get("mention") or request.args.get("body") or request.args.get("q") or ""
    return htmx.render("notes/suggestions.html", "notes/_suggestions.html",
                       options=mentions.completions(text), text=text)


@bp.post("/mentions/<id:mention_id>/read")
@permission_required("note.read")
def mention_read(mention_id: int):
    """Mark one of the user's mentions read and open its note. 404 for a mention
    that is not theirs."""
    mention = mentions.mark_mention_read(actor(), mention_id)
    if mention is None:
        abort(404)
    db.session.commit()
    if not policy.may_read_note(actor(), mention.note):
        if not htmx.is_htmx():
            htmx.notify(_l("That note is no longer there."), "info")
            return htmx.redirect(url_for("main.home"))
        return htmx.no_swap((_l("That note is no longer there."), "info"))
    return htmx.redirect(url_for("notes.show", note_id=mention.note_id))
