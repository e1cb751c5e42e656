"""Downloads (A3): the customer list, the notes list and the audit log for their
current filter, and one customer's whole record, as CSV or Excel.

Each view checks the permission, parses the same filter as its list page, writes
the audit line (with the row count) and commits it before the first byte leaves,
then streams: CSV while the rows are read, Excel from a temporary file written
row by row.
"""

from __future__ import annotations

from urllib.parse import quote

from flask import Blueprint, Response, abort, request, stream_with_context
from flask_babel import lazy_gettext as _l

from blueprints.access import actor, customer_or_404, permission_required
from blueprints.admin import audit_text
from blueprints.admin.forms import parse_audit_filter
from blueprints.customer_filter import parse_customer_filter
from blueprints.exports.columns import header, in_words
from blueprints.notes.browse import parse_filter as parse_note_filter
from blueprints.security import client_ip
from blueprints.i18n import file_stamp
from extensions import db
from models import utcnow
from services import audit, customers, exports
from services.office_time import utc_to_local
from services.spreadsheets import CSV_MIMETYPE, FORMATS, XLSX_MIMETYPE, Sheet, csv_chunks, file_chunks, write_xlsx

bp = Blueprint("exports", __name__)




def _format() -> str:
    """The format asked for (``?format=xlsx``; CSV by default). 400 for any other."""
    fmt = request.args.get("format", "csv")
    if fmt not in FORMATS:
        abort(400)
    return fmt


def _require_export() -> None:
    """403 unless the signed-in user may export (by role, or sales under the setting)."""
    if not exports.may_export(actor()):
        abort(403)


def _filename(stem: str, fmt: str) -> str:
    return f"{stem}-{file_stamp(utcnow())}.{fmt}"


def _download(chunks, fmt: str, filename: str) -> Response:
    response = Response(stream_with_context(chunks), mimetype=XLSX_MIMETYPE if fmt == "xlsx" else CSV_MIMETYPE)
    response.headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(filename)}"
    response.headers["Cache-Control"] = "no-store"  # customer data stays off shared caches and disks
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _stream(sheet_title, export: exports.Export, fmt: str, filename: str, audit_line) -> Response:
    """Audit (and commit) first, then stream the export as ``fmt``. For Excel the file
    is written before the line, so its count is exact; for CSV it is the count when
    the export began."""
    sheet = Sheet(str(sheet_title), header(export.columns), in_words(export.columns, export.rows))
    if fmt == "xlsx":
        file, (count,) = write_xlsx([sheet])
        audit_line(count)
        db.session.commit()
        return _download(file_chunks(file), fmt, filename)
    audit_line(export.count)
    db.session.commit()
    return _download(csv_chunks(sheet), fmt, filename)


@bp.get("/customers/export")
@permission_required("customer.view")
def customers_list():
    """The customer list for the filter in the URL (the list page's own arguments)."""
    _require_export()
    fmt = _format()
    flt = customers.allowed_filter(actor(), parse_customer_filter(request.args))
    export = exports.export_customers(actor(), flt)
    args = {key: value for key, value in flt.as_args().items() if key not in ("page", "sort")}

    def audit_line(rows):
        exports.record_export(actor(), "export.customers", fmt, rows, filter_args=args, ip=client_ip())

    return _stream(_l("Customers"), export, fmt, _filename("customers", fmt), audit_line)


@bp.get("/notes/export")
@permission_required("note.read")
def notes_list():
    """The notes list for the filter in the URL."""
    _require_export()
    fmt = _format()
    flt = parse_note_filter(request.args)
    export = exports.export_notes(actor(), flt)
    args = {key: value for key, value in flt.as_args().items() if key != "page"}

    def audit_line(rows):
        exports.record_export(actor(), "export.notes", fmt, rows, filter_args=args, ip=client_ip())

    return _stream(_l("Notes"), export, fmt, _filename("notes", fmt), audit_line)


RECORD_PARTS = {
    "fields": _l("Customer"), "notes": _l("Notes"), "comments": _l("Comments"), "tasks": _l("Follow-ups"),
    "pool": _l("Pool history"), "changes": _l("Change history"),
}


@bp.get("/customers/<id:customer_id>/export")
@permission_required("customer.view")
def customer_record(customer_id: int):
    """Everything kept about one customer (a customer asking to see their data): one
    Excel workbook, a sheet per part. 404 for a customer the user may not see, 403
    for one they may not export."""
    customer = customer_or_404(customer_id)
    if not exports.may_export_customer(actor(), customer):
        abort(403)
    parts = exports.customer_record(actor(), customer)
    sheets = [Sheet(str(RECORD_PARTS[name]), header(part.columns), in_words(part.columns, part.rows))
              for name, part in parts.items()]
    file, counts = write_xlsx(sheets)
    filename = _filename(f"customer-{customer.id}", "xlsx")
    exports.record_export(actor(), "export.customer_record", "xlsx", sum(counts), target=customer, ip=client_ip())
    db.session.commit()
    return _download(file_chunks(file), "xlsx", filename)


@bp.get("/admin/audit/export")
@permission_required("audit.view")
def audit_log():
    """The audit log for the audit page's filter, in words; itself audited."""
    fmt = _format()
    form, flt = parse_audit_filter(request.args)
    if form.errors:
        abort(400)
    export = exports.export_audit(audit.filtered_events(flt))

    def rows(events):
        for row in events:
            event = row["event"]
            yield {"at": utc_to_local(event.at), "who": event.actor_name,
                   "action": audit_text.kind_label(event.action), "object": audit_text.describe_target(event),
                   "ip": event.ip or "",
                   "details": "; ".join(audit_text.describe(event, audit_text.user_names([event])))}

    export.rows = rows(export.rows)

    def audit_line(count):
        exports.record_export(actor(), "export.audit", fmt, count, filter_args=flt.as_args(), ip=client_ip())

    return _stream(_l("Audit log"), export, fmt, _filename("audit", fmt), audit_line)


@bp.app_template_global("may_export")
def may_export_lists() -> bool:
    """For templates: whether to offer the export buttons (asked only where shown)."""
    return exports.may_export(actor())


@bp.app_template_global("may_export_customer")
def may_export_record(customer) -> bool:
    return exports.may_export_customer(actor(), customer)
