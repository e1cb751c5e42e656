"""The notes of one customer: quick entry (N3), paging back in time, a note on its
own, edit with revisions and delete (N5), comments (N4)."""

from __future__ import annotations

import re

from flask import abort, request, url_for
from flask_babel import lazy_gettext as _l

from blueprints import htmx
from blueprints.access import actor, customer_or_404, note_or_404, permission_required
from blueprints.i18n import join_sentences, local_date, local_list
from blueprints.notes import bp, new_note_form, note_form_context
from blueprints.notes.forms import SECTION_LABELS, CommentForm
from blueprints.security import client_ip
from extensions import commit_keeping_loaded, db, reading_only
from models import NoteTemplate
from services import notes
from services.errors import DomainError
from services.notes import NoteData
from services.office_time import local_to_utc, utc_to_local


def _names(text: str | None) -> list[str]:
    return [name for name in re.split(r"[\s,，、;；]+", text or "") if name]


def note_data(form, *, with_follow_up: bool = True) -> NoteData:
    contacted = form.contacted_at.data
    return NoteData(
        kind=form.kind.data, body=form.body.data or "", sections=form.sections(),
        template_id=form.template_id.data, tag_ids=list(form.tags.data or []),
        contacted_at=local_to_utc(contacted) if contacted else None,
        follow_up_on=form.follow_up_on.data if with_follow_up else None,
        notify=_names(form.mention.data),
    )


def _saved_message(saved: notes.SavedNote, done):
    """The toast after a save: what happened, and what the author should know."""
    parts = [str(done)]
    if saved.task is not None:
        parts.append(str(_l("Follow-up on %(date)s.", date=local_date(saved.task.due_date))))
    if saved.missing_sections:
        missing = local_list(str(SECTION_LABELS[name]) for name in saved.missing_sections)
        parts.append(str(_l("Still empty: %(sections)s.", sections=missing)))
    if saved.unreachable:
        names = local_list(user.display_name for user in saved.unreachable)
        parts.append(str(_l("Not notified, they may not read this customer: %(names)s.", names=names)))
    level = "info" if saved.unreachable or saved.missing_sections else "success"
    return join_sentences(parts), level


def _render_form(customer, form, *, status=200, autofocus=False):
    return htmx.render(
        "notes/new.html", "notes/_form.html", status=status, customer=customer, note_form=form,
        note_autofocus=autofocus,
        note_page=notes.customer_notes(actor(), customer) if not htmx.wants_fragment() else None,
        **note_form_context(actor(), customer),
    )


@bp.post("/customers/<id:customer_id>/notes")
@permission_required("note.create")
def create(customer_id: int):
    """Save a quick-entry note. htmx gets a fresh form plus the note for the top of
    the list (out of band); a plain form post is redirected to the customer page.
    422 with the typed text kept when the input is refused; 403 on an archived
    customer; 404 for a customer the user may not see."""
    customer = customer_or_404(customer_id, "note.create", brief=True)
    form = new_note_form(actor(), formdata=request.form)
    if form.validate_on_submit():
        try:
            saved = notes.create_note(actor(), customer, note_data(form), ip=client_ip())
        except DomainError as refused:
            form.refuse(refused)
        else:
            # The answer shows what this request holds (not read again after the
            # commit), and reads what else it needs without the write lock.
            commit_keeping_loaded()
            with reading_only():
                message = _saved_message(saved, _l("Note saved."))
                if not htmx.wants_fragment():
                    htmx.notify(*message)
                    return htmx.redirect(_customer_url(customer.id, saved.note.id))
                response = htmx.fragment(
                    "notes/_created.html", toast=message, customer=customer,
                    note=saved.note, note_form=new_note_form(actor(), choices_from=form), note_autofocus=True,
                    **note_form_context(actor(), customer),
                )
            if form.follow_up_on.data:
                htmx.add_event(response, "tasks-changed")  # the follow-up section reloads
            return response
    _choose_template(form)
    return _render_form(customer, form, status=422, autofocus=True)


def _customer_url(customer_id: int, note_id: int | None = None) -> str:
    anchor = f"note-{note_id}" if note_id else None
    return url_for("customers.detail", customer_id=customer_id, _anchor=anchor)


@bp.get("/customers/<id:customer_id>/notes/new")
@permission_required("note.create")
def new(customer_id: int):
    """The quick-entry form. Choosing a template re-renders it (htmx) with the
    template's kind and its prompts as the sections' placeholders; typed text is
    kept."""
    customer = customer_or_404(customer_id, "note.create")
    form = new_note_form(actor(), formdata=request.args if request.args else None)
    if "template_id" in request.args:
        _prefill(form)
    return _render_form(customer, form)


def _prefill(form) -> None:
    """Show the chosen template's prompts as the sections' placeholders (text typed
    is the user's own; a prompt an older form put into a section is taken out), and
    preset its kind if the user may write it."""
    template = _choose_template(form)
    prompts = {p.strip() for t in notes.active_templates() for p in (t.prompts or {}).values() if p.strip()}
    for name in notes.SECTIONS:
        if (getattr(form, name).data or "").strip() in prompts:
            getattr(form, name).data = ""
    if template and template.kind in dict(form.kind.choices):
        form.kind.data = template.kind


