"""Importing customers (D3): upload a file, map its columns and choose what to do
with duplicates, tags and owners, check it (preview, rejected rows), import it,
and undo an import; the history of imports."""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Blueprint, Response, abort, request, url_for
from flask_babel import lazy_gettext as _l
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import RequestEntityTooLarge

from blueprints import htmx
from blueprints.access import actor, permission_required
from blueprints.forms import Form
from blueprints.imports.forms import DUPLICATE_LABELS, ROW_CHOICE_LABELS, UploadForm, options_form
from extensions import db
from models import ImportBatch, ImportStatus
from services import customers, import_files, import_jobs, imports
from services.errors import DomainError
from services.import_apply import undo_import, undone_text
from services.import_rows import FIELDS, problem_text
from services.ids import is_id

log = logging.getLogger(__name__)

bp = Blueprint("imports", __name__, url_prefix="/customers")

PROBLEMS_PER_PAGE = 50
STATUS_LABELS = {
    ImportStatus.UPLOADED: _l("Waiting to be checked"), ImportStatus.CHECKING: _l("Checking"),
    ImportStatus.READY: _l("Checked, not imported"), ImportStatus.IMPORTING: _l("Importing"),
    ImportStatus.DONE: _l("Imported"), ImportStatus.FAILED: _l("Stopped"), ImportStatus.UNDONE: _l("Undone"),
    ImportStatus.INTERRUPTED: _l("Interrupted"),
}
ROW_LABELS = {"new": _l("New"), "duplicate": _l("Duplicate"), "file_duplicate": _l("Twice in the file"),
              "invalid": _l("Rejected")}


@bp.record_once
def import_labels(state) -> None:
    """Labels and helpers as Jinja globals (the same for every render)."""
    state.app.jinja_env.globals.update(
        import_status_labels=STATUS_LABELS, import_row_labels=ROW_LABELS,
        import_fields=FIELDS, problem_text=problem_text, duplicate_labels=DUPLICATE_LABELS,
        row_choice_labels=ROW_CHOICE_LABELS, row_choices=imports.ROW_CHOICES,
        choice_rows=imports.CHOICE_ROWS)


def _settled() -> None:
    """Checks and imports whose process died show as interrupted, not running. A
    page only reads: when another process holds the database's write lock, they are
    settled at the next page instead."""
    try:
        if imports.settle_interrupted():
            db.session.commit()
    except OperationalError:
        db.session.rollback()
        log.info("imports: the database was busy; interrupted batches are settled later")


def _batch_or_404(batch_id: int) -> ImportBatch:
    _settled()
    batch = db.session.get(ImportBatch, batch_id) if is_id(batch_id) else None
    if batch is None:
        abort(404)
    return batch


def _upload_page(form: UploadForm, status: int = 200):
    return htmx.render("imports/upload.html", status=status, form=form,
                       max_mb=_max_mb(), max_rows=import_files.MAX_ROWS)


def _max_mb() -> int:
    from flask import current_app

    return current_app.config["IMPORT_MAX_BYTES"] // (1024 * 1024)


@bp.errorhandler(RequestEntityTooLarge)
def too_large(_error):
    """A body over MAX_CONTENT_LENGTH: the message goes next to the file field."""
    form = UploadForm(formdata=None)
    form.file.errors = [str(_l("The file is larger than %(mb)d MB: split it into smaller files.", mb=_max_mb()))]
    return _upload_page(form, 413)


@bp.route("/import", methods=["GET", "POST"])
@permission_required("customer.import")
def upload():
    """The upload form; a good file becomes a batch and is checked at once (in the
    background for a large file); a bad one is refused next to the file field."""
    form = UploadForm()
    if not form.validate_on_submit():
        return _upload_page(form, 422 if form.errors else 200)
    file = request.files.get("file")
    if file is None or not file.filename:
        form.file.errors = [str(_l("Choose a file."))]
        return _upload_page(form, 422)
    try:
        batch = imports.receive_file(actor(), file.filename, file.save, request.content_length)
    except DomainError as refused:
        db.session.rollback()
        form.refuse(refused, "file")
        return _upload_page(form, 422)
    db.session.commit()
    batch_id = batch.id
    import_jobs.start(import_jobs.CHECK, batch, actor())
    return htmx.redirect(url_for("imports.batch_page", batch_id=batch_id))


def _owner_choices() -> list[tuple[str, str]]:
    return [(str(user.id), user.display_name) for user in customers.owner_choices()]


def _options_form(batch: ImportBatch, formdata=None):
    options = batch.options
    data = {f"column_{i}": name for i, name in enumerate(options.get("mapping", []))}
    data.update(duplicates=options.get("duplicates"), tags=options.get("tags"), owner=options.get("owner"),
                override_limit=options.get("override_limit"))
    form = options_form(batch.headers, _owner_choices(), formdata=formdata, data=data)
    if not import_jobs.may_override(actor()):
        del form.override_limit
    return form


