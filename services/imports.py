"""Importing customers from CSV / Excel (D3): upload, check (the preview and the dry
run), import, undo.

An import is a batch (models.ImportBatch). The upload is stored under
instance/imports/<id>/, with its rows as read then (the file is parsed once);
checking reads them all and stores a report there (the first rows as they will be
saved, every row with a problem); importing reads them again and writes CHUNK
rows per transaction, with one search-index update per transaction; every row it
created or filled is recorded (models.ImportRow), so that an undo within UNDO_DAYS
is exact.

Checking and importing are jobs (:mod:`services.import_jobs`): unlike other
services they commit, once per chunk, so that 50,000 rows are neither one huge
transaction nor 50,000 small ones.
"""

from __future__ import annotations

import csv
import io
import json
import os
import secrets
import shutil
from contextlib import contextmanager
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from typing import cast

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select, update
from sqlalchemy.engine import CursorResult

from extensions import db
from models import ImportBatch, ImportMapping, ImportStatus, User, utcnow
from services import audit, import_files, policy
from services.errors import DomainError
from services.import_rows import FIELDS, clean_mapping, guess_mapping, headers_key, problem_text

CHUNK = 500
PREVIEW_ROWS = 50
CHOICE_ROWS = 200  # duplicate rows the preview offers a choice for, each

UNDO_DAYS = 7
DUPLICATE_CHOICES = ("skip", "fill", "create")
# A row twice in the file has no existing customer of its own to fill.
ROW_CHOICES = {"duplicate": DUPLICATE_CHOICES, "file_duplicate": ("skip", "create")}
TAG_CHOICES = ("create", "drop")


def folder(batch: ImportBatch) -> Path:
    return Path(current_app.instance_path) / "imports" / str(batch.id)


def source_path(batch: ImportBatch) -> Path:
    return folder(batch) / batch.stored_name


def rows_path(batch: ImportBatch) -> Path:
    """The file's rows as read at upload (import_files.keep_rows)."""
    return folder(batch) / "rows.pickle"


@contextmanager
def open_rows(batch: ImportBatch):
    """The batch's header and rows (an import_files.Sheet), for every reader of
    them: those kept at upload, else (a batch uploaded before rows were kept) the
    file itself, read again. Raises BadFile for a damaged file."""
    with import_files.open_kept(rows_path(batch)) as sheet:
        if sheet is not None:
            yield sheet
            return
    with import_files.open_sheet(source_path(batch), batch.file_kind) as sheet:
        yield sheet


def _report_path(batch: ImportBatch) -> Path:
    return folder(batch) / "report.json"


# ---- upload ---------------------------------------------------------------------------

def remembered_mapping(headers: list[str]) -> list[str] | None:
    row = db.session.get(ImportMapping, headers_key(headers))
    return clean_mapping(row.mapping, len(headers)) if row else None


def remember_mapping(actor: User | None, headers: list[str], mapping: list[str]) -> None:
    """Keep ``mapping`` as the one to offer next time these headers come."""
    row = db.session.get(ImportMapping, headers_key(headers)) or ImportMapping(key=headers_key(headers))
    row.mapping, row.updated_by_id, row.updated_at = mapping, actor.id if actor else None, utcnow()
    db.session.add(row)


def _keep_rows(path: Path, kind: str, kept: Path) -> tuple[list[str], int]:
    """Read the uploaded file once: its header, and its rows kept in ``kept``."""
    with import_files.open_sheet(path, kind) as sheet:
        return sheet.headers, import_files.keep_rows(sheet, kept)


