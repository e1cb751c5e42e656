"""The customer import's services: reading files with Excel's quirks, the check
(preview and dry run), importing in chunks, duplicates, owners and their limit,
undo, and the search index."""

from __future__ import annotations

import csv
import io
import shutil
from datetime import date, datetime

import pytest
from sqlalchemy import func, select

from extensions import db
from models import AuditEvent, Customer, CustomerNote, ImportRow, ImportStatus, PoolEvent, SearchBacklog, Tag, User
from services import customers, import_files, import_jobs, imports, search, settings
from services.import_apply import undo_import
from services.import_rows import Lookups, check_row, guess_mapping
from tests.import_helpers import HEADERS, csv_bytes, rows, write, xlsx_bytes


@pytest.fixture(autouse=True)
def english(app, staff):
    """Messages in English (without a request the office's language, Chinese, applies)."""
    from flask_babel import force_locale

    with app.test_request_context(), force_locale("en"):
        yield


def receive(actor, path):
    batch = imports.receive_file(actor, path.name, lambda dest: shutil.copy(path, dest))
    db.session.commit()
    return batch


def check(actor, path, **options):
    batch = receive(actor, path)
    if options:
        imports.set_options(actor, batch, {**batch.options, **options})
        db.session.commit()
    import_jobs.start(import_jobs.CHECK, batch, actor)
    return db.session.get(type(batch), batch.id)


def run_import(actor, path, **options):
    batch = check(actor, path, **options)
    assert batch.status == ImportStatus.READY, batch.error
    import_jobs.confirm(actor, batch)
    db.session.commit()
    import_jobs.start(import_jobs.IMPORT, batch, actor)
    return db.session.get(type(batch), batch.id)


def user(name):
    return db.session.scalar(select(User).where(User.username == name))


def count(model):
    return db.session.scalar(select(func.count()).select_from(model))


# ---- cells and headers ---------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    (13800138000, "13800138000"), (13800138000.0, "13800138000"), ("1.3800138E10", "13800138000"),
    ("1.38001380008E11", "138001380008"),
    ("13800138000.0", "13800138000"), (" 138 0013 8000 ", "138 0013 8000"), ("１３８００１３８０００", "13800138000"),
])
def test_phones_as_excel_stores_them(value, expected):
    assert import_files.phone_text(value) == expected


@pytest.mark.parametrize("value", [
    datetime(2026, 1, 2), date(2026, 1, 2), 46024, 46024.0, "2026-01-02", "2026/1/2", "2026年1月2日", "2026.01.02",
    " ２０２６-０１-０２ ", "46024",
])
def test_dates_as_excel_stores_them(value):
    assert import_files.to_date(value) == date(2026, 1, 2)


def test_a_date_that_is_not_one_is_refused():
    with pytest.raises(ValueError):
        import_files.to_date("next Tuesday")


def test_headers_in_chinese_and_english():
    headers = ["客户名称", "单位", "联系电话", "座机", "E-mail", "地区", "负责人", "标签", "备注", "??"]
    assert guess_mapping(headers) == [
        "name", "company", "phone", "landline", "email", "region", "owner", "tags", "note", ""]
    assert guess_mapping(["Name", "Company", "Mobile", "姓名（必填）"]) == ["name", "company", "phone", ""]


def test_a_row_with_problems_names_each(app, staff):
    mapping = guess_mapping(["姓名", "手机", "邮箱", "负责人", "阶段", "类型"])
    row = check_row(2, ["", "12", "not-mail", "nobody", "maybe", "alien"], mapping, Lookups())
    assert row.data is None
    assert row.problems == {"name": "name_missing", "email": "email_invalid", "phone": "phone_invalid",
                            "stage": "stage_unknown", "type": "type_unknown", "owner": "owner_unknown"}
    good = check_row(3, ["张伟", 13800138000.0, "ZW@X.CN", "sales.one", "成交", "大客户"], mapping, Lookups())
    assert good.problems == {}
    assert good.data.phones == [("mobile", "13800138000")] and good.data.email == "zw@x.cn"
    assert (good.data.stage, good.data.type, good.owner_id) == ("deal", "key_account", staff["sales"].id)


