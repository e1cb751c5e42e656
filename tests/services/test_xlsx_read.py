"""The .xlsx reader of imports (services/xlsx_read.py): row by row the values
openpyxl's read-only mode gives (values_only), with the spreadsheet's row numbers,
for workbooks openpyxl writes and for hand-built ones with what Excel, WPS and other
writers put in files (shared and inline rich text, formulas' cached values, errors,
rows and cells without references, a first sheet that is not sheet1.xml). No app."""

import zipfile
from datetime import date, datetime, time, timedelta

import pytest
from openpyxl import Workbook, load_workbook
from openpyxl.utils.datetime import CALENDAR_MAC_1904

from services import import_files, xlsx_read
from services.import_files import BadFile

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PACKAGE_REL = "http://schemas.openxmlformats.org/package/2006/relationships"


def ours(path):
    with xlsx_read.first_sheet_rows(path) as rows:
        return list(rows)


def openpyxls(path):
    workbook = load_workbook(path, read_only=True, data_only=True)
    try:
        return [(number, list(cells))
                for number, cells in enumerate(workbook.worksheets[0].iter_rows(values_only=True), 1)]
    finally:
        workbook.close()


def same_as_openpyxl(path):
    """Our rows, asserted equal to openpyxl's, value types included."""
    rows = ours(path)
    expected = openpyxls(path)
    assert rows == expected
    assert [[type(v) for v in cells] for _, cells in rows] == [[type(v) for v in cells] for _, cells in expected]
    return rows


def saved(tmp_path, workbook, name="book.xlsx"):
    path = tmp_path / name
    workbook.save(path)
    return path


def typed_cells(sheet):
    """Numbers, big phone numbers kept as numbers, floats, dates with built-in and
    custom formats, times, durations, booleans, Chinese text, an error string."""
    rows = [
        ["姓名", "手机", "金额", "生日", "时间", "备注"],
        ["张伟", 13800138000, 3.5, date(1990, 5, 17), datetime(2026, 1, 2, 3, 4, 5), " 两头有空格 "],
        ["李娜", 13800138000.0, 13800138000.8, datetime(1900, 1, 15), time(8, 30), True],
        ["王芳", 1.38001380008e10, -7, datetime(2026, 2, 28, 23, 59, 59, 500000), timedelta(hours=30), False],
        ["x" * 300, 0, 1e-7, date(9999, 12, 31), 0.25, "#N/A"],
    ]
    for row in rows:
        sheet.append(row)
    sheet["D2"].number_format = "mm-dd-yy"  # built-in 14
    sheet["D3"].number_format = 'yyyy"年"m"月"d"日"'  # custom, quoted text
    sheet["D4"].number_format = "[$-804]yyyy/m/d h:mm;@"  # locale in brackets
    sheet["E4"].number_format = "[h]:mm:ss"  # a duration
    sheet["E5"].number_format = "h:mm"
    sheet["C3"].number_format = '0.00"d"'  # "d" in quotes: not a date
    sheet["C4"].number_format = "#,##0_);[Red](#,##0)"


def test_typed_cells_as_openpyxl_reads_them(tmp_path):
    workbook = Workbook()
    typed_cells(workbook.active)
    rows = same_as_openpyxl(saved(tmp_path, workbook))
    assert rows[1] == (2, ["张伟", 13800138000, 3.5, datetime(1990, 5, 17), datetime(2026, 1, 2, 3, 4, 5),
                           " 两头有空格 "])
    assert rows[2][1][:3] == ["李娜", 13800138000, 13800138000.8]
    assert type(rows[2][1][1]) is int and rows[2][1][3] == datetime(1900, 1, 15) and rows[2][1][5] is True
    assert rows[3][1][1:5] == [13800138000.8, -7, datetime(2026, 2, 28, 23, 59, 59, 500000), timedelta(hours=30)]
    assert rows[4][1][3:] == [datetime(9999, 12, 31), time(6, 0), "#N/A"]


