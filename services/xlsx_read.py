""".xlsx workbooks read as a stream (D3): the rows of the first worksheet, each as the
values openpyxl's read-only mode gives with ``values_only=True``, parsed straight
from the zip with expat.

Why not openpyxl's read-only mode: it builds a dictionary and an element per cell,
and the upload waits for the read (once: the check and the import read the rows
kept then, import_files.keep_rows). CPU seconds per read of 50,000 rows x 13
columns as bench/data_import.py writes them (inline strings): openpyxl 8.6,
ElementTree.iterparse 2.8, expat with handlers (here) 2.2; the same rows with a
shared-string table, as Excel writes them: openpyxl 4.4, here 2.1.

What a cell means is still openpyxl's: its public helpers turn numbers into dates
(the same date and duration formats, the 1904 date system) and ISO dates back, so
the two cannot drift apart; only the XML is read here. Two differences, both where
openpyxl loses data: rows and columns beyond the sheet's <dimension> (which some
writers get wrong) are read, and out-of-order cells are not dropped.
"""

from __future__ import annotations

import re
import zipfile
import zlib
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import IO, Any
from xml.etree import ElementTree
from xml.parsers import expat

_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_PACKAGE_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
_OFFICE_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
CHUNK = 1 << 16  # bytes of XML fed to the parser at a time

# Tag names as expat reports them with namespace_separator="}".
_ROW, _CELL, _VALUE, _INLINE, _TEXT, _PHONETIC, _DIMENSION, _ITEM = (
    f"{_MAIN}}}{tag}" for tag in ("row", "c", "v", "is", "t", "rPh", "dimension", "si"))

_COLUMN_LETTERS = re.compile(r"[A-Za-z]+")

# What reading a damaged or foreign file raises (zipfile raises NotImplementedError for a
# compression method it does not support).
_BROKEN = (zipfile.BadZipFile, KeyError, ValueError, IndexError, OSError, EOFError, zlib.error,
           expat.ExpatError, ElementTree.ParseError, NotImplementedError)


class Unreadable(ValueError):
    """Not an .xlsx workbook, or a damaged one."""


@contextmanager
def first_sheet_rows(path: Path):
    """(row number as the spreadsheet shows it, cells) for each row of the workbook's
    first worksheet, from row 1 (rows the file skips come back empty, as openpyxl
    gives them). Raises Unreadable, when opened or while the rows are read, for a
    file that is not an .xlsx workbook or is damaged."""
    try:
        archive = zipfile.ZipFile(path)
    except _BROKEN as error:
        raise Unreadable(str(error)) from error
    try:
        try:
            book = _Book(archive)
        except _BROKEN as error:
            raise Unreadable(str(error)) from error
        rows = _unbroken(book.rows())
        try:
            yield rows
        finally:
            rows.close()  # the sheet's stream, before the zip file
    finally:
        archive.close()


def _unbroken(rows: Iterator[tuple[int, list]]) -> Generator[tuple[int, list], None, None]:
    try:
        yield from rows
    except _BROKEN as error:
        raise Unreadable(str(error)) from error


class _Book:
    """The parts of a workbook the first sheet's values need."""

    def __init__(self, archive: zipfile.ZipFile):
        from openpyxl.utils.datetime import CALENDAR_MAC_1904, WINDOWS_EPOCH

        self.archive = archive
        workbook_part = _related(archive, "", "officeDocument") or "xl/workbook.xml"
        workbook = _tree(archive, workbook_part)
        relations = _relations(archive, workbook_part)
        properties = workbook.find(f"{{{_MAIN}}}workbookPr")
        date1904 = properties is not None and properties.get("date1904", "").lower() in ("1", "true")
        self.epoch = CALENDAR_MAC_1904 if date1904 else WINDOWS_EPOCH
        self.sheet_part = _first_worksheet(archive, workbook, relations)
        strings_part = _target_of(relations, "sharedStrings")
        self.strings = _shared_strings(archive, strings_part) if strings_part in archive.NameToInfo else []
        styles_part = _target_of(relations, "styles") or "xl/styles.xml"
        self.dates, self.durations = (_date_styles(_tree(archive, styles_part))
                                      if styles_part in archive.NameToInfo else (set(), set()))

    def rows(self) -> Iterator[tuple[int, list]]:
        with self.archive.open(self.sheet_part) as source:
            yield from _sheet_rows(self, source)


# ---- package parts -------------------------------------------------------------------