# ---- files ----------------------------------------------------------------------------

QUIRKS = [
    ["  张伟 ", "北京科技", 13800138000, "zw@example.com", "意向", "VIP，老客户", "第一次来电"],
    ["李娜", "", 1.3800138009e10, "", "潜在", "", ""],
    [None, None, None, None, None, None, None],  # blank row
    ["王芳", "", "１３８００１３８０１０", "", "", "", ""],
]


@pytest.mark.parametrize("name, content", [
    ("quirks.xlsx", xlsx_bytes(QUIRKS)),
    ("quirks.csv", csv_bytes([[("" if c is None else c) for c in r] for r in QUIRKS], encoding="utf-8")),
    ("quirks-bom.csv", csv_bytes([[("" if c is None else c) for c in r] for r in QUIRKS], encoding="utf-8-sig")),
    ("quirks-gbk.csv", csv_bytes([[("" if c is None else c) for c in r] for r in QUIRKS], encoding="gbk")),
    ("quirks-tab.csv", csv_bytes([[("" if c is None else c) for c in r] for r in QUIRKS], encoding="gb18030",
                                 delimiter="\t")),
    ("quirks-semi.csv", csv_bytes([[("" if c is None else c) for c in r] for r in QUIRKS], delimiter=";")),
])
def test_each_kind_of_file_imports_the_same_customers(app, staff, tmp_path, name, content):
    batch = run_import(staff["manager"], write(tmp_path, name, content))
    assert batch.status == ImportStatus.DONE, batch.error
    assert batch.counts["created"] == 3 and batch.counts["rows"] == 3
    found = {c.name: c for c in db.session.scalars(select(Customer))}
    assert set(found) == {"张伟", "李娜", "王芳"}
    assert [p.digits for p in found["张伟"].phones] == ["13800138000"]
    assert [p.digits for p in found["李娜"].phones] == ["13800138009"]
    assert [p.digits for p in found["王芳"].phones] == ["13800138010"]
    assert found["张伟"].stage == "intent" and found["张伟"].owner_id is None
    assert sorted(t.name for t in found["张伟"].tags) == ["VIP", "老客户"]
    note = db.session.scalar(select(CustomerNote).where(CustomerNote.customer_id == found["张伟"].id))
    assert note.body == "第一次来电"


def test_excel_merged_cells_formulas_and_date_cells(app, staff, tmp_path):
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["姓名", "公司", "手机", "生日", "地区"])
    sheet.append(["赵强", "合并公司", "13900000001", datetime(1990, 5, 6), "上海"])
    sheet.append(["钱多", None, "13900000002", 32999, None])
    sheet.append(["孙丽", None, "=\"1390000000\"&\"3\"", "1988年3月4日", None])
    sheet.merge_cells("E2:E3")
    path = tmp_path / "merged.xlsx"
    workbook.save(path)
    # openpyxl writes no cached values; write what Excel would have cached for the formula.
    _cache_formula(path, "C4", "13900000003")
    batch = run_import(staff["admin"], path)
    assert batch.counts["created"] == 3, (batch.counts, imports.read_report(batch)["problems"])
    found = {c.name: c for c in db.session.scalars(select(Customer))}
    assert found["赵强"].birthday == date(1990, 5, 6) and found["赵强"].region == "上海"
    assert found["钱多"].region == "" and found["钱多"].birthday == date(1990, 5, 6)
    assert [p.digits for p in found["孙丽"].phones] == ["13900000003"]
    assert found["孙丽"].birthday == date(1988, 3, 4)


def _cache_formula(path, cell: str, value: str) -> None:
    """Give a formula cell a cached string value, as Excel saves it."""
    import re
    import zipfile

    with zipfile.ZipFile(path) as source:
        items = {name: source.read(name) for name in source.namelist()}
    xml = items["xl/worksheets/sheet1.xml"].decode()
    xml = re.sub(rf'<c r="{cell}"([^>]*)><f>(.*?)</f><v\s*/?>(</v>)?</c>',
                 rf'<c r="{cell}" t="str"><f>\2</f><v>{value}</v></c>', xml)
    assert f"<v>{value}</v>" in xml
    items["xl/worksheets/sheet1.xml"] = xml.encode()
    with zipfile.ZipFile(path, "w") as target:
        for name, data in items.items():
            target.writestr(name, data)