def test_the_1904_date_system(tmp_path):
    workbook = Workbook()
    workbook.epoch = CALENDAR_MAC_1904
    typed_cells(workbook.active)
    rows = same_as_openpyxl(saved(tmp_path, workbook))
    assert rows[1][1][3] == datetime(1990, 5, 17)


def test_the_write_only_writer_too(tmp_path):
    """Inline strings, no <dimension>: rows as long as their last cell."""
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("客户")
    sheet.append(["姓名", "手机", None, "备注"])
    sheet.append(["张伟", 13800138000])
    sheet.append([])
    sheet.append([None, None, None, None, "远"])
    rows = same_as_openpyxl(saved(tmp_path, workbook))
    assert rows == [(1, ["姓名", "手机", None, "备注"]), (2, ["张伟", 13800138000]), (3, []),
                    (4, [None, None, None, None, "远"])]


def test_skipped_rows_and_columns_and_merged_cells(tmp_path):
    """Missing cells are None in their place; skipped rows come back empty, so each
    row keeps the number the spreadsheet shows; a merged range's followers are None."""
    workbook = Workbook()
    sheet = workbook.active
    sheet["A1"], sheet["D1"] = "姓名", "备注"
    sheet["B4"] = "跳过两行"
    sheet["A7"], sheet["C7"] = "合并", "后"
    sheet.merge_cells("A7:B8")
    sheet["E9"] = 1
    rows = same_as_openpyxl(saved(tmp_path, workbook))
    assert [number for number, _ in rows] == list(range(1, 10))
    assert rows[0] == (1, ["姓名", None, None, "备注", None])
    assert rows[1] == (2, [None] * 5) and rows[3] == (4, [None, "跳过两行", None, None, None])
    assert rows[6] == (7, ["合并", None, "后", None, None]) and rows[7] == (8, [None] * 5)


# ---- hand-built workbooks: what openpyxl does not write ------------------------------

CONTENT_TYPES = ('<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
                 '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
                 '<Default Extension="xml" ContentType="application/xml"/>'
                 '<Override PartName="/xl/workbook.xml" '
                 'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
                 '<Override PartName="/xl/sharedStrings.xml" '
                 'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>'
                 '<Override PartName="/xl/styles.xml" '
                 'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
                 '{sheets}</Types>')
STYLES = (f'<styleSheet xmlns="{MAIN}"><numFmts count="1"><numFmt numFmtId="176" formatCode="yyyy/m/d;@"/>'
          '</numFmts><fonts count="1"><font><sz val="11"/></font></fonts>'
          '<fills count="1"><fill><patternFill patternType="none"/></fill></fills><borders count="1"><border/>'
          '</borders><cellStyleXfs count="1"><xf numFmtId="0"/></cellStyleXfs><cellXfs count="4">'
          '<xf numFmtId="0" xfId="0"/><xf numFmtId="14" xfId="0" applyNumberFormat="1"/>'
          '<xf numFmtId="176" xfId="0" applyNumberFormat="1"/><xf numFmtId="49" xfId="0"/></cellXfs>'
          '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles></styleSheet>')
SHARED = (f'<sst xmlns="{MAIN}" count="6" uniqueCount="6">'
          '<si><t>姓名</t></si>'
          '<si><r><rPr><b/></rPr><t>粗体</t></r><r><t xml:space="preserve"> 和 普通</t></r></si>'
          '<si><t xml:space="preserve">  前后空格  </t></si>'
          '<si><t>東京</t><rPh sb="0" eb="2"><t>トウキョウ</t></rPh><phoneticPr fontId="1"/></si>'
          '<si><t>a_x005F_x000D_b &amp; &lt;c&gt;</t></si>'
          '<si><t/></si></sst>')


