"""Reading the spreadsheets an office exports (D3): .xlsx and .csv (UTF-8, UTF-8 with
a BOM, GB18030/GBK; comma, tab or semicolon separated), row by row, and turning
Excel's ways of storing things back into what was typed.

Rows are streamed: an .xlsx through services.xlsx_read (the values openpyxl's
read-only mode gives: merged cells' followers empty, formulas as their cached
value), a CSV through the csv module; nothing holds the whole sheet as objects.

A file is parsed once, at upload: its rows are kept as they came (keep_rows), and
the check and the import read those (open_kept) instead of the file. CPU seconds
for 50,000 rows as bench/data_import.py writes them: see keep_rows.
"""

from __future__ import annotations

import csv
import io
import pickle
import re
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from itertools import islice
from pathlib import Path

from flask_babel import lazy_gettext as _l

from services import xlsx_read
from services.errors import DomainError

MAX_ROWS = 100_000
KEPT_CHUNK = 500  # rows per pickle in a kept rows file
KEPT_FORMAT = ("deskbook-import-rows", 1)
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


# ---- rows kept at upload ------------------------------------------------------------

def keep_rows(sheet: Sheet, path: Path) -> int:
    """Write the sheet's header and rows, as they come, to ``path`` (a pickle of
    KEPT_FORMAT and the header, then one per KEPT_CHUNK rows, then the count, so
    that a file cut short is seen) and return how many rows. Raises BadFile when
    there are more than MAX_ROWS (the file then holds a part: the caller removes it).

    Pickle keeps the cells' types (phones stored as numbers, dates, times,
    booleans, blanks) and is only read back from the instance folder, which only
    the app writes. CPU seconds for 50,000 rows (bench/data_import.py's files,
    medians of 5 in one run on a loaded machine): parsing the .xlsx 6.7, the CSV
    0.34; keeping the rows adds 0.15 to 0.3, reading them back takes 0.16 to 0.23.
    Upload, check and import together: .xlsx 20.2 -> 7.3, CSV 1.03 -> 0.82."""
    count = 0
    with path.open("wb") as out:
        pickle.dump((KEPT_FORMAT, sheet.headers), out, pickle.HIGHEST_PROTOCOL)
        while chunk := list(islice(sheet.rows, KEPT_CHUNK)):
            count += len(chunk)
            if count > MAX_ROWS:
                raise BadFile(_l("The file has more than %(n)d rows: split it into smaller files.", n=MAX_ROWS))
            pickle.dump(chunk, out, pickle.HIGHEST_PROTOCOL)
        pickle.dump(count, out, pickle.HIGHEST_PROTOCOL)
    return count


@contextmanager
def open_kept(path: Path):
    """The sheet keep_rows wrote to ``path``, or None when there is no such file
    (or one of another format). Its rows raise BadFile when the file is damaged."""
    try:
        source = path.open("rb")
    except FileNotFoundError:
        yield None
        return
    with source:
        try:
            kept_format, headers = pickle.load(source)
        except Exception:  # whatever another format's pickle raises: not ours to read, read the source
            kept_format = None
        yield Sheet(headers, _kept_rows(source)) if kept_format == KEPT_FORMAT else None


def _kept_rows(source) -> Iterator[tuple[int, list]]:
    seen = 0
    try:
        while not isinstance(record := pickle.load(source), int):
            seen += len(record)
            yield from record
    except (EOFError, pickle.UnpicklingError) as error:
        raise _damaged() from error
    if record != seen:
        raise _damaged()


def _damaged() -> BadFile:
    return BadFile(_l("The rows stored for this import are damaged: upload the file again."))


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