@pytest.mark.parametrize("name, content, message", [
    ("empty.csv", b"", "empty"),
    ("blank.xlsx", b"", "empty"),
    ("picture.png", b"\x89PNG....", "Not a spreadsheet"),
    ("fake.xlsx", b"this is not a zip", "cannot be read"),
    ("old.xls", b"\xd0\xcf\x11\xe0", ".xls"),
    ("binary.csv", b"\x00\x01\x02" * 100, "Not a spreadsheet"),
    ("noname.csv", csv_bytes([["x", "13800138000"]], headers=["Foo", "手机"]), "No name column"),
    ("header-only.csv", csv_bytes([]), "no customers"),
])
def test_bad_files_are_refused_and_nothing_is_kept(app, staff, tmp_path, name, content, message):
    with pytest.raises(import_files.BadFile, match=message):
        receive(staff["manager"], write(tmp_path, name, content))
    db.session.rollback()
    assert count(imports.ImportBatch) == 0
    uploads = tmp_path / "instance" / "imports"
    assert not uploads.exists() or list(uploads.glob("*")) == []


def test_too_many_rows_and_too_large_are_refused(app, staff, tmp_path, monkeypatch):
    monkeypatch.setattr(import_files, "MAX_ROWS", 5)
    with pytest.raises(import_files.BadFile, match="more than 5 rows"):
        receive(staff["manager"], write(tmp_path, "many.csv", csv_bytes(rows(6))))
    app.config["IMPORT_MAX_BYTES"] = 100
    with pytest.raises(import_files.BadFile, match="larger than"):
        receive(staff["manager"], write(tmp_path, "big.csv", csv_bytes(rows(6))))
    assert count(imports.ImportBatch) == 0


# ---- check, import, duplicates ---------------------------------------------------------

def test_the_check_counts_and_writes_nothing(app, staff, tmp_path):
    existing = customers.create_customer(staff["admin"], customers.CustomerData(
        name="老客户", phones=[("mobile", "13700000001")]))
    db.session.commit()
    data = rows(3) + [["重复", "", "13700000001", "", "", "", ""],   # duplicate of the existing
                      ["客户0 again", "", "13900000000", "", "", "", ""],  # duplicate within the file
                      ["", "x", "12", "bad", "", "", ""]]  # invalid
    batch = check(staff["manager"], write(tmp_path, "c.xlsx", xlsx_bytes(data)))
    assert batch.status == ImportStatus.READY
    assert {k: batch.counts[k] for k in ("rows", "new", "duplicate", "file_duplicate", "invalid")} == {
        "rows": 6, "new": 3, "duplicate": 1, "file_duplicate": 1, "invalid": 1}
    report = imports.read_report(batch)
    assert len(report["preview"]) == 6
    assert [r["status"] for r in report["preview"]] == ["new"] * 3 + ["duplicate", "file_duplicate", "invalid"]
    assert report["preview"][3]["existing"] == [existing.id]
    assert report["problems"][0]["number"] == 7
    assert set(report["problems"][0]["problems"]) == {"name", "phone", "email"}
    assert count(Customer) == 1


def test_rejected_rows_file_has_the_reason(app, staff, tmp_path):
    batch = check(staff["manager"], write(tmp_path, "c.csv", csv_bytes(rows(2) + [["", "", "", "", "", "", ""],
                                                                                 ["坏", "", "abc", "", "", "", ""]])))
    text = imports.rejected_csv(batch)
    assert text.startswith("\ufeff")
    table = list(csv.reader(io.StringIO(text[1:])))
    assert table[0] == HEADERS + ["Reason"]
    assert table[1][0] == "坏" and table[1][-1] == "手机: Not a phone number."
    assert len(table) == 2  # the blank row is not a row