def sheet_xml(rows: str, *, dimension: str | None = "A1:F6", prefix: str = "") -> str:
    p = f"{prefix}:" if prefix else ""
    dim = f'<{p}dimension ref="{dimension}"/>' if dimension else ""
    return (f'<{p}worksheet xmlns{":" + prefix if prefix else ""}="{MAIN}" xmlns:r="{REL}">{dim}'
            f'<{p}sheetData>{rows}</{p}sheetData></{p}worksheet>')


def workbook_zip(tmp_path, sheets, *, first="sheet2", date1904=False, chart_first=False, name="hand.xlsx"):
    """An .xlsx whose workbook lists ``first`` before the other sheets: its part is
    not worksheets/sheet1.xml. ``sheets`` maps part names to their XML."""
    order = [first] + [s for s in sheets if s != first]
    listed = "".join(f'<sheet name="S{i}" sheetId="{i + 1}" r:id="rId{i + 1}"/>' for i in range(len(order)))
    relations = "".join(f'<Relationship Id="rId{i + 1}" Type="{REL}/worksheet" Target="worksheets/{s}.xml"/>'
                        for i, s in enumerate(order))
    if chart_first:
        listed = '<sheet name="图表" sheetId="9" r:id="rIdChart"/>' + listed
        relations += f'<Relationship Id="rIdChart" Type="{REL}/chartsheet" Target="chartsheets/sheet1.xml"/>'
    relations += (f'<Relationship Id="rIdS" Type="{REL}/sharedStrings" Target="sharedStrings.xml"/>'
                  f'<Relationship Id="rIdY" Type="{REL}/styles" Target="/xl/styles.xml"/>')
    properties = '<workbookPr date1904="1"/>' if date1904 else "<workbookPr/>"
    path = tmp_path / name
    with zipfile.ZipFile(path, "w") as archive:
        types = "".join(f'<Override PartName="/xl/worksheets/{s}.xml" '
                        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
                        for s in sheets)
        archive.writestr("[Content_Types].xml", CONTENT_TYPES.format(sheets=types))
        archive.writestr("_rels/.rels", f'<Relationships xmlns="{PACKAGE_REL}"><Relationship Id="rId1" '
                                        f'Type="{REL}/officeDocument" Target="xl/workbook.xml"/></Relationships>')
        archive.writestr("xl/workbook.xml", f'<workbook xmlns="{MAIN}" xmlns:r="{REL}">{properties}'
                                            f'<sheets>{listed}</sheets></workbook>')
        archive.writestr("xl/_rels/workbook.xml.rels", f'<Relationships xmlns="{PACKAGE_REL}">{relations}'
                                                       '</Relationships>')
        archive.writestr("xl/sharedStrings.xml", SHARED)
        archive.writestr("xl/styles.xml", STYLES)
        if chart_first:
            archive.writestr("xl/chartsheets/_rels/sheet1.xml.rels", f'<Relationships xmlns="{PACKAGE_REL}"/>')
            archive.writestr("xl/chartsheets/sheet1.xml", f'<chartsheet xmlns="{MAIN}"/>')
        for part, xml in sheets.items():
            archive.writestr(f"xl/worksheets/{part}.xml", xml)
    return path