def receive_file(actor: User | None, file_name: str, save, size: int | None = None) -> ImportBatch:
    """Store an uploaded file (``save(path)`` writes it) as a new batch, with the
    column mapping last used for its headers or one guessed from them. Raises
    BadFile (field "file") for a file that is not a spreadsheet, empty, too large,
    over MAX_ROWS rows, or without a name column; nothing is kept then."""
    kind = import_files.file_kind(file_name)
    limit = current_app.config["IMPORT_MAX_BYTES"]
    if size is not None and size > limit:
        raise _too_large(limit)
    base = Path(current_app.instance_path) / "imports"
    base.mkdir(parents=True, exist_ok=True)
    upload = base / f"upload-{secrets.token_hex(8)}.{kind}"
    kept = upload.with_suffix(".rows")
    try:
        save(upload)
        if upload.stat().st_size > limit:
            raise _too_large(limit)
        headers, rows = _keep_rows(upload, kind, kept)
        mapping = remembered_mapping(headers) or guess_mapping(headers)
        if "name" not in mapping:
            raise import_files.BadFile(_l(
                "No name column: the first row must name the columns, one of them 姓名, 客户名称 or Name."))
        if rows == 0:
            raise import_files.BadFile(_l("The file has a header row but no customers."))
        batch = ImportBatch(user_id=actor.id if actor else None, file_name=os.path.basename(file_name)[:255],
                            file_kind=kind, stored_name=f"source.{kind}", headers=headers, total_rows=rows,
                            status=ImportStatus.UPLOADED, options=default_options(mapping), counts={})
        db.session.add(batch)
        db.session.flush()
        folder(batch).mkdir(parents=True, exist_ok=True)
        shutil.move(kept, rows_path(batch))
        shutil.move(upload, source_path(batch))
        return batch
    finally:
        upload.unlink(missing_ok=True)
        kept.unlink(missing_ok=True)


def _too_large(limit: int) -> import_files.BadFile:
    return import_files.BadFile(_l("The file is larger than %(mb)d MB: split it into smaller files.",
                                   mb=limit // (1024 * 1024)))


def default_options(mapping: list[str]) -> dict:
    return {"mapping": mapping, "duplicates": "skip", "tags": "create", "owner": "pool",
            "override_limit": False}


def set_options(actor: User | None, batch: ImportBatch, options: dict) -> None:
    """Change the mapping and choices of a batch not yet imported; the file must be
    checked again. Raises DomainError for a batch already imported, a mapping
    without a name column, an owner who may not own customers, or a limit
    override by someone who may not assign customers (``actor`` None is the
    command line, run by whoever runs the server)."""
    if batch.status not in (ImportStatus.UPLOADED, ImportStatus.READY, ImportStatus.FAILED) \
            or batch.counts.get("imported"):
        raise DomainError(_l("This import cannot be changed any more."))
    mapping = clean_mapping(options.get("mapping", []), len(batch.headers))
    if "name" not in mapping:
        raise DomainError(_l("Choose the column that holds the names."), "mapping")
    owner = str(options.get("owner") or "pool")
    if owner not in ("pool", "column"):
        user = db.session.get(User, int(owner)) if owner.isdigit() else None
        if not policy.may_own_customers(user):
            raise DomainError(_l("Choose an active colleague as owner."), "owner")
    override = bool(options.get("override_limit"))
    if override and actor is not None and not policy.may(actor, "pool.assign"):  # None: the command line
        raise DomainError(_l("Only managers may override the ownership limit."), "override_limit")
    batch.options = {  # per_row (the choices per duplicate) goes: the rows are checked again
        "mapping": mapping, "owner": owner, "override_limit": override,
        "duplicates": options.get("duplicates") if options.get("duplicates") in DUPLICATE_CHOICES else "skip",
        "tags": options.get("tags") if options.get("tags") in TAG_CHOICES else "create",
    }
    batch.status, batch.progress, batch.error = ImportStatus.UPLOADED, 0, ""
    remember_mapping(actor, batch.headers, mapping)
    db.session.flush()


# ---- reports --------------------------------------------------------------------------

def write_report(batch: ImportBatch, preview: list, problems: list, duplicates: list | tuple = ()) -> None:
    path = _report_path(batch)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"preview": preview, "problems": problems, "duplicates": list(duplicates)},
                              ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)


def read_report(batch: ImportBatch) -> dict:
    """{"preview": [...], "problems": [...], "duplicates": [...]} of the batch's
    latest check (empty lists before one); "duplicates" are the first CHOICE_ROWS
    duplicate rows, each offered its own choice."""
    path = _report_path(batch)
    if not path.exists():
        return {"preview": [], "problems": [], "duplicates": []}
    return {"duplicates": [], **json.loads(path.read_text(encoding="utf-8"))}


def clean_per_row(batch: ImportBatch, chosen: dict) -> dict[str, str]:
    """The choices per duplicate row worth keeping: for rows the latest check
    offered a choice for, a choice such a row may take, other than the batch's."""
    offered = {str(record["number"]): record["status"] for record in read_report(batch)["duplicates"]}
    default = batch.options.get("duplicates", "skip")
    kept = {}
    for number, choice in chosen.items():
        status = offered.get(str(number))
        if status and choice in ROW_CHOICES[status] and choice != default:
            kept[str(number)] = choice
    return dict(sorted(kept.items(), key=lambda item: int(item[0])))