def test_reimporting_the_same_file_creates_no_doubles(app, staff, tmp_path):
    path = write(tmp_path, "same.xlsx", xlsx_bytes(rows(20)))
    first = run_import(staff["manager"], path)
    assert first.counts["created"] == 20
    second = run_import(staff["manager"], path)
    assert second.counts["duplicate"] == 20 and second.counts["created"] == 0 and second.counts["skipped"] == 20
    assert count(Customer) == 20


def test_duplicates_filled_or_created_anyway_and_undo_restores(app, staff, tmp_path):
    existing = customers.create_customer(staff["admin"], customers.CustomerData(
        name="客户0", company="", phones=[("mobile", "13900000000")]))
    db.session.commit()
    batch = run_import(staff["manager"], write(tmp_path, "f.csv", csv_bytes(
        [["客户0", "新公司", "13900000000", "k0@example.com", "", "新标签", "补充备注"]])), duplicates="fill")
    assert batch.counts["filled"] == 1
    db.session.refresh(existing)
    assert (existing.company, existing.email) == ("新公司", "k0@example.com")
    assert [t.name for t in existing.tags] == ["新标签"]
    row = db.session.scalar(select(ImportRow))
    assert row.action == "filled" and row.old_values["company"] == ""
    undo_import(staff["manager"], batch)
    db.session.commit()
    db.session.refresh(existing)
    assert (existing.company, existing.email, existing.tags) == ("", "", [])
    assert existing.archived_at is None
    assert count(CustomerNote) == 0

    again = run_import(staff["manager"], write(tmp_path, "g.csv", csv_bytes(
        [["客户0", "", "13900000000", "", "", "", ""]])), duplicates="create")
    assert again.counts["created"] == 1 and count(Customer) == 2
    assert db.session.scalar(select(ImportRow.action).where(ImportRow.batch_id == again.id)) == "created_anyway"


def test_each_created_customer_gets_all_that_creating_one_writes(app, staff, tmp_path, monkeypatch):
    """A chunk's new customers are written with bulk statements; each still gets its
    phones in order, its tags, its first note with the contact time, its pool event
    and ownership clock, its ImportRow, and its search backlog entries."""
    recorded = []
    original = search.sync.record
    monkeypatch.setattr(search.sync, "record", lambda s, c, keys: recorded.extend(keys) or original(s, c, keys))
    headers = ["姓名", "公司", "手机", "座机", "邮箱", "标签", "备注", "负责人"]
    data = [["甲", "甲公司", "13900000001", "010-60000001", "Jia@Example.com", "VIP、展会", "第一次来电", "sales.one"],
            ["乙", "", "13900000002", "", "", "", "", ""]]
    batch = run_import(staff["manager"], write(tmp_path, "c.csv", csv_bytes(data, headers=headers)), owner="column")
    assert batch.counts["created"] == 2
    jia, yi = (db.session.scalar(select(Customer).where(Customer.name == name)) for name in ("甲", "乙"))
    assert [(p.kind, p.digits, p.position) for p in jia.phones] == [("mobile", "13900000001", 0),
                                                                    ("landline", "01060000001", 1)]
    assert (jia.company, jia.email, [t.name for t in jia.tags]) == ("甲公司", "jia@example.com", ["VIP", "展会"])
    assert jia.created_by_id == staff["manager"].id and yi.tags == []
    assert (jia.owner_id, jia.owned_since, jia.pool_reason) == (staff["sales"].id, jia.created_at, "")
    assert (yi.owner_id, yi.owned_since, yi.pool_reason) == (None, None, "new")
    note = db.session.scalars(select(CustomerNote)).one()
    assert (note.customer_id, note.body, note.kind) == (jia.id, "第一次来电", "other")
    assert note.author_id == staff["manager"].id
    assert (jia.last_contact_at, yi.last_contact_at) == (note.created_at, None)
    events = {e.customer_id: e for e in db.session.scalars(select(PoolEvent))}
    assert (events[jia.id].kind, events[jia.id].to_user_id, events[jia.id].reason) == ("assign", staff["sales"].id,
                                                                                      "created")
    assert (events[yi.id].kind, events[yi.id].to_user_id, events[yi.id].reason) == ("create_in_pool", None, "")
    for event in events.values():
        assert event.actor_id == staff["manager"].id
        assert event.details == {"import_batch": batch.id, "override_limit": False}
    assert db.session.execute(select(ImportRow.row_number, ImportRow.customer_id, ImportRow.action)
                              .order_by(ImportRow.row_number)).all() == [(2, jia.id, "created"), (3, yi.id, "created")]
    assert set(recorded) == {("customer", jia.id), ("customer", yi.id), ("note", note.id)}


