"""Tables written for download as CSV or Excel (A3), in bounded memory.

Rows come from an iterator and are never collected: CSV is produced as a stream
of byte chunks while the rows are read; an .xlsx file is written row by row to a
temporary file (services.xlsx compresses each row into it as it comes) and then
read back in chunks. Every text cell goes through :func:`safe_cell` first, in both
formats, so a value a spreadsheet would run as a formula is shown as text.
"""

from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime

from services import xlsx

# A cell starting with one of these is read by Excel, LibreOffice or Google Sheets as
# a formula (or, for tab and CR, can be made into one by the next character).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
BOM = "\ufeff".encode()  # Excel reads a CSV as UTF-8 (Chinese intact) only with it
CHUNK_BYTES = 64 * 1024
# An .xlsx smaller than this is never written to disk.
SPOOL_BYTES = 4 * 1024 * 1024
XLSX_MIMETYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV_MIMETYPE = "text/csv; charset=utf-8"
FORMATS = ("csv", "xlsx")


def safe_cell(value):
    """``value`` made safe for a spreadsheet cell: text that starts with = + - @, a
    tab or a carriage return gets a leading apostrophe, so it is shown as text and
    never run as a formula ("=HYPERLINK(…)" from a customer's name stays words).
    Numbers and dates pass unchanged. Phone numbers are exported as Deskbook
    shows them ("138 0013 8000": digits, never a leading +), so they pass too; a
    typed "+86 …" in free text keeps its apostrophe, which Excel hides."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


@dataclass
class Sheet:
    """One table: its title (an .xlsx sheet name), header labels and rows (an
    iterator of sequences as long as the header)."""

    title: str
    header: list[str]
    rows: Iterable[Iterable]


def _csv_text(value) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(str(item) for item in value)
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def csv_chunks(sheet: Sheet) -> Iterator[bytes]:
    """The sheet as UTF-8 CSV with a byte-order mark, in chunks of about
    CHUNK_BYTES, produced while its rows are read."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([safe_cell(str(label)) for label in sheet.header])
    yield BOM
    for row in sheet.rows:
        writer.writerow([safe_cell(_csv_text(value)) for value in row])
        if buffer.tell() >= CHUNK_BYTES:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


def _xlsx_value(value):
    if isinstance(value, (list, tuple)):
        value = ", ".join(str(item) for item in value)
    return safe_cell(value)


def _sheet_title(title: str, taken: set[str]) -> str:
    # Excel refuses these characters in a sheet name, an apostrophe at either end,
    # and names longer than 31.
    clean = "".join(" " if ch in "[]:*?/\\" else ch for ch in str(title))[:31].strip("'") or "Sheet"
    name, number = clean, 2
    while name.lower() in taken:
        name = f"{clean[:28]} {number}"
        number += 1
    taken.add(name.lower())
    return name


def _xlsx_rows(sheet: Sheet) -> Iterator[list]:
    yield [safe_cell(str(label)) for label in sheet.header]
    for row in sheet.rows:
        yield [_xlsx_value(value) for value in row]


def write_xlsx(sheets: Iterable[Sheet]):
    """An .xlsx workbook of ``sheets`` in a temporary file (in memory while small),
    positioned at its start; the caller closes it. Returns (file, rows written per
    sheet, header rows not counted)."""
    taken: set[str] = set()
    parts = [(_sheet_title(sheet.title, taken), _xlsx_rows(sheet)) for sheet in sheets]
    output = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 (the caller streams and closes it)
    try:
        counts = xlsx.write_workbook(output, parts)
    except BaseException:
        output.close()
        raise
    output.seek(0)
    return output, [count - 1 for count in counts[:len(parts)]]


def file_chunks(file) -> Iterator[bytes]:
    """The rest of ``file`` in chunks of CHUNK_BYTES; closes it at the end (or when
    the download is abandoned)."""
    try:
        while chunk := file.read(CHUNK_BYTES):
            yield chunk
    finally:
        file.close()
