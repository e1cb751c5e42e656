"""The standard note templates (N2): administrators list, create and edit them."""

from __future__ import annotations

from flask import abort, request, url_for
from flask_babel import lazy_gettext as _l

from blueprints import htmx
from blueprints.access import actor, permission_required
from blueprints.notes import bp
from blueprints.notes.forms import NoteTemplateForm
from blueprints.security import client_ip
from extensions import db
from services import note_templates
from services.errors import DomainError
from services.note_templates import TemplateData


@bp.get("/note-templates")
@permission_required("note_template.manage")
def templates():
    """Every note template, active ones first."""
    return htmx.render("notes/templates.html", templates=note_templates.list_templates())


def _template_data(form: NoteTemplateForm) -> TemplateData:
    return TemplateData(name=form.name.data or "", kind=form.kind.data, prompts=form.prompts(),
                        required_sections=list(form.required_sections.data or []),
                        active=bool(form.active.data))


def _save(form: NoteTemplateForm, template=None):
    """Validate and save; None when refused (errors are on the form)."""
    if not form.validate_on_submit():
        return None
    try:
        if template is None:
            template = note_templates.create_template(actor(), _template_data(form), ip=client_ip())
        else:
            note_templates.update_template(actor(), template, _template_data(form), ip=client_ip())
    except DomainError as refused:
        form.refuse(refused)
        return None
    db.session.commit()
    return template


def _render(form, template, status=200):
    return htmx.render("notes/template_form.html", "notes/_template_form.html", form=form,
                       template=template, status=status)


@bp.route("/note-templates/new", methods=["GET", "POST"])
@permission_required("note_template.manage")
def new_template():
    """Create a template. 422 with the typed text kept for refused input."""
    form = NoteTemplateForm()
    if request.method == "POST":
        saved = _save(form)
        if saved is not None:
            htmx.notify(_l("Template %(name)s created.", name=saved.name))
            return htmx.redirect(url_for("notes.templates"))
    return _render(form, None, 422 if form.errors else 200)


@bp.route("/note-templates/<id:template_id>/edit", methods=["GET", "POST"])
@permission_required("note_template.manage")
def edit_template(template_id: int):
    """Edit a template; notes written from it keep their text. 404 for an unknown
    template, 422 for refused input."""
    template = note_templates.get(template_id) or abort(404)
    if request.method == "GET":
        form = NoteTemplateForm(formdata=None, obj=template)
        for name, prompt in (template.prompts or {}).items():
            if hasattr(form, f"prompt_{name}"):
                getattr(form, f"prompt_{name}").data = prompt
    else:
        form = NoteTemplateForm()
        if _save(form, template) is not None:
            htmx.notify(_l("Template %(name)s saved.", name=template.name))
            return htmx.redirect(url_for("notes.templates"))
    return _render(form, template, 422 if form.errors else 200)
