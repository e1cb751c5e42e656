"""Tag management (T1): groups and their tags, with inline htmx forms.

Each tag row and each group head is a self-replacing component (``hx-target="this"
hx-swap="outerHTML"``): its GET, edit and save all answer with the same partial. A
created item comes back together with a fresh empty form; a deleted or merged-away
one comes back empty (the row disappears). Without JavaScript every form posts
normally and the answer is a redirect to the page with a flashed message, or the
page with the error in place.
"""

from __future__ import annotations

from flask import Blueprint, abort, url_for
from flask_babel import lazy_gettext as _l

from blueprints import htmx
from blueprints.access import actor, permission_required
from blueprints.security import client_ip
from blueprints.tags.forms import GroupForm, MergeForm, TagForm
from extensions import db
from models import Tag, TagGroup
from services import tags
from services.errors import DomainError

bp = Blueprint("tags", __name__, url_prefix="/tags")

PAGE = "tags/index.html"


def _tag_or_404(tag_id: int) -> Tag:
    return tags.get_tag(tag_id) or abort(404)


def _group_or_404(group_id: int) -> TagGroup:
    return tags.get_group(group_id) or abort(404)


def _show(fragment: str, *, status: int = 200, toast=None, states=None, **context):
    """The fragment for an htmx swap, else the whole page with ``states`` applied:
    which row or form is in which mode, with which (possibly invalid) form."""
    states = states or {}
    if not htmx.wants_fragment():
        context = _page_context()
    return htmx.render(PAGE, fragment, status=status, toast=toast, states=states,
                       **_blank_forms(), **context)


def _blank_forms() -> dict:
    return {"blank_group_form": GroupForm(formdata=None), "blank_tag_form": TagForm(formdata=None)}


def _page_context() -> dict:
    return {"groups": tags.all_groups(), "usage": tags.usage_counts()}


def _done(fragment: str, message, **context):
    """After a change: the fragment with a toast for htmx, else a redirect to the
    page with the message flashed."""
    if htmx.wants_fragment():
        return _show(fragment, toast=message, **context)
    htmx.notify(message)
    return htmx.redirect(url_for("tags.index"))


def _row_context(tag: Tag, **state) -> dict:
    return {"tag": tag, "usage": tags.usage_counts([tag.id]),
            "states": {("tag", tag.id): state} if state else {}}


# ---- the page --------------------------------------------------------------------------

@bp.get("")
@permission_required("tag.manage")
def index():
    """Every group with its tags and how many customers and notes carry each."""
    return htmx.render(PAGE, "tags/_groups.html", states={}, **_blank_forms(), **_page_context())


# ---- groups ----------------------------------------------------------------------------

@bp.post("/groups")
@permission_required("tag.manage")
def create_group():
    """Add a group; answers the new group followed by a fresh form. 422 with the
    errors next to the fields."""
    form = GroupForm()
    if form.validate_on_submit():
        try:
            group = tags.create_group(actor(), form.name.data, form.colour.data, ip=client_ip())
        except DomainError as refused:
            form.refuse(refused)
        else:
            db.session.commit()
            return _done("tags/_group_created.html", _l("Group %(name)s created.", name=group.name),
                         group=group, usage={})
    return _show("tags/_new_group.html", status=422, states={"new_group": {"form": form}})


@bp.get("/groups/<id:group_id>")
@permission_required("tag.manage")
def group_head(group_id: int):
    """A group's head in its plain state (the Cancel of an edit)."""
    group = _group_or_404(group_id)
    return _show("tags/_group_head.html", group=group)


@bp.get("/groups/<id:group_id>/edit")
@permission_required("tag.manage")
def edit_group(group_id: int):
    """The group's head as a form: name and colour."""
    group = _group_or_404(group_id)
    form = GroupForm(obj=group)
    return _show("tags/_group_head.html", group=group,
                 states={("group", group.id): {"mode": "edit", "form": form}})


@bp.post("/groups/<id:group_id>")
@permission_required("tag.manage")
def update_group(group_id: int):
    """Rename or recolour a group; answers the whole group (its tags may follow the
    group's colour). 422 with the errors in place."""
    group = _group_or_404(group_id)
    form = GroupForm()
    if form.validate_on_submit():
        try:
            tags.update_group(actor(), group, name=form.name.data, colour=form.colour.data, ip=client_ip())
        except DomainError as refused:
            form.refuse(refused)
        else:
            db.session.commit()
            # Tags without their own colour follow the group: the whole group is redrawn.
            return _done("tags/_group.html", _l("Group %(name)s saved.", name=group.name),
                         group=group, usage=tags.usage_counts([t.id for t in group.tags]))
    # The form targets the whole group, so the errors come back in the whole group.
    return _show("tags/_group.html", status=422, group=group,
                 usage=tags.usage_counts([t.id for t in group.tags]),
                 states={("group", group.id): {"mode": "edit", "form": form}})