def test_unknown_tags_dropped_when_asked(app, staff, tmp_path):
    batch = run_import(staff["manager"], write(tmp_path, "t.csv", csv_bytes(rows(2))), tags="drop")
    assert batch.counts["created"] == 2 and count(Tag) == 0


def test_undo_archives_what_was_created_and_is_audited(app, staff, tmp_path):
    batch = run_import(staff["manager"], write(tmp_path, "u.xlsx", xlsx_bytes(rows(5))))
    audit_line = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "customer.import"))
    assert audit_line.details["file"] == "u.xlsx" and audit_line.details["counts"]["created"] == 5
    assert audit_line.details["duplicates"] == "skip"
    assert imports.may_undo(batch)
    undo_import(staff["manager"], batch)
    db.session.commit()
    assert db.session.scalar(select(func.count()).where(Customer.archived_at.is_(None))) == 0
    assert batch.status == ImportStatus.UNDONE and not imports.may_undo(batch)
    with pytest.raises(imports.DomainError):
        undo_import(staff["manager"], batch)


def test_undo_after_seven_days_is_refused(app, staff, tmp_path):
    from datetime import timedelta

    batch = run_import(staff["manager"], write(tmp_path, "u.csv", csv_bytes(rows(1))))
    batch.finished_at -= timedelta(days=8)
    db.session.commit()
    with pytest.raises(imports.DomainError, match="7 days"):
        undo_import(staff["manager"], batch)


# ---- owners ---------------------------------------------------------------------------

def test_owner_column_and_one_salesperson(app, staff, tmp_path):
    headers = ["姓名", "手机", "负责人"]
    data = [["甲", "13900000001", "sales.one"], ["乙", "13900000002", staff["sales2"].display_name],
            ["丙", "13900000003", ""]]
    run_import(staff["manager"], write(tmp_path, "o.csv", csv_bytes(data, headers=headers)), owner="column")
    owners = {c.name: c.owner_id for c in db.session.scalars(select(Customer))}
    assert owners == {"甲": staff["sales"].id, "乙": staff["sales2"].id, "丙": None}
    run_import(staff["manager"], write(tmp_path, "p.csv", csv_bytes(
        [["丁", "13900000004", ""]], headers=headers)), owner=str(staff["sales"].id))
    assert db.session.scalar(select(Customer.owner_id).where(Customer.name == "丁")) == staff["sales"].id


def test_ownership_limit_holds_unless_overridden(app, staff, tmp_path):
    settings.update(staff["admin"], {"pool.max_owned": 2})
    db.session.commit()
    path = write(tmp_path, "l.csv", csv_bytes(rows(3)))
    batch = check(staff["manager"], path, owner=str(staff["sales"].id))
    assert batch.counts["over_limit"][0]["limit"] == 2
    with pytest.raises(imports.DomainError, match="more customers than allowed"):
        import_jobs.confirm(staff["manager"], batch)
    db.session.rollback()
    with pytest.raises(imports.DomainError, match="managers"):
        imports.set_options(staff["sales"], batch, {**batch.options, "override_limit": True})
    batch = run_import(staff["manager"], path, owner=str(staff["sales"].id), override_limit=True)
    assert batch.counts["created"] == 3
    line = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "customer.import"))
    assert line.details["override_limit"] is True


# ---- large files, background, search -----------------------------------------------------

