"""An uploaded file is parsed once: its rows are kept at upload, as the file gives
them (types included), and the check, the import and a resumed import read those;
a batch without them (uploaded before they were kept) reads its file again."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import pytest
from sqlalchemy import select

from extensions import db
from models import Customer, ImportBatch, ImportStatus, utcnow
from services import import_files, import_jobs, imports, xlsx_read
from tests.import_helpers import HEADERS, csv_bytes, rows, write, xlsx_bytes
from tests.services.test_import import receive


@pytest.fixture(autouse=True)
def english(app, staff):
    from flask_babel import force_locale

    with app.test_request_context(), force_locale("en"):
        yield


def typed(sheet_rows) -> list:
    return [(number, [(type(cell), cell) for cell in cells]) for number, cells in sheet_rows]


def from_both(batch: ImportBatch):
    """(header, rows) as kept at upload and as the stored file gives them."""
    with imports.open_rows(batch) as kept:
        got = kept.headers, typed(kept.rows)
    with import_files.open_sheet(imports.source_path(batch), batch.file_kind) as source:
        return got, (source.headers, typed(source.rows))


def parse_no_more(monkeypatch) -> None:
    def parsed_again(*args, **kwargs):
        raise AssertionError("the uploaded file was parsed again")

    monkeypatch.setattr(xlsx_read, "first_sheet_rows", parsed_again)
    monkeypatch.setattr(import_files, "_csv_rows", parsed_again)


def check_and_import(actor, batch: ImportBatch) -> ImportBatch:
    import_jobs.start(import_jobs.CHECK, batch, actor)
    batch = db.session.get_one(ImportBatch, batch.id)
    assert batch.status == ImportStatus.READY, batch.error
    import_jobs.confirm(actor, batch)
    db.session.commit()
    import_jobs.start(import_jobs.IMPORT, batch, actor)
    return db.session.get_one(ImportBatch, batch.id)


def test_the_rows_kept_are_the_xlsx_files_types_included(app, staff, tmp_path):
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["姓名", "手机", "生日", "VIP", "备注", "到访", "积分"])
    sheet.append(["张伟", 13800138000, datetime(1990, 5, 6), True, None, time(9, 30), 1.5])
    sheet.append([None] * 7)  # a blank row is no row
    sheet.append(["李娜", "13800138009", "1988年3月4日", False, "老客户", None, 12])
    path = tmp_path / "typed.xlsx"
    workbook.save(path)
    batch = receive(staff["manager"], path)
    assert imports.rows_path(batch).is_file()
    kept, source = from_both(batch)
    assert kept == source
    assert kept[0] == ["姓名", "手机", "生日", "VIP", "备注", "到访", "积分"]
    (first_number, first), (second_number, second) = kept[1]
    assert (first_number, second_number) == (2, 4)
    assert first[:5] == [(str, "张伟"), (int, 13800138000), (datetime, datetime(1990, 5, 6)), (bool, True),
                         (type(None), None)]
    assert first[5:] == [(time, time(9, 30)), (float, 1.5)]
    assert second[2:4] == [(str, "1988年3月4日"), (bool, False)] and second[-1] == (int, 12)


def test_the_rows_kept_are_the_csv_files(app, staff, tmp_path):
    content = csv_bytes(rows(3) + [["", "", "", "", "", "", ""], ["王芳", "", "13800138010", "", "", "", "备注"]],
                        encoding="gbk", delimiter="\t")
    batch = receive(staff["manager"], write(tmp_path, "c.csv", content))
    kept, source = from_both(batch)
    assert kept == source and kept[0] == HEADERS
    assert [number for number, _cells in kept[1]] == [2, 3, 4, 6]


def test_a_date_cell_and_a_phone_stored_as_a_number_import_from_the_rows_kept(app, staff, tmp_path, monkeypatch):
    data = [["张伟", "", 13800138000, "", "意向", "", ""]]
    headers = HEADERS + ["生日"]
    batch = receive(staff["manager"], write(tmp_path, "t.xlsx", xlsx_bytes([data[0] + [date(1990, 5, 6)]], headers)))
    parse_no_more(monkeypatch)
    batch = check_and_import(staff["manager"], batch)
    assert batch.status == ImportStatus.DONE and batch.counts["created"] == 1, batch.error
    customer = db.session.scalar(select(Customer))
    assert [p.digits for p in customer.phones] == ["13800138000"] and customer.birthday == date(1990, 5, 6)


@pytest.mark.parametrize("name, content", [("c.xlsx", xlsx_bytes(rows(5))), ("c.csv", csv_bytes(rows(5)))])
def test_the_check_and_the_import_do_not_parse_the_file_again(app, staff, tmp_path, monkeypatch, name, content):
    monkeypatch.setattr(imports, "CHUNK", 2)
    batch = receive(staff["manager"], write(tmp_path, name, content))
    parse_no_more(monkeypatch)
    batch = check_and_import(staff["manager"], batch)
    assert batch.status == ImportStatus.DONE, batch.error
    assert batch.counts["created"] == 5 and batch.progress == 5
    assert len(imports.read_report(batch)["preview"]) == 5


def test_a_resumed_import_reads_the_rows_kept(app, staff, tmp_path, monkeypatch):
    batch = receive(staff["manager"], write(tmp_path, "r.xlsx", xlsx_bytes(rows(3))))
    batch.status, batch.heartbeat_at = ImportStatus.IMPORTING, utcnow() - timedelta(hours=1)
    db.session.commit()
    assert imports.settle_interrupted() == 1
    db.session.commit()
    parse_no_more(monkeypatch)
    import_jobs.resume(staff["manager"], batch)
    db.session.commit()
    import_jobs.start(import_jobs.IMPORT, batch, staff["manager"])
    batch = db.session.get_one(ImportBatch, batch.id)
    assert batch.status == ImportStatus.DONE and batch.counts["created"] == 3, batch.error


@pytest.mark.parametrize("name, content", [("old.xlsx", xlsx_bytes(rows(3))), ("old.csv", csv_bytes(rows(3)))])
def test_a_batch_without_rows_kept_reads_its_file(app, staff, tmp_path, monkeypatch, name, content):
    batch = receive(staff["manager"], write(tmp_path, name, content))
    imports.rows_path(batch).unlink()  # as a batch uploaded before rows were kept
    parsed = []
    real = import_files.open_sheet
    monkeypatch.setattr(import_files, "open_sheet", lambda *args: parsed.append(args) or real(*args))
    batch = check_and_import(staff["manager"], batch)
    assert batch.status == ImportStatus.DONE and batch.counts["created"] == 3, batch.error
    assert [kind for _path, kind in parsed] == [batch.file_kind] * 2  # the check and the import


def test_rows_kept_in_another_format_are_not_read(app, staff, tmp_path, monkeypatch):
    import pickle

    batch = receive(staff["manager"], write(tmp_path, "f.csv", csv_bytes(rows(2))))
    with imports.rows_path(batch).open("wb") as out:
        pickle.dump((("deskbook-import-rows", 0), ["x"]), out)
        pickle.dump([(2, ["not", "these"])], out)
    kept, source = from_both(batch)
    assert kept == source and kept[0] == HEADERS


def test_rows_kept_cut_short_fail_the_check_with_a_reason(app, staff, tmp_path, monkeypatch):
    monkeypatch.setattr(import_files, "KEPT_CHUNK", 2)
    batch = receive(staff["manager"], write(tmp_path, "cut.csv", csv_bytes(rows(5))))
    kept = imports.rows_path(batch)
    kept.write_bytes(kept.read_bytes()[:-20])
    import_jobs.start(import_jobs.CHECK, batch, staff["manager"])
    batch = db.session.get_one(ImportBatch, batch.id)
    assert batch.status == ImportStatus.FAILED
    assert batch.error == "The rows stored for this import are damaged: upload the file again."


@pytest.mark.parametrize("name, content", [
    ("many.xlsx", xlsx_bytes(rows(6))), ("many.csv", csv_bytes(rows(6))),
    ("header-only.xlsx", xlsx_bytes([])), ("noname.csv", csv_bytes(rows(2), headers=["Foo"] + HEADERS[1:])),
])
def test_a_refused_upload_leaves_no_file(app, staff, tmp_path, monkeypatch, name, content):
    monkeypatch.setattr(import_files, "MAX_ROWS", 5)
    monkeypatch.setattr(import_files, "KEPT_CHUNK", 2)
    with pytest.raises(import_files.BadFile):
        receive(staff["manager"], write(tmp_path, name, content))
    db.session.rollback()
    assert list((tmp_path / "instance" / "imports").iterdir()) == []