@bp.post("/groups/<id:group_id>/delete")
@permission_required("tag.manage")
def delete_group(group_id: int):
    """Delete an empty group: the group disappears. A group with tags is refused
    with 422 and the reason in its head."""
    group = _group_or_404(group_id)
    name = group.name
    try:
        tags.delete_group(actor(), group, ip=client_ip())
    except DomainError as refused:
        return _show("tags/_group.html", status=422, group=group,
                     usage=tags.usage_counts([t.id for t in group.tags]),
                     states={("group", group.id): {"error": refused.message}})
    db.session.commit()
    return _done("tags/_empty.html", _l("Group %(name)s deleted.", name=name))


# ---- tags ------------------------------------------------------------------------------

@bp.post("/groups/<id:group_id>/tags")
@permission_required("tag.manage")
def create_tag(group_id: int):
    """Add a tag to a group; answers the new row followed by a fresh form. 422 with
    the errors next to the fields."""
    group = _group_or_404(group_id)
    form = TagForm()
    if form.validate_on_submit():
        try:
            tag = tags.create_tag(actor(), group.id, form.name.data, form.colour.data, ip=client_ip())
        except DomainError as refused:
            form.refuse(refused)
        else:
            db.session.commit()
            return _done("tags/_tag_created.html", _l("Tag %(name)s created.", name=tag.name),
                         group=group, tag=tag, usage={})
    return _show("tags/_new_tag.html", status=422, group=group,
                 states={("new_tag", group.id): {"form": form}})


@bp.get("/<id:tag_id>")
@permission_required("tag.manage")
def tag_row(tag_id: int):
    """A tag's row in its plain state (the Cancel of an edit or a merge)."""
    return _show("tags/_tag_row.html", **_row_context(_tag_or_404(tag_id)))


@bp.get("/<id:tag_id>/edit")
@permission_required("tag.manage")
def edit_tag(tag_id: int):
    """The tag's row as a form: rename and colour."""
    tag = _tag_or_404(tag_id)
    return _show("tags/_tag_row.html", **_row_context(tag, mode="edit", form=TagForm(obj=tag)))


@bp.post("/<id:tag_id>")
@permission_required("tag.manage")
def update_tag(tag_id: int):
    """Rename or recolour a tag; it shows under its new name everywhere at once.
    422 with the errors in place."""
    tag = _tag_or_404(tag_id)
    form = TagForm()
    if form.validate_on_submit():
        try:
            tags.update_tag(actor(), tag, name=form.name.data, colour=form.colour.data, ip=client_ip())
        except DomainError as refused:
            form.refuse(refused)
        else:
            db.session.commit()
            return _done("tags/_tag_row.html", _l("Tag %(name)s saved.", name=tag.name), **_row_context(tag))
    return _show("tags/_tag_row.html", status=422, **_row_context(tag, mode="edit", form=form))


@bp.get("/<id:tag_id>/merge")
@permission_required("tag.manage")
def merge_form(tag_id: int):
    """The tag's row as a merge form: choose the tag to merge it into."""
    tag = _tag_or_404(tag_id)
    form = MergeForm().offer(tags.all_groups(), tag)
    return _show("tags/_tag_row.html", **_row_context(tag, mode="merge", form=form))


@bp.post("/<id:tag_id>/merge")
@permission_required("tag.manage")
def merge_tag(tag_id: int):
    """Merge the tag into another: its row disappears; out of band, the target's
    row shows the new counts and the group's head is redrawn. 422 with the error in
    place for a missing, unknown or identical target."""
    source = _tag_or_404(tag_id)
    form = MergeForm().offer(tags.all_groups(), source)
    if form.validate_on_submit():
        target = _tag_or_404(form.target_id.data)
        source_name, target_name, group = source.name, target.name, source.group
        try:
            tags.merge_tags(actor(), source, target, ip=client_ip())
        except DomainError as refused:
            form.refuse(refused)
        else:
            db.session.commit()
            message = _l("%(source)s merged into %(target)s.", source=source_name, target=target_name)
            return _done("tags/_tag_gone.html", message, group=group, **_row_context(target))
    return _show("tags/_tag_row.html", status=422, **_row_context(source, mode="merge", form=form))


@bp.post("/<id:tag_id>/delete")
@permission_required("tag.manage")
def delete_tag(tag_id: int):
    """Delete a tag and take it off every customer and note: the row disappears
    (and the group's head is redrawn out of band)."""
    tag = _tag_or_404(tag_id)
    name, group = tag.name, tag.group
    tags.delete_tag(actor(), tag, ip=client_ip())
    db.session.commit()
    return _done("tags/_tag_gone.html", _l("Tag %(name)s deleted.", name=name), group=group, tag=None)