def test_a_large_file_runs_in_the_background_in_chunks(app, staff, tmp_path, monkeypatch):
    monkeypatch.setattr(imports, "CHUNK", 7)
    app.config["IMPORT_BACKGROUND_ROWS"] = 10
    path = write(tmp_path, "big.csv", csv_bytes(rows(30)))
    manager = staff["manager"]
    batch = receive(manager, path)
    batch_id = batch.id
    # Nothing may be read meanwhile in this thread's transaction: on SQLite it would hold the lock.
    assert import_jobs.start(import_jobs.CHECK, batch, manager) is True
    assert import_jobs.wait(batch_id, 60)
    batch = db.session.get(imports.ImportBatch, batch_id)
    assert batch.status == ImportStatus.READY and batch.progress == 30
    import_jobs.confirm(manager, batch)
    db.session.commit()
    assert import_jobs.start(import_jobs.IMPORT, batch, manager) is True
    assert import_jobs.wait(batch_id, 60)
    batch = db.session.get(imports.ImportBatch, batch_id)
    assert batch.status == ImportStatus.DONE and batch.counts["created"] == 30
    assert count(ImportRow) == 30
    found = search.search_customers(staff["admin"], "客户17")
    assert [c.name for c in found.items] == ["客户17"]
    assert search.search_customers(staff["admin"], "13900000029").items[0].name == "客户29"


def test_the_index_is_updated_every_few_chunks_never_per_row(app, staff, tmp_path, monkeypatch):
    monkeypatch.setattr(imports, "CHUNK", 10)
    monkeypatch.setattr(import_jobs, "INDEX_EVERY", 2)
    drains = []
    original = search.sync.drain
    monkeypatch.setattr(search.sync, "drain", lambda *a, **k: drains.append(1) or original(*a, **k))
    batch = check(staff["manager"], write(tmp_path, "c.csv", csv_bytes(rows(25))))
    import_jobs.confirm(staff["manager"], batch)
    db.session.commit()
    drains.clear()
    import_jobs.start(import_jobs.IMPORT, batch, staff["manager"])
    # 25 rows in 3 chunks: after the second chunk's commit, and at the end.
    assert len(drains) == 2
    assert search.search_customers(staff["admin"], "客户24").total == 1


def test_a_failure_half_way_marks_the_batch_failed(app, staff, tmp_path, monkeypatch):
    monkeypatch.setattr(imports, "CHUNK", 5)
    from services import import_apply

    calls = []
    original = import_apply.write_chunk

    def flaky(*args):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk on fire")
        return original(*args)

    monkeypatch.setattr(import_jobs, "write_chunk", flaky)
    batch = check(staff["manager"], write(tmp_path, "f.csv", csv_bytes(rows(12))))
    import_jobs.confirm(staff["manager"], batch)
    db.session.commit()
    import_jobs.start(import_jobs.IMPORT, batch, staff["manager"])
    batch = db.session.get(imports.ImportBatch, batch.id)
    assert batch.status == ImportStatus.FAILED and "unexpected error" in batch.error
    assert count(Customer) == 5 and imports.may_undo(batch)
    undo_import(staff["manager"], batch)
    db.session.commit()
    assert db.session.scalar(select(func.count()).where(Customer.archived_at.is_(None))) == 0


def test_the_mapping_is_remembered(app, staff, tmp_path):
    headers = ["客户", "Foo", "电话"]
    batch = receive(staff["manager"], write(tmp_path, "m.csv", csv_bytes([["甲", "公司甲", "13900000001"]],
                                                                        headers=headers)))
    assert batch.options["mapping"] == ["name", "", "phone"]
    imports.set_options(staff["manager"], batch, {**batch.options, "mapping": ["name", "company", "phone"]})
    db.session.commit()
    again = receive(staff["manager"], write(tmp_path, "m2.csv", csv_bytes([], headers=headers) + "乙,x,1\n".encode()))
    assert again.options["mapping"] == ["name", "company", "phone"]


# ---- the index after an import -------------------------------------------------------------

def _named_rows():
    return [["王小明", "明达公司", "13912345678", "wxm@example.com", "意向", "VIP", "首次来电"],
            ["李华", "华贸公司", "+86 139-8765-4321", "", "潜在", "", ""]]


