"""The .xlsx writer of exports (services/xlsx.py, through spreadsheets.write_xlsx):
the same cells openpyxl's write-only mode wrote before it, for tricky values; text
that XML or Excel cannot take as it is; the workbook's parts. No app needed."""

import io
import zipfile
from datetime import date, datetime
from xml.etree import ElementTree

import pytest
from openpyxl import Workbook, load_workbook
from openpyxl.utils.datetime import to_excel

from services import spreadsheets, xlsx
from services.spreadsheets import Sheet, safe_cell

HEADER = ["No.", "Name", "Company", "Phone", "Mobile", "Email", "Birthday", "Created", "Note", "Tags"]
TRICKY = [
    [1, '=HYPERLINK("http://x","点我")', "+86 公司", ["138 0013 8000", "010 8888 6666"], "13800138000", None,
     date(1990, 5, 17), datetime(2026, 1, 2, 3, 4, 5, 600000), "客户询问报价\n第二行", ["华南", "制造"]],
    [2, "-1+1", "@SUM(A1)", [], "\tx", "", date(1900, 1, 1), datetime(1999, 12, 31, 23, 59, 59), " 两头有空格 ",
     ["a & b < c > d \"q\" 'a'"]],
    [12345678901234, "张伟", "北京制造有限公司", None, "0101234567", "zw@example.com", None, None, "长" * 40000, []],
    [4, True, 3.25, 0, -7, "\r=1", date(2026, 2, 28), datetime(2026, 3, 1), "<r><t>粗体？</t></r>", "x" * 32767],
]


def _written(rows, header=HEADER):
    file, counts = spreadsheets.write_xlsx([Sheet("客户", header, iter(rows))])
    with file:
        return load_workbook(io.BytesIO(file.read())), counts


def _as_openpyxl_wrote_it(rows, header=HEADER):
    """The writer exports used before (openpyxl's write-only mode, same values)."""
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("客户")
    sheet.freeze_panes = "A2"
    sheet.append([safe_cell(label) for label in header])
    for row in rows:
        sheet.append([spreadsheets._xlsx_value(value) for value in row])
    output = io.BytesIO()
    workbook.save(output)
    output.seek(0)
    return load_workbook(output)


def _cells(sheet):
    return [[(cell.value, cell.data_type if cell.value is not None else None, cell.number_format)
             for cell in row] for row in sheet.iter_rows()]


def test_the_same_cells_as_openpyxl_wrote():
    """Values, types (text, number, date, boolean) and date formats, cell by cell:
    formulas neutralised, digit strings kept as text, dates as real Excel dates,
    Chinese intact, None and "" empty, text cut at 32,767 characters."""
    book, counts = _written(TRICKY)
    assert counts == [len(TRICKY)]
    before = _as_openpyxl_wrote_it(TRICKY)
    assert book.sheetnames == ["客户"]
    assert _cells(book.active) == _cells(before.active)
    sheet = book.active
    assert sheet.freeze_panes == "A2"
    assert sheet["B2"].value == "'=HYPERLINK(\"http://x\",\"点我\")" and sheet["B2"].data_type == "s"
    assert sheet["E2"].value == "13800138000" and sheet["E2"].data_type == "s"  # not 1.38E+10
    assert sheet["D2"].value == "138 0013 8000, 010 8888 6666"
    assert sheet["H2"].value == datetime(2026, 1, 2, 3, 4, 5, 600000) and sheet["H2"].is_date
    assert sheet["G2"].number_format == "yyyy-mm-dd" and sheet["H2"].number_format == "yyyy-mm-dd h:mm:ss"
    assert sheet["I3"].value == " 两头有空格 " and sheet["I2"].value == "客户询问报价\n第二行"
    assert sheet["A4"].value == 12345678901234 and len(sheet["I4"].value) == xlsx.CELL_MAX


def test_text_that_looks_like_rich_text_stays_one_text_cell():
    """A library that takes "<r>…</r>" for pre-built rich text would write it
    unescaped, letting a customer's name add a formula cell; here it stays text."""
    name = ('<r><t>x</t></r></is></c><c r="B2"><f>HYPERLINK("http://evil","点我")</f></c>'
            '<c r="C2" t="inlineStr"><is><r><t>y</t></r>')
    file, _ = spreadsheets.write_xlsx([Sheet("x", ["Name"], iter([[name]]))])
    with file:
        body = file.read()
    sheet = load_workbook(io.BytesIO(body)).active
    assert [[cell.value for cell in row] for row in sheet.iter_rows()] == [["Name"], [name]]
    assert b"<f>" not in zipfile.ZipFile(io.BytesIO(body)).read("xl/worksheets/sheet1.xml")