@bp.get("/imports/<id:batch_id>")
@permission_required("customer.import")
def batch_page(batch_id: int, form=None, status: int = 200):
    """One import: its progress while it runs; the mapping, choices, counts and
    preview once checked; what it did once imported."""
    batch = _batch_or_404(batch_id)
    report = imports.read_report(batch) if batch.status in (ImportStatus.READY, ImportStatus.FAILED) else None
    problems, pages, page = [], 1, max(1, request.args.get("page", 1, type=int) or 1)
    if report:
        pages = max(1, -(-len(report["problems"]) // PROBLEMS_PER_PAGE))
        page = min(page, pages)
        problems = report["problems"][(page - 1) * PROBLEMS_PER_PAGE : page * PROBLEMS_PER_PAGE]
    mapped = [name for name in dict.fromkeys(batch.options.get("mapping", [])) if name]
    return htmx.render("imports/batch.html", "imports/_problems.html", status=status, batch=batch,
                       form=form or _options_form(batch), report=report, problems=problems, page=page,
                       pages=pages, mapped=mapped, may_undo=imports.may_undo(batch),
                       undo_until=imports.undo_until(batch), action_form=Form())


@bp.get("/imports/<id:batch_id>/progress")
@permission_required("customer.import")
def progress(batch_id: int):
    """The progress bar, polled while the batch runs; once it has ended, the page
    reloads to show the result."""
    batch = _batch_or_404(batch_id)
    if batch.status not in ImportStatus.RUNNING:
        return htmx.refresh()
    return htmx.render("imports/_progress.html", "imports/_progress.html", batch=batch)


@bp.post("/imports/<id:batch_id>/options")
@permission_required("customer.import")
def options(batch_id: int):
    """Change the mapping and choices, and check the file again."""
    batch = _batch_or_404(batch_id)
    form = _options_form(batch, formdata=request.form)
    if not form.validate():
        return batch_page(batch_id, form=form, status=422)
    chosen = {"mapping": form.mapping(), "duplicates": form.duplicates.data, "tags": form.tags.data,
              "owner": form.owner.data,
              "override_limit": bool(form.override_limit.data) if "override_limit" in form else False}
    try:
        imports.set_options(actor(), batch, chosen)
    except DomainError as refused:
        db.session.rollback()
        form.refuse(refused, refused.field if refused.field in form else None)
        return batch_page(batch_id, form=form, status=422)
    db.session.commit()
    import_jobs.start(import_jobs.CHECK, batch, actor())
    return htmx.redirect(url_for("imports.batch_page", batch_id=batch_id))


def _start_import(batch: ImportBatch, prepare: Callable[[], None]):
    """The tail of confirming and resuming: ``prepare`` the batch (a DomainError
    is a refusal, shown as a notice), commit, and import it (in the background for
    a large file); either way, back to the batch's page."""
    batch_id = batch.id
    try:
        prepare()
    except DomainError as refused:
        db.session.rollback()
        htmx.notify(refused.message, "error")
    else:
        db.session.commit()
        import_jobs.start(import_jobs.IMPORT, batch, actor())
    return htmx.redirect(url_for("imports.batch_page", batch_id=batch_id))


@bp.post("/imports/<id:batch_id>/import")
@permission_required("customer.import")
def run_import(batch_id: int):
    """Import a checked batch (in the background for a large file), with the
    choice made for each duplicate row of the preview (``dup_<row>`` fields)."""
    batch = _batch_or_404(batch_id)
    if not Form().validate():
        abort(400)
    per_row = {key[4:]: value for key, value in request.form.items()
               if key.startswith("dup_") and key[4:].isdigit() and len(key) < 16}
    return _start_import(batch, lambda: import_jobs.confirm(actor(), batch, per_row))


@bp.post("/imports/<id:batch_id>/resume")
@permission_required("customer.import")
def resume(batch_id: int):
    """Go on with an interrupted import after the rows it had imported."""
    batch = _batch_or_404(batch_id)
    if not Form().validate():
        abort(400)
    return _start_import(batch, lambda: import_jobs.resume(actor(), batch))


@bp.post("/imports/<id:batch_id>/undo")
@permission_required("customer.import")
def undo(batch_id: int):
    """Undo an import: archive what it created, put back what it filled."""
    batch = _batch_or_404(batch_id)
    if not Form().validate():
        abort(400)
    try:
        counts = undo_import(actor(), batch)
    except DomainError as refused:
        db.session.rollback()
        htmx.notify(refused.message, "error")
        return htmx.redirect(url_for("imports.batch_page", batch_id=batch_id))
    db.session.commit()
    htmx.notify(undone_text(batch, counts))
    return htmx.redirect(url_for("imports.batch_page", batch_id=batch_id))


@bp.get("/imports/<id:batch_id>/rejected.csv")
@permission_required("customer.import")
def rejected(batch_id: int):
    """The rows the check rejected, with a reason column, as CSV (UTF-8 with a BOM,
    so Excel opens it with the Chinese intact), to fix and import again."""
    batch = _batch_or_404(batch_id)
    return Response(imports.rejected_csv(batch), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="rejected-{batch.id}.csv"'})


@bp.get("/imports")
@permission_required("customer.import")
def history():
    """Every import, newest first, with its counts and an undo while allowed;
    one whose process died shows as interrupted."""
    _settled()
    return htmx.render("imports/history.html", batches=imports.recent_batches(),
                       may_undo=imports.may_undo, action_form=Form())
