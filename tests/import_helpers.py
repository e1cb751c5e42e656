"""Spreadsheets made in the tests for the customer import: real .xlsx files written
with openpyxl and CSV files in the encodings offices send."""

from __future__ import annotations

import csv
import io
from pathlib import Path

HEADERS = ["姓名", "公司", "手机", "邮箱", "阶段", "标签", "备注"]


def xlsx_bytes(rows, headers=HEADERS, *, merge: str | None = None) -> bytes:
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.append(headers)
    for row in rows:
        sheet.append(row)
    if merge:
        sheet.merge_cells(merge)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def csv_bytes(rows, headers=HEADERS, *, encoding: str = "utf-8", delimiter: str = ",") -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=delimiter)
    writer.writerow(headers)
    writer.writerows(rows)
    return out.getvalue().encode(encoding)


def write(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def rows(n: int, start: int = 0):
    """``n`` distinct valid rows: names, companies, mobiles."""
    return [[f"客户{i}", f"公司{i}", f"139{i:08d}", f"c{i}@example.com", "意向", "VIP", ""]
            for i in range(start, start + n)]