def _tree(archive: zipfile.ZipFile, part: str) -> ElementTree.Element:
    data = archive.read(part)
    if b"<!DOCTYPE" in data:  # SpreadsheetML has none; refuse entity tricks
        raise ValueError(f"{part} has a DOCTYPE")
    return ElementTree.fromstring(data)


def _relations(archive: zipfile.ZipFile, part: str) -> dict[str, tuple[str, str]]:
    """Id → (type, part name) of ``part``'s relationships."""
    folder, name = PurePosixPath(part).parent, PurePosixPath(part).name
    rels = _joined(folder, f"_rels/{name}.rels")  # "_rels/.rels" for the package itself
    if rels not in archive.NameToInfo:
        return {}
    found = {}
    for relation in _tree(archive, rels).iter(f"{{{_PACKAGE_REL}}}Relationship"):
        target = relation.get("Target", "")
        if relation.get("TargetMode") == "External":
            continue
        path = target.lstrip("/") if target.startswith("/") else _joined(folder, target)
        found[relation.get("Id", "")] = (relation.get("Type", ""), path)
    return found


def _joined(folder: PurePosixPath, target: str) -> str:
    parts: list[str] = []
    for piece in f"{folder}/{target}".split("/"):
        if piece == "..":
            if parts:
                parts.pop()
        elif piece not in ("", "."):
            parts.append(piece)
    return "/".join(parts)


def _target_of(relations: dict[str, tuple[str, str]], kind: str) -> str | None:
    return next((path for type_, path in relations.values() if type_.rsplit("/", 1)[-1] == kind), None)


def _related(archive: zipfile.ZipFile, part: str, kind: str) -> str | None:
    return _target_of(_relations(archive, part), kind)


def _first_worksheet(archive: zipfile.ZipFile, workbook: ElementTree.Element,
                     relations: dict[str, tuple[str, str]]) -> str:
    """The first sheet in the workbook's order that is a worksheet (not a chart)."""
    for sheet in workbook.iter(f"{{{_MAIN}}}sheet"):
        type_, path = relations.get(sheet.get(f"{{{_OFFICE_REL}}}id") or "", ("", ""))
        if path in archive.NameToInfo and "chartsheet" not in type_:
            return path
    raise KeyError("the workbook has no worksheet")


def _date_styles(styles: ElementTree.Element) -> tuple[set[int], set[int]]:
    """Indexes of the cell styles whose number format is a date or time, and of
    those that are a duration ([h]:mm:ss), as openpyxl decides."""
    from openpyxl.styles.numbers import builtin_format_code, is_date_format, is_timedelta_format

    custom = {int(fmt.get("numFmtId", -1)): fmt.get("formatCode")
              for fmt in styles.iter(f"{{{_MAIN}}}numFmt")}
    dates, durations = set(), set()
    cell_styles = styles.find(f"{{{_MAIN}}}cellXfs")
    for index, style in enumerate(cell_styles if cell_styles is not None else ()):
        number_format = int(style.get("numFmtId", 0))
        code = custom[number_format] if number_format in custom else builtin_format_code(number_format)
        if is_date_format(code):
            dates.add(index)
        if is_timedelta_format(code):
            durations.add(index)
    return dates, durations


def _parser(start: Callable, end: Callable, text: Callable) -> Any:
    parser = expat.ParserCreate(namespace_separator="}")
    parser.buffer_text = True
    parser.StartElementHandler, parser.EndElementHandler, parser.CharacterDataHandler = start, end, text

    def no_doctype(*_args):
        raise ValueError("a DOCTYPE in a workbook part")

    parser.StartDoctypeDeclHandler = no_doctype
    return parser


def _feed(parser: Any, source: IO[bytes]) -> Iterator[None]:
    """Parse ``source`` a chunk at a time, pausing after each."""
    while chunk := source.read(CHUNK):
        parser.Parse(chunk, False)
        yield
    parser.Parse(b"", True)
    yield


def _shared_strings(archive: zipfile.ZipFile, part: str) -> list[str]:
    """The shared-string table: each item's text, rich-text runs joined, phonetic
    guides left out, openpyxl's removal of "x005F_" kept."""
    strings: list[str] = []
    pieces: list[str] = []
    depth = {"phonetic": 0, "text": 0}

    def start(name, _attributes):
        if name == _TEXT:
            depth["text"] = 1
        elif name == _ITEM:
            pieces.clear()
        elif name == _PHONETIC:
            depth["phonetic"] += 1

    def end(name):
        if name == _TEXT:
            depth["text"] = 0
        elif name == _ITEM:
            strings.append("".join(pieces).replace("x005F_", ""))
        elif name == _PHONETIC:
            depth["phonetic"] -= 1

    def text(data):
        if depth["text"] and not depth["phonetic"]:
            pieces.append(data)

    with archive.open(part) as source:
        for _ in _feed(_parser(start, end, text), source):
            pass
    return strings


