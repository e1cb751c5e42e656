"""Reading the spreadsheets an office exports (D3): .xlsx and .csv (UTF-8, UTF-8 with
a BOM, GB18030/GBK; comma, tab or semicolon separated), row by row, and turning
Excel's ways of storing things back into what was typed.

Rows are streamed: an .xlsx through services.xlsx_read (the values openpyxl's
read-only mode gives: merged cells' followers empty, formulas as their cached
value), a CSV through the csv module; nothing holds the whole sheet as objects.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

from flask_babel import lazy_gettext as _l

from services import xlsx_read
from services.errors import DomainError

MAX_ROWS = 100_000
KINDS = {".xlsx": "xlsx", ".xlsm": "xlsx", ".csv": "csv", ".txt": "csv", ".tsv": "csv"}
SEPARATORS = (",", "\t", ";")
EXCEL_EPOCH = date(1899, 12, 30)  # serial 1 is 1900-01-01 (Excel counts a 29 Feb 1900 that never was)


class BadFile(DomainError):
    """A file that cannot be imported; the message goes next to the file field."""

    def __init__(self, message):
        super().__init__(message, "file")


@dataclass
class Sheet:
    """The header row and an iterator of (row number as the spreadsheet shows it,
    cells) for every row below it that is not blank."""

    headers: list[str]
    rows: Iterator[tuple[int, list]]


def file_kind(file_name: str) -> str:
    """"xlsx" or "csv" from the file name. Raises BadFile for anything else."""
    suffix = Path(file_name or "").suffix.lower()
    if suffix == ".xls":
        raise BadFile(_l("Old .xls files cannot be read: save the file as .xlsx (Excel workbook) or CSV."))
    if suffix not in KINDS:
        raise BadFile(_l("Not a spreadsheet: choose an .xlsx or .csv file."))
    return KINDS[suffix]


def is_blank(cells) -> bool:
    return all(text(cell) == "" for cell in cells)


@contextmanager
def open_sheet(path: Path, kind: str):
    """The sheet in ``path`` (kind "xlsx" or "csv"). Raises BadFile for an empty or
    unreadable file or one without a header row."""
    if path.stat().st_size == 0:
        raise BadFile(_l("The file is empty."))
    if kind == "xlsx":
        with _xlsx_rows(path) as rows:
            yield _sheet(rows)
    else:
        yield _sheet(_csv_rows(path))


def _sheet(rows: Iterator[tuple[int, list]]) -> Sheet:
    for _number, cells in rows:
        if not is_blank(cells):
            headers = [text(cell) for cell in cells]
            while headers and headers[-1] == "":
                headers.pop()
            return Sheet(headers, ((n, c) for n, c in rows if not is_blank(c)))
    raise BadFile(_l("The file is empty."))


@contextmanager
def _xlsx_rows(path: Path):
    try:
        with xlsx_read.first_sheet_rows(path) as rows:
            yield _readable(rows)
    except xlsx_read.Unreadable as error:
        raise _not_xlsx() from error


def _readable(rows: Iterator[tuple[int, list]]) -> Iterator[tuple[int, list]]:
    try:
        yield from rows
    except xlsx_read.Unreadable as error:
        raise _not_xlsx() from error


def _not_xlsx() -> BadFile:
    return BadFile(_l("Not a spreadsheet: this file cannot be read as .xlsx."))


def decode(raw: bytes) -> str:
    """CSV bytes as text: UTF-8 (with or without a BOM), else GB18030 (which GBK
    and GB2312 are subsets of). Raises BadFile for binary data."""
    if b"\x00" in raw[:4096]:
        raise BadFile(_l("Not a spreadsheet: choose an .xlsx or .csv file."))
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("gb18030")
    except UnicodeDecodeError:
        raise BadFile(_l("The file's characters cannot be read: save it as CSV UTF-8.")) from None


def separator(first_line: str) -> str:
    """The separator the header line uses most (comma when none)."""
    counts = {sep: first_line.count(sep) for sep in SEPARATORS}
    best = max(SEPARATORS, key=lambda sep: counts[sep])
    return best if counts[best] else ","


def _csv_rows(path: Path) -> Iterator[tuple[int, list]]:
    content = decode(path.read_bytes())
    first_line = next((line for line in content.splitlines() if line.strip()), "")
    reader = csv.reader(io.StringIO(content, newline=""), delimiter=separator(first_line))
    try:
        yield from ((reader.line_num, row) for row in reader)
    except csv.Error as error:
        raise BadFile(_l("The CSV file is malformed near line %(line)d.", line=reader.line_num)) from error


# ---- cells -------------------------------------------------------------------------

def text(value) -> str:
    """A cell as the text a person typed: full-width letters and digits made
    ordinary (NFKC), spaces trimmed, a whole number stored as float without its
    ``.0``, a date cell as YYYY-MM-DD."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else value.isoformat(" ")
    if isinstance(value, date):
        return value.isoformat()
    return unicodedata.normalize("NFKC", str(value)).strip()


_NUMBER = re.compile(r"^[+-]?\d+(\.\d*)?([eE][+-]?\d+)?$")


def phone_text(value) -> str:
    """A phone cell as typed: Excel turns 13800138000 into a number, shown as
    ``1.38001380008E10`` or ``13800138000.0`` once it is text again."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(int(Decimal(repr(value)))) if float(value).is_integer() else text(value)
    raw = text(value)
    if _NUMBER.match(raw) and ("e" in raw.lower() or raw.endswith(".0")):
        try:
            number = Decimal(raw)
        except InvalidOperation:
            return raw
        if number == number.to_integral_value():
            return str(int(number))
    return raw


def not_whole_number(value) -> bool:
    """True for a cell that is a number with a fraction, as a float cell or its
    text (``1.38001380008E10`` is 13800138000.8): Excel changed what was typed, so
    its digits are no phone number; ``13800138000.0`` and ``1.3800138E10`` are whole."""
    if isinstance(value, bool):
        return False
    if isinstance(value, float):
        return not value.is_integer()
    if isinstance(value, int):
        return False
    raw = text(value)
    if not (_NUMBER.match(raw) and ("." in raw or "e" in raw.lower())):
        return False
    try:
        number = Decimal(raw)
    except InvalidOperation:
        return False
    return number != number.to_integral_value()


_DATE = re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?(\s.*)?$")


def to_date(value) -> date | None:
    """A date cell: a date or datetime, an Excel serial number, or text such as
    2026-01-02, 2026/1/2, 2026.1.2 or 2026年1月2日. None when blank. Raises
    ValueError for anything else."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _serial(float(value))
    raw = text(value)
    if not raw:
        return None
    match = _DATE.match(raw)
    if match:
        return date(int(match[1]), int(match[2]), int(match[3]))
    if re.fullmatch(r"\d{5}(\.\d+)?", raw):
        return _serial(float(raw))
    raise ValueError(raw)


def _serial(number: float) -> date:
    if not 1 <= number < 2958466:  # 9999-12-31
        raise ValueError(number)
    return EXCEL_EPOCH + timedelta(days=int(number))