def duplicate_choice(options: dict, number: int) -> str:
    """What to do with duplicate row ``number``: its own choice, else the batch's."""
    return options.get("per_row", {}).get(str(number), options["duplicates"])


def row_record(row, status: str, existing: list[int]) -> dict:
    """A checked row as stored in the report."""
    record = {"number": row.number, "cells": row.cells, "shown": row.shown, "problems": row.problems,
              "status": status, "existing": existing[:3]}
    if row.data is not None:
        record["data"] = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in asdict(row.data).items()}
    return record


def rejected_csv(batch: ImportBatch) -> str:
    """The rows the latest check rejected, as CSV text with a BOM (Excel then reads
    the Chinese right): the file's header and each rejected row as it was, with a
    last column saying what is wrong, in the current language."""
    headers, mapping = list(batch.headers), batch.options.get("mapping", [])

    def describe(field: str, code: str) -> str:
        columns = [header for header, name in zip(headers, mapping) if name == field]
        return f"{columns[0] if columns else FIELDS.get(field, field)}: {problem_text(code)}"

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(headers + [str(_l("Reason"))])
    for record in read_report(batch)["problems"]:
        cells = (record["cells"] + [""] * len(headers))[: max(len(headers), len(record["cells"]))]
        writer.writerow(cells + ["; ".join(describe(f, c) for f, c in record["problems"].items())])
    return "\ufeff" + out.getvalue()


# ---- history and undo -----------------------------------------------------------------

def recent_batches(limit: int = 100) -> list[ImportBatch]:
    return list(db.session.scalars(select(ImportBatch).order_by(ImportBatch.id.desc()).limit(limit)))


def settle_interrupted(now=None) -> int:
    """Declare the checks and imports whose heartbeat stopped more than
    IMPORT_STALE_SECONDS ago (their process died) interrupted: a check as failed
    (it wrote nothing: check again), an import as INTERRUPTED (what its committed
    chunks wrote stays, to undo or resume). Returns how many imports that made
    interrupted."""
    now = now or utcnow()
    last_sign = func.coalesce(ImportBatch.heartbeat_at, ImportBatch.created_at)
    stale = last_sign < now - timedelta(seconds=current_app.config["IMPORT_STALE_SECONDS"])
    running = ImportBatch.status.in_((ImportStatus.CHECKING, ImportStatus.IMPORTING))
    if db.session.scalar(select(ImportBatch.id).where(running, stale).limit(1)) is None:
        return 0  # read first: a page showing imports writes only when one has died
    db.session.execute(update(ImportBatch).where(ImportBatch.status == ImportStatus.CHECKING, stale).values(
        status=ImportStatus.FAILED, finished_at=last_sign,
        error=str(_l("The check stopped: the process running it ended. Check the file again."))))
    return cast(CursorResult, db.session.execute(update(ImportBatch).where(
        ImportBatch.status == ImportStatus.IMPORTING, stale).values(
        status=ImportStatus.INTERRUPTED, finished_at=last_sign))).rowcount


def undo_until(batch: ImportBatch):
    """Until when the batch may be undone, or None when it may not (undone
    already, still running, or ended having imported nothing). An interrupted
    import may be undone even when it imported nothing: that closes it, so that
    nobody resumes it later."""
    ended_with_rows = batch.status in (ImportStatus.DONE, ImportStatus.FAILED) and batch.counts.get("imported")
    if not (ended_with_rows or batch.status == ImportStatus.INTERRUPTED):
        return None
    return (batch.finished_at or batch.created_at) + timedelta(days=UNDO_DAYS)


def may_undo(batch: ImportBatch) -> bool:
    until = undo_until(batch)
    return until is not None and utcnow() <= until


def audit_import(actor: User | None, batch: ImportBatch, *, dry_run: bool = False) -> None:
    """The audit line of a finished import (or a CLI dry run): who, the file, the
    counts and the choices."""
    options = {k: v for k, v in batch.options.items() if k != "mapping"}
    audit.record("customer.dry_run_import" if dry_run else "customer.import", actor,
                 actor_name=None if actor else "cli", target=batch, file=batch.file_name,
                 counts=batch.counts, mapping=dict(zip(batch.headers, batch.options.get("mapping", []))),
                 **options)