# ---- the sheet -----------------------------------------------------------------------

def _sheet_rows(book: _Book, source: IO[bytes]) -> Iterator[tuple[int, list]]:
    """The rows of the worksheet XML in ``source``: openpyxl's _cells_by_row and
    parse_cell (data_only) as expat handlers, one closure each for speed."""
    from openpyxl.utils.datetime import from_excel, from_ISO8601

    strings, dates, durations, epoch = book.strings, book.dates, book.durations, book.epoch
    columns: dict[str, int] = {}
    done: list[tuple[int, list]] = []  # rows finished by the last chunk
    width = 0  # from <dimension>: rows are padded to it
    expected = 1  # the next row number to give
    number = column = 0
    cells: list = []
    kind, style = "n", None
    value_text: list[str] | None = None
    inline_text: list[str] | None = None
    target: list[str] | None = None  # where character data goes
    phonetic = False

    def start(name, attributes):
        nonlocal number, column, cells, kind, style, value_text, inline_text, target, phonetic, width
        if name == _CELL:
            ref = attributes.get("r")
            column = _column(columns, ref) if ref else column + 1
            kind, style = attributes.get("t", "n"), attributes.get("s")
            value_text = inline_text = None
        elif name == _VALUE:
            target = value_text = []
        elif name == _TEXT:
            if inline_text is not None and not phonetic:
                target = inline_text
        elif name == _INLINE:
            inline_text = []
        elif name == _ROW:
            ref = attributes.get("r")
            number = _row_number(ref) if ref else number + 1
            column, cells = 0, []
        elif name == _PHONETIC:
            phonetic = True
        elif name == _DIMENSION:
            width = _dimension_width(attributes.get("ref", ""))

    def end(name):
        nonlocal target, phonetic, expected
        if name == _CELL:
            if kind == "inlineStr":
                value = None if inline_text is None else "".join(inline_text)
            else:
                value = value_text and "".join(value_text)
                if value:
                    value = convert(value)
                else:
                    value = None
            if column == len(cells) + 1:
                cells.append(value)
            else:
                if column > len(cells):
                    cells.extend([None] * (column - len(cells)))
                cells[column - 1] = value
        elif name in (_VALUE, _TEXT):
            target = None
        elif name == _ROW:
            while expected < number:  # rows the file skips
                done.append((expected, [None] * width))
                expected += 1
            if expected == number:  # a row number going back is dropped, as openpyxl does
                if len(cells) < width:
                    cells.extend([None] * (width - len(cells)))
                done.append((number, cells))
                expected += 1
        elif name == _PHONETIC:
            phonetic = False

    def text(data):
        if target is not None:
            target.append(data)

    def convert(raw: str):
        if kind == "n":
            number = float(raw) if "." in raw or "E" in raw or "e" in raw else int(raw)
            if dates and (int(style) if style else 0) in dates:
                try:
                    return from_excel(number, epoch, timedelta=(int(style) if style else 0) in durations)
                except (OverflowError, ValueError):
                    return "#VALUE!"
            return number
        if kind == "s":
            return strings[int(raw)]
        if kind == "b":
            return bool(int(raw))
        if kind == "d":
            return from_ISO8601(raw)
        return raw  # "str" (a formula's text), "e" (an error such as #N/A)

    for _ in _feed(_parser(start, end, text), source):
        yield from done
        done.clear()


def _column(columns: dict[str, int], ref: str) -> int:
    letters = ref.rstrip("0123456789")
    if letters not in columns:
        if not letters.isalpha() or not letters.isascii():
            raise ValueError(f"{ref} is not a cell reference")
        index = 0
        for letter in letters.upper():
            index = index * 26 + ord(letter) - 64
        columns[letters] = index
    return columns[letters]


def _row_number(ref: str) -> int:
    try:
        return int(ref)
    except ValueError:
        number = float(ref)
        if not number.is_integer():
            raise ValueError(f"{ref} is not a row number") from None
        return int(number)


def _dimension_width(ref: str) -> int:
    last = ref.rpartition(":")[2].lstrip("$")
    letters = _COLUMN_LETTERS.match(last)
    return _column({}, letters[0]) if letters else 0