def test_control_characters_do_not_break_the_file():
    """XML cannot hold most control characters (openpyxl refused the whole export
    for one); they are written as Excel's _xHHHH_ escapes, which Excel shows as the
    character."""
    book, _ = _written([["行一\x0b行二", "a\x00b\x1fc", "\x07"]], header=["a", "b", "c"])
    assert [cell.value for cell in book.active[2]] == ["行一_x000B_行二", "a_x0000_b_x001F_c", "_x0007_"]


def test_text_is_cut_at_excels_limit_counted_in_utf16_units():
    """Excel holds 32,767 UTF-16 units in a cell: an emoji takes two, and is never
    cut in half."""
    book, _ = _written([["😀" * 20000, "a" + "😀" * 20000, "中" * 40000]], header=["a", "b", "c"])
    emoji, odd, chinese = (cell.value for cell in book.active[2])
    assert emoji == "😀" * (xlsx.CELL_MAX // 2)
    assert odd == "a" + "😀" * ((xlsx.CELL_MAX - 1) // 2)
    assert chinese == "中" * xlsx.CELL_MAX


@pytest.mark.parametrize("value", [
    date(1900, 1, 1), date(1900, 2, 28), date(1900, 3, 1), date(1970, 1, 1), date(2026, 12, 31),
    datetime(2026, 6, 30, 23, 59, 59, 999999), datetime(1900, 2, 28, 12, 0), datetime(2000, 1, 1, 0, 0, 0, 1),
])
def test_excel_serial_numbers_are_openpyxls(value):
    assert xlsx.excel_serial(value) == to_excel(value)


def test_a_workbook_of_several_sheets_opens_with_every_part_well_formed():
    sheets = [Sheet("Customer", ["a"], iter([[1]])), Sheet("Notes & \"quotes\" <x>", ["a", "b"], iter([])),
              Sheet("customer", ["a"], iter([["x"], ["y"]])), Sheet("'quoted'", ["a"], iter([["z"]]))]
    file, counts = spreadsheets.write_xlsx(sheets)
    with file:
        body = file.read()
    assert counts == [1, 0, 2, 1]
    package = zipfile.ZipFile(io.BytesIO(body))
    for name in package.namelist():
        ElementTree.fromstring(package.read(name))
    book = load_workbook(io.BytesIO(body))
    assert book.sheetnames == ["Customer", "Notes & \"quotes\" <x>", "customer 2", "quoted"]
    assert [[c.value for c in row] for row in book["customer 2"].iter_rows()] == [["a"], ["x"], ["y"]]
    assert all(sheet.freeze_panes == "A2" for sheet in book.worksheets)


def test_no_sheets_is_still_a_workbook():
    file, counts = spreadsheets.write_xlsx([])
    with file:
        assert counts == [] and load_workbook(io.BytesIO(file.read())).sheetnames == ["Sheet"]


def test_rows_are_read_as_they_are_written(monkeypatch):
    """The writer takes rows from an iterator one at a time: a failing row stops it
    with what the iterator raised, and the temporary file is closed."""
    import tempfile

    made = []
    original = tempfile.SpooledTemporaryFile

    def spooled(*args, **kwargs):
        made.append(original(*args, **kwargs))  # noqa: SIM115 (the writer closes it)
        return made[-1]

    def rows():
        yield [1]
        raise RuntimeError("database gone")

    monkeypatch.setattr(spreadsheets.tempfile, "SpooledTemporaryFile", spooled)
    with pytest.raises(RuntimeError, match="database gone"):
        spreadsheets.write_xlsx([Sheet("x", ["a"], rows())])
    assert len(made) == 1 and made[0].closed


@pytest.mark.parametrize("index, letters", [(0, "A"), (25, "Z"), (26, "AA"), (51, "AZ"), (52, "BA"), (701, "ZZ"),
                                            (702, "AAA")])
def test_column_letters(index, letters):
    assert xlsx.column_letter(index) == letters