EXCEL_ROWS = (
    '<row r="1" spans="1:6"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c><c r="C1" t="s"><v>2</v></c>'
    '<c r="D1" t="s"><v>3</v></c><c r="E1" t="s"><v>4</v></c><c r="F1" t="s"><v>5</v></c></row>'
    '<row r="2"><c r="A2"><v>13800138000</v></c><c r="B2"><v>1.38001380008E10</v></c>'
    '<c r="C2"><v>13800138000.0</v></c><c r="D2"><v>3.5</v></c><c r="E2" s="1"><v>45000</v></c>'
    '<c r="F2" s="2"><v>45000.5</v></c></row>'
    '<row r="4" ht="30" customHeight="1"><c r="A4" t="b"><v>1</v></c><c r="B4" t="e"><v>#N/A</v></c>'
    '<c r="C4"><f>SUM(A2:B2)</f><v>27600276000.8</v></c><c r="D4" t="str"><f>A1&amp;"x"</f><v>姓名x</v></c>'
    '<c r="E4" s="3"/><c r="F4" t="inlineStr"><is><r><t>行内</t></r>'
    '<r><rPr><i/></rPr><t xml:space="preserve"> 富文本</t></r></is></c></row>'
    '<row><c t="inlineStr"><is><t>无引用</t></is></c><c><v>2</v></c><c r="E5" t="e"><f>1/0</f><v>#DIV/0!</v></c>'
    '</row>'
    '<row r="6"><c r="A6" t="d"><v>2026-01-02T03:04:05</v></c><c r="B6"><v></v></c><c r="C6" s="2"><v>59</v></c>'
    '<c r="D6" t="inlineStr"><v>ignored</v></c><c r="E6" t="s"><v>3</v></c></row>'
)


def test_what_excel_and_other_writers_put_in_files(tmp_path):
    """Shared strings (rich-text runs joined, phonetic guides left out, spaces kept,
    openpyxl's "x005F_" removal), inline strings, numbers as openpyxl types them,
    dates by built-in and custom formats, booleans, errors, formulas' cached values,
    cells without a value, rows and cells without references, the first sheet in the
    workbook's order (worksheets/sheet2.xml, after a chart sheet)."""
    path = workbook_zip(tmp_path, {"sheet1": sheet_xml('<row r="1"><c r="A1"><v>0</v></c></row>'),
                                   "sheet2": sheet_xml(EXCEL_ROWS)}, chart_first=True)
    rows = same_as_openpyxl(path)
    assert rows == [
        (1, ["姓名", "粗体 和 普通", "  前后空格  ", "東京", "a_x000D_b & <c>", ""]),
        (2, [13800138000, 13800138000.8, 13800138000.0, 3.5, datetime(2023, 3, 15), datetime(2023, 3, 15, 12)]),
        (3, [None] * 6),
        (4, [True, "#N/A", 27600276000.8, "姓名x", None, "行内 富文本"]),
        (5, ["无引用", 2, None, None, "#DIV/0!", None]),
        (6, [datetime(2026, 1, 2, 3, 4, 5), None, datetime(1900, 2, 28), None, "東京", None]),
    ]


def test_the_1904_date_system_from_the_workbook(tmp_path):
    path = workbook_zip(tmp_path, {"sheet2": sheet_xml(EXCEL_ROWS)}, date1904=True)
    assert same_as_openpyxl(path)[1][1][4] == datetime(2027, 3, 16)


def test_a_prefixed_namespace_and_no_dimension(tmp_path):
    rows = ('<x:row r="2"><x:c r="B2" t="s"><x:v>0</x:v></x:c></x:row>'
            '<x:row r="3"><x:c r="A3"><x:v>1</x:v></x:c><x:c r="C3" t="inlineStr"><x:is><x:t>三</x:t></x:is></x:c>'
            '</x:row>')
    path = workbook_zip(tmp_path, {"sheet2": sheet_xml(rows, dimension=None, prefix="x")})
    assert same_as_openpyxl(path) == [(1, []), (2, [None, "姓名"]), (3, [1, None, "三"])]


def test_rows_beyond_a_wrong_dimension_are_read(tmp_path):
    """Some writers put <dimension ref="A1"/> whatever the size: openpyxl's read-only
    mode then stops at A1 and an import would find nothing; Excel shows every row."""
    rows = ('<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="inlineStr"><is><t>手机</t></is></c></row>'
            '<row r="2"><c r="A2" t="inlineStr"><is><t>张伟</t></is></c><c r="B2"><v>13800138000</v></c></row>')
    path = workbook_zip(tmp_path, {"sheet2": sheet_xml(rows, dimension="A1")})
    assert openpyxls(path) == [(1, ["姓名"])]
    assert ours(path) == [(1, ["姓名", "手机"]), (2, ["张伟", 13800138000])]