def test_imported_customers_are_found_by_name_pinyin_and_phone_tail_once_it_is_done(app, staff, tmp_path,
                                                                                    monkeypatch):
    monkeypatch.setattr(imports, "CHUNK", 1)  # a chunk (a transaction) per row: still one index write
    batch = run_import(staff["manager"], write(tmp_path, "p.csv", csv_bytes(_named_rows())))
    assert batch.status == ImportStatus.DONE and batch.counts["created"] == 2
    admin = staff["admin"]
    for typed, name in [("王小明", "王小明"), ("wangxiaoming", "王小明"), ("wxm", "王小明"), ("5678", "王小明"),
                        ("lihua", "李华"), ("4321", "李华"), ("13987654321", "李华"), ("华贸", "李华")]:
        found = search.search_customers(admin, typed)
        assert not found.from_database and [c.name for c in found.items] == [name], typed
    assert [n.body for n in search.search_notes(admin, "来电").items] == ["首次来电"]
    assert search.check().ok
    undo_import(staff["manager"], batch)
    db.session.commit()
    assert search.search_customers(admin, "wangxiaoming").total == 0
    assert search.search_customers(admin, "4321").total == 0
    assert search.search_notes(admin, "来电").total == 0
    assert search.check().ok


def test_an_import_writes_one_segment_per_index_however_many_chunks(app, staff, tmp_path, monkeypatch):
    monkeypatch.setattr(imports, "CHUNK", 3)
    monkeypatch.setattr(search.sync, "BATCH", 4)  # the backlog read 4 rows at a time: still one segment
    search.rebuild(procs=1)
    before = {which: len(search.store.open_index(which)._segments()) for which in ("customers", "notes")}
    many = [row[:6] + ([f"备注{i}"] if i % 2 else [""]) for i, row in enumerate(rows(20))]
    batch = run_import(staff["manager"], write(tmp_path, "s.csv", csv_bytes(many)))
    assert batch.counts["created"] == 20
    after = {which: len(search.store.open_index(which)._segments()) for which in ("customers", "notes")}
    assert after == {which: count + 1 for which, count in before.items()}
    assert search.search_customers(staff["admin"], "客户19").total == 1
    assert search.search_notes(staff["admin"], "备注19").total == 1
    assert db.session.scalar(select(func.count()).select_from(SearchBacklog)) == 0
    assert search.check().ok


def test_new_customers_are_indexed_without_redoing_notes_they_cannot_have(app, staff, tmp_path, monkeypatch):
    recorded = []
    original = search.sync.record
    monkeypatch.setattr(search.sync, "record", lambda s, c, keys: recorded.extend(keys) or original(s, c, keys))
    batch = run_import(staff["manager"], write(tmp_path, "n.csv", csv_bytes(_named_rows())))
    kinds = {kind for kind, _id in recorded}
    assert batch.counts["created"] == 2 and kinds == {"customer", "note"}  # no "customer_notes"
    assert search.search_notes(staff["admin"], "来电").total == 1


def test_an_import_refreshes_the_planners_statistics_as_the_tables_grow(app, staff, tmp_path, monkeypatch):
    """PostgreSQL plans the duplicate lookups from the row counts of the last ANALYZE:
    an import that grows the customers and their phones refreshes them as it goes
    (after 1, 3 and 7 chunks here), not only at the end; SQLite needs nothing."""
    from sqlalchemy import text

    import extensions

    monkeypatch.setattr(imports, "CHUNK", 5)
    monkeypatch.setattr(import_jobs, "ANALYZE_AFTER", 5)
    refreshed = []
    real = extensions.refresh_growing_statistics
    monkeypatch.setattr(import_jobs, "refresh_growing_statistics",
                        lambda *models: refreshed.append(count(Customer)) or real(*models))
    batch = run_import(staff["manager"], write(tmp_path, "grow.csv", csv_bytes(rows(40))))
    assert batch.status == ImportStatus.DONE and batch.counts["created"] == 40
    assert refreshed == [5, 15, 35]  # created so far, this chunk's included (its transaction)
    if db.engine.dialect.name == "postgresql":
        counted = db.session.execute(text(
            "SELECT reltuples FROM pg_class WHERE oid = 'customers'::regclass")).scalar()
        assert counted >= 35  # not the empty table the planner would otherwise assume