def _choose_template(form) -> NoteTemplate | None:
    """The form's active template (None for none or an inactive one): its prompts
    become the sections' placeholders, and a section it requires says so under the
    field, named as the toast names it ("Still empty: …")."""
    template = db.session.get(NoteTemplate, form.template_id.data) if form.template_id.data else None
    if template is not None and not template.active:
        template = None
    form.template_id.data = template.id if template else None
    form.section_prompts = notes.prefilled_sections(template)
    for name in (template.required_sections or []) if template else []:
        if name in notes.SECTIONS:
            getattr(form, name).description = _l("Required by the template %(name)s.", name=template.name)
    return template


@bp.get("/customers/<id:customer_id>/notes")
@permission_required("customer.view")
def customer_notes(customer_id: int):
    """The customer's notes, newest first, ``before`` a cursor: htmx gets the next
    page and a new "older" button in place of the old one. 400 for a malformed
    cursor, 404 for a customer the user may not see."""
    customer = customer_or_404(customer_id)
    try:
        page = notes.customer_notes(actor(), customer, before=request.args.get("before"))
    except ValueError:
        abort(400)
    return htmx.render("notes/customer_notes.html", "notes/_page.html", customer=customer, note_page=page)


@bp.get("/notes/<id:note_id>")
@permission_required("note.read")
def show(note_id: int):
    """One note with its comments (also what an edit's Cancel swaps back in). 404
    for a note the user may not read."""
    note = note_or_404(note_id)
    return htmx.render("notes/note.html", "notes/_note.html", note=note, customer=note.customer)


def _edit_data(note) -> dict:
    data = {"kind": note.kind, "body": note.body, "tags": [tag.id for tag in note.tags],
            "template_id": note.template_id,
            "contacted_at": utc_to_local(note.contacted_at) if note.contacted_at else None}
    data.update({name: (note.sections or {}).get(name, "") for name in notes.SECTIONS})
    return data


@bp.route("/notes/<id:note_id>/edit", methods=["GET", "POST"])
@permission_required("note.edit")
def edit(note_id: int):
    """Edit a note in place; the previous content is kept as a revision. 403 unless
    the author or a manager; 404 for a note the user may not read; 422 with the
    typed text kept for refused input."""
    note = note_or_404(note_id, "note.edit")
    if request.method == "GET":
        form = new_note_form(actor(), data=_edit_data(note))
    else:
        form = new_note_form(actor(), formdata=request.form)
        form.template_id.data = note.template_id
        if form.validate_on_submit():
            try:
                saved = notes.edit_note(actor(), note, note_data(form, with_follow_up=False), ip=client_ip())
            except DomainError as refused:
                form.refuse(refused)
            else:
                db.session.commit()
                message = _saved_message(saved, _l("Note updated."))
                if not htmx.wants_fragment():
                    htmx.notify(*message)
                    return htmx.redirect(_customer_url(note.customer_id, note.id))
                return htmx.fragment("notes/_note.html", note=note, toast=message)
    return htmx.render("notes/edit.html", "notes/_edit_form.html", note=note, note_form=form,
                       note_tag_groups=note_form_context(actor(), note.customer)["note_tag_groups"],
                       status=422 if form.errors else 200)


@bp.post("/notes/<id:note_id>/delete")
@permission_required("note.delete")
def delete(note_id: int):
    """Delete a note (audited); htmx swaps the note away. 403 unless its author
    within 15 minutes or a manager; 404 for a note the user may not read."""
    note = note_or_404(note_id, "note.delete")
    try:
        notes.delete_note(actor(), note, ip=client_ip())
    except DomainError:
        abort(403)
    db.session.commit()
    if not htmx.wants_fragment():
        htmx.notify(_l("Note deleted."))
        return htmx.redirect(_customer_url(note.customer_id))
    return htmx.fragment("notes/_deleted.html", toast=_l("Note deleted."))


@bp.get("/notes/<id:note_id>/revisions")
@permission_required("note.read")
def revisions(note_id: int):
    """Earlier versions of a note, newest first. 404 for a note the user may not
    read."""
    note = note_or_404(note_id)
    return htmx.render("notes/revisions.html", "notes/_revisions.html", note=note,
                       revisions=notes.revisions(note))


@bp.post("/notes/<id:note_id>/comments")
@permission_required("note.comment")
def comment(note_id: int):
    """Add a short comment under a note. htmx gets a fresh comment form plus the
    comment (out of band); 422 with the text kept when refused; 404 for a note the
    user may not read, 403 on an archived customer."""
    note = note_or_404(note_id, "note.comment")
    form = CommentForm()
    if form.validate_on_submit():
        try:
            added, unreachable = notes.add_comment(actor(), note, form.body.data)
        except DomainError as refused:
            form.refuse(refused)
        else:
            db.session.commit()
            message = (str(_l("Comment added.")), "success")
            if unreachable:
                names = local_list(user.display_name for user in unreachable)
                message = (str(_l("Comment added. Not notified, they may not read this customer: %(names)s.",
                                  names=names)), "info")
            if not htmx.wants_fragment():
                htmx.notify(*message)
                return htmx.redirect(url_for("notes.show", note_id=note.id))
            return htmx.fragment("notes/_comment_added.html", toast=message,
                                 note=note, comment=added, comment_form=CommentForm(formdata=None))
    return htmx.render("notes/note.html", "notes/_comment_form.html", status=422, note=note,
                       customer=note.customer, comment_form=form)