def test_a_date_cell_out_of_range_is_an_error_value(tmp_path):
    """As openpyxl gives it (with a warning): the error text Excel would show."""
    rows = '<row r="1"><c r="A1" s="1"><v>99999999</v></c><c r="B1" s="1"><v>-800000</v></c></row>'
    path = workbook_zip(tmp_path, {"sheet2": sheet_xml(rows)})
    assert ours(path) == [(1, ["#VALUE!", "#VALUE!", None, None, None, None])]
    with pytest.warns(UserWarning, match="outside the limits for dates"):
        assert openpyxls(path) == ours(path)


# ---- through import_files: row numbers and refusals ----------------------------------

def test_rows_carry_the_spreadsheet_row_numbers(tmp_path):
    workbook = Workbook()
    sheet = workbook.active
    sheet["B3"], sheet["C3"] = "姓名", "手机"
    sheet["B5"], sheet["C5"] = "张伟", 13800138000
    sheet["B9"] = "李娜"
    with import_files.open_sheet(saved(tmp_path, workbook), "xlsx") as found:
        assert found.headers == ["", "姓名", "手机"]
        assert list(found.rows) == [(5, [None, "张伟", 13800138000]), (9, [None, "李娜", None])]


BROKEN = {
    "not a zip": b"PK\x03\x04 this is not a zip file",
    "no workbook": None,
    "bad xml": sheet_xml('<row r="1"><c r="A1" t="s"><v>0</v></c></row>').replace("</sheetData>", "").encode(),
    "a doctype": (b'<?xml version="1.0"?><!DOCTYPE w [<!ENTITY a "aaaa">]>'
                  + sheet_xml('<row r="1"><c r="A1" t="inlineStr"><is><t>&a;</t></is></c></row>').encode()),
    "a shared string missing": sheet_xml('<row r="1"><c r="A1" t="s"><v>99</v></c></row>').encode(),
    "no worksheet": b"",
}


@pytest.mark.parametrize("case", BROKEN)
def test_a_damaged_workbook_is_a_bad_file(tmp_path, case):
    """Found when opened or while the rows are read, always the same message."""
    if case == "not a zip":
        path = tmp_path / "x.xlsx"
        path.write_bytes(BROKEN[case])
    elif case == "no workbook":
        path = tmp_path / "x.xlsx"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("hello.txt", "hi")
    elif case == "no worksheet":
        path = workbook_zip(tmp_path, {"sheet2": "x"})
        with zipfile.ZipFile(path) as archive, zipfile.ZipFile(tmp_path / "y.xlsx", "w") as copy:
            for item in archive.infolist():
                if "worksheets" not in item.filename:
                    copy.writestr(item, archive.read(item))
        path = tmp_path / "y.xlsx"
    else:
        path = workbook_zip(tmp_path, {"sheet2": BROKEN[case].decode()})
    with pytest.raises(BadFile) as raised, import_files.open_sheet(path, "xlsx") as sheet:
        list(sheet.rows)
    assert str(raised.value.message) == "Not a spreadsheet: this file cannot be read as .xlsx."


def test_a_large_sheet_is_read_in_chunks(tmp_path, monkeypatch):
    """Rows come as the zip is read, a shared string or row cut between chunks intact."""
    monkeypatch.setattr(xlsx_read, "CHUNK", 7)
    workbook = Workbook()
    for i in range(300):
        workbook.active.append([f"客户{i}", 13800138000 + i, f"备注 {i} " * 3, date(2000, 1, 1) + timedelta(days=i)])
    rows = same_as_openpyxl(saved(tmp_path, workbook))
    assert rows[299] == (300, ["客户299", 13800138299, "备注 299 " * 3, datetime(2000, 10, 26)])

