"""Exports (A3): the customer list, the notes list and a customer's whole record as
CSV and Excel — the list's own rows and columns for the filter, the policy's scope,
refusals, the sales setting, formula injection, the audit line, and streaming in
bounded memory."""

import csv
import io
import tracemalloc
from datetime import date, timedelta

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from extensions import db
from models import AuditEvent, Customer, Tag, TagGroup
from services import accounts, customers, exports, notes, policy, pool, settings, spreadsheets, tasks
from services.customers import CustomerData, CustomerFilter
from services.notes import NoteData
from tests.conftest import TEST_PASSWORD, login

HX = {"HX-Request": "true"}


@pytest.fixture
def office(app):
    """Two salespeople with a customer each (one tagged, one with a formula for a
    name), a pool customer, an archived one, notes, a follow-up; staff of each role."""
    with app.app_context():
        people = {name: accounts.create_user(name, TEST_PASSWORD, role) for name, role in [
            ("s1", "sales"), ("s2", "sales"), ("boss", "manager"), ("root", "admin"), ("desk", "frontdesk")]}
        s1, s2, boss = people["s1"], people["s2"], people["boss"]
        group = TagGroup(name="行业")
        db.session.add(group)
        db.session.flush()
        tag = Tag(group_id=group.id, name="制造")
        db.session.add(tag)
        db.session.flush()
        own = customers.create_customer(s1, CustomerData(
            name="张伟", company="北京制造有限公司", phones=[("mobile", "13800138000")], email="zw@example.com",
            address="北京市朝阳区", stage="intent"))
        customers.set_tags(s1, own, [tag.id])
        formula = customers.create_customer(s1, CustomerData(name="=HYPERLINK(\"http://x\",\"点我\")",
                                                             company="+86 公司", stage="deal"))
        foreign = customers.create_customer(s2, CustomerData(name="李娜", address="上海市机密地址"))
        in_pool = customers.create_customer(boss, CustomerData(name="王芳"))
        archived = customers.create_customer(s1, CustomerData(name="赵磊"))
        customers.archive(boss, archived)
        notes.create_note(s1, own, NoteData(kind="call", body="客户询问报价", sections={"summary": "报价"},
                                            tag_ids=[tag.id]))
        notes.create_note(s2, foreign, NoteData(kind="visit", body="机密备注"))
        notes.create_note(s1, in_pool, NoteData(kind="call", body="-1+1 公海客户来电"))
        tasks.create_task(s1, own, due_date=date.today() + timedelta(days=3), title="回访张伟")
        db.session.commit()
        return {"tag": tag.id, "own": own.id, "formula": formula.id, "foreign": foreign.id,
                "pool": in_pool.id, "archived": archived.id}


def _as(client, username):
    assert login(client, username).status_code == 303


def _csv(response) -> list[list[str]]:
    body = response.get_data()
    assert body.startswith(spreadsheets.BOM)
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))


def _xlsx(response):
    return load_workbook(io.BytesIO(response.get_data()), read_only=False)


def _set(app, key, value):
    with app.app_context():
        root = accounts.get_by_username("root")
        settings.update(root, {key: value})
        db.session.commit()


# ---- content --------------------------------------------------------------------------

def test_csv_has_a_bom_translated_headers_and_chinese(client, office):
    _as(client, "boss")
    response = client.get("/customers/export?format=csv")
    assert response.status_code == 200 and response.is_streamed
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = _csv(response)
    assert rows[0][:4] == ["No.", "Name", "Company", "Phone"]
    by_name = {row[1]: row for row in rows[1:]}
    assert set(by_name) >= {"张伟", "李娜", "王芳"} and "赵磊" not in by_name  # archived: not in the list
    zhang = dict(zip(rows[0], by_name["张伟"]))
    assert zhang["Phone"] == "138 0013 8000" and zhang["Stage"] == "Intent" and zhang["Tags"] == "制造"
    assert zhang["Address"] == "北京市朝阳区"


def test_csv_headers_and_values_in_chinese(client, office):
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "zh-CN"
    _as(client, "boss")
    rows = _csv(client.get("/customers/export?format=csv"))
    assert "姓名" in rows[0] or "名称" in rows[0]
    assert any("意向" in row for row in rows[1:])


def test_xlsx_opens_with_openpyxl(client, office):
    _as(client, "boss")
    response = client.get("/customers/export?format=xlsx")
    assert response.status_code == 200 and response.is_streamed
    assert response.mimetype == spreadsheets.XLSX_MIMETYPE
    sheet = _xlsx(response).active
    header = [cell.value for cell in sheet[1]]
    assert header[:3] == ["No.", "Name", "Company"]
    names = {row[1] for row in sheet.iter_rows(min_row=2, values_only=True)}
    assert {"张伟", "李娜", "王芳"} <= names


def test_export_holds_exactly_the_filtered_list(client, office):
    _as(client, "boss")
    for query, expected in [(f"tag={office['tag']}", {"张伟"}), ("stage=deal", {"'=HYPERLINK(\"http://x\",\"点我\")"}),
                            ("q=李", {"李娜"}), ("owner=pool", {"王芳"}), ("archived=1", {"赵磊"})]:
        rows = _csv(client.get(f"/customers/export?format=csv&{query}"))
        assert {row[1] for row in rows[1:]} == expected, query


def test_the_list_and_the_export_agree(app, office):
    """Same query builder: the list's items and the export's ids match for a filter."""
    with app.app_context():
        boss = accounts.get_by_username("boss")
        flt = CustomerFilter(q="张", sort="name")
        listed = [c.id for c in customers.list_customers(boss, flt).items]
        exported = [row["id"] for row in exports.export_customers(boss, flt).rows]
        assert listed == exported


def test_notes_export_follows_the_notes_filter(client, office):
    _as(client, "boss")
    rows = _csv(client.get("/notes/export?format=csv&kind=call"))
    bodies = {row[rows[0].index("Note")] for row in rows[1:]}
    assert bodies == {"客户询问报价", "'-1+1 公海客户来电"}
    header = rows[0]
    assert {"Customer", "Kind", "Author", "Communication summary", "Tags"} <= set(header)
    tagged = _csv(client.get(f"/notes/export?format=csv&tag={office['tag']}"))
    assert len(tagged) == 2 and tagged[1][header.index("Communication summary")] == "报价"
    sheet = _xlsx(client.get("/notes/export?format=xlsx&q=机密")).active
    assert [row[header.index("Note")] for row in sheet.iter_rows(min_row=2, values_only=True)] == ["机密备注"]


# ---- scope and columns ----------------------------------------------------------------

def test_front_desk_and_sales_may_not_export_by_default(client, office):
    for user in ("desk", "s1"):
        other = client.application.test_client()
        _as(other, user)
        for url in ("/customers/export?format=csv", "/customers/export?format=xlsx", "/notes/export?format=csv",
                    f"/customers/{office['own']}/export"):
            assert other.get(url).status_code == 403, (user, url)
        assert b"customer-export" not in other.get("/customers").data


def test_the_buttons_carry_the_current_filter(client, office):
    """The links sit in the results htmx swaps, so a changed filter changes them."""
    _as(client, "boss")
    fragment = client.get(f"/customers?stage=intent&tag={office['tag']}&page=1", headers=HX).get_data(as_text=True)
    assert f"/customers/export?format=xlsx&amp;stage=intent&amp;tag={office['tag']}" in fragment
    assert f"/customers/export?format=csv&amp;stage=intent&amp;tag={office['tag']}" in fragment
    notes_page = client.get("/notes?kind=call").get_data(as_text=True)
    assert "/notes/export?format=csv&amp;kind=call" in notes_page
    assert "Only your own customers" not in notes_page


def test_an_unknown_format_is_refused(client, office):
    _as(client, "boss")
    assert client.get("/customers/export?format=pdf").status_code == 400
    assert client.get("/notes/export?format=").status_code == 400


def test_anonymous_is_sent_to_sign_in(client, office):
    response = client.get("/customers/export?format=csv")
    assert response.status_code == 303 and "/login" in response.headers["Location"]


def test_sales_under_the_setting_export_only_their_own(app, client, office):
    _set(app, "export.sales_own", True)
    _as(client, "s1")
    page = client.get("/customers").data.decode()
    assert "customer-export" in page and "Only your own customers are exported." in page
    rows = _csv(client.get("/customers/export?format=csv"))
    names = {row[1] for row in rows[1:]}
    assert names == {"张伟", "'=HYPERLINK(\"http://x\",\"点我\")"}  # not the pool customer the list shows
    assert not {"王芳", "李娜"} & names
    note_rows = _csv(client.get("/notes/export?format=csv"))
    assert {row[note_rows[0].index("Note")] for row in note_rows[1:]} == {"客户询问报价"}  # not the pool note
    assert client.get("/customers/export?format=csv&owner=pool").get_data().count(b"\n") == 1  # header only
    assert client.get(f"/customers/{office['own']}/export").status_code == 200
    assert client.get(f"/customers/{office['pool']}/export").status_code == 403  # visible, not theirs
    assert client.get(f"/customers/{office['foreign']}/export").status_code == 404  # not visible at all


def test_front_desk_columns_are_the_basic_card(app, office):
    with app.app_context():
        desk = accounts.get_by_username("desk")
        boss = accounts.get_by_username("boss")
        assert exports.customer_columns(desk) == ["id", "name", "company", "phones", "owner", "last_contact"]
        assert set(exports.customer_columns(desk)) - {"id"} == policy.BASIC_CARD_FIELDS
        assert {"email", "address", "stage", "tags"} <= set(exports.customer_columns(boss))
        # The rows hold no other field.
        row = next(exports._customer_rows(policy.visible_customers(desk), exports.customer_columns(desk)))
        assert set(row) == {"id", "name", "company", "phones", "owner", "last_contact"}


def test_only_the_columns_the_user_sees_are_read(app, office):
    """A field the user may not see is not even read from the database."""
    from sqlalchemy import event

    with app.app_context():
        desk = accounts.get_by_username("desk")
        statements = []

        def on_statement(_connection, _cursor, statement, *_args):
            statements.append(statement)

        event.listen(db.engine, "before_cursor_execute", on_statement)
        try:
            rows = list(exports._customer_rows(policy.visible_customers(desk), exports.customer_columns(desk)))
        finally:
            event.remove(db.engine, "before_cursor_execute", on_statement)
        assert rows and all(set(row) == set(exports.customer_columns(desk)) for row in rows)
        read = " ".join(statements)
        assert "customers.name" in read
        assert not any(f"customers.{field}" in read for field in ("address", "email", "stage", "birthday")), read


def test_export_refuses_what_policy_refuses(app, office):
    with app.app_context():
        desk = accounts.get_by_username("desk")
        s1 = accounts.get_by_username("s1")
        assert exports.export_customers(desk, CustomerFilter()).count == 0
        assert exports.export_notes(s1, notes_filter()).count == 0
        assert not exports.may_export(desk) and not exports.may_export(s1)


def notes_filter():
    from services.notes_list import NoteFilter

    return NoteFilter()


# ---- formula injection ----------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ("=1+1", "'=1+1"), ("+1", "'+1"), ("-1", "'-1"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"),
    ("\r=1", "'\r=1"), ("张伟", "张伟"), ("138 0013 8000", "138 0013 8000"), ("a=b", "a=b"), (5, 5), (None, None),
])
def test_safe_cell(text, expected):
    assert spreadsheets.safe_cell(text) == expected


def test_formulas_are_text_in_both_formats(client, office):
    _as(client, "boss")
    rows = _csv(client.get("/customers/export?format=csv&stage=deal"))
    assert rows[1][1] == "'=HYPERLINK(\"http://x\",\"点我\")" and rows[1][2] == "'+86 公司"
    sheet = _xlsx(client.get("/customers/export?format=xlsx&stage=deal")).active
    cell = sheet.cell(row=2, column=2)
    assert cell.data_type == "s" and cell.value.startswith("'=")


def test_phone_numbers_stay_readable(client, office):
    _as(client, "boss")
    rows = _csv(client.get("/customers/export?format=csv&q=张伟"))
    assert rows[1][rows[0].index("Phone")] == "138 0013 8000"  # spaced digits: text in Excel, not 1.38E+10


# ---- audit ----------------------------------------------------------------------------

def _lines(app, action):
    with app.app_context():
        return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)
                                       .order_by(AuditEvent.id)))


def test_every_export_is_audited_with_its_count(app, client, office):
    _as(client, "boss")
    client.get(f"/customers/export?format=csv&tag={office['tag']}&sort=name").get_data()
    client.get("/customers/export?format=xlsx").get_data()
    client.get("/notes/export?format=csv&kind=call").get_data()
    client.get(f"/customers/{office['own']}/export").get_data()
    first, second = _lines(app, "export.customers")
    assert first.actor_name == "boss" and first.details == {
        "format": "csv", "rows": 1, "filter": {"tag": [office["tag"]]}}
    assert second.details["format"] == "xlsx" and second.details["rows"] == 4 and second.details["filter"] == {}
    (notes_line,) = _lines(app, "export.notes")
    assert notes_line.details == {"format": "csv", "rows": 2, "filter": {"kind": "call"}}
    (record,) = _lines(app, "export.customer_record")
    assert record.target_type == "customers" and record.target_id == office["own"]
    assert record.details["rows"] >= 4  # the card, a note, a follow-up, pool history


@pytest.mark.parametrize("url", ["/customers/export?format=csv", "/customers/export?format=xlsx", "own-record"])
def test_the_audit_line_starts_a_transaction_of_its_own(app, client, office, url):
    """A GET reads in a deferred SQLite transaction; writing the line there after
    reading every row could fail at once if a colleague saved meanwhile. So the
    read transaction ends first and the insert is the new one's first statement."""
    from sqlalchemy import event

    _as(client, "boss")
    url = f"/customers/{office['own']}/export" if url == "own-record" else url
    with app.app_context():
        engine = db.engine
    seen = []

    def on_rollback(_connection):
        seen.append("ROLLBACK")

    def on_statement(_connection, _cursor, statement, *_args):
        seen.append(statement.split()[0])

    event.listen(engine, "rollback", on_rollback)
    event.listen(engine, "before_cursor_execute", on_statement)
    try:
        client.get(url).get_data()
    finally:
        event.remove(engine, "rollback", on_rollback)
        event.remove(engine, "before_cursor_execute", on_statement)
    insert_at = seen.index("INSERT")
    since_rollback = seen[:insert_at][::-1]
    since_rollback = since_rollback[:since_rollback.index("ROLLBACK")]
    assert set(since_rollback) <= {"BEGIN"}, seen[max(0, insert_at - 4):insert_at + 1]


def test_a_refused_export_leaves_no_line(app, client, office):
    _as(client, "s1")
    client.get("/customers/export?format=csv")
    assert _lines(app, "export.customers") == []


# ---- one customer's record ------------------------------------------------------------

def test_customer_record_has_a_sheet_per_part(app, client, office):
    with app.app_context():
        boss = accounts.get_by_username("boss")
        pool.release_to_pool(accounts.get_by_username("s1"), db.session.get(Customer, office["own"]), "no_need")
        customers.update_customer(boss, db.session.get(Customer, office["own"]), CustomerData(
            name="张伟", company="北京制造有限公司", phones=[("mobile", "13800138000")], email="zw@example.com",
            address="北京市朝阳区", stage="deal"), acknowledge_duplicates=True)
        db.session.commit()
    _as(client, "boss")
    page = client.get(f"/customers/{office['own']}").data.decode()
    assert "export-record" in page
    response = client.get(f"/customers/{office['own']}/export")
    assert response.status_code == 200 and response.is_streamed
    book = _xlsx(response)
    assert book.sheetnames == ["Customer", "Notes", "Comments", "Follow-ups", "Pool history", "Change history"]
    assert [c.value for c in book["Customer"][2]][1] == "张伟"
    assert book["Notes"].max_row == 2 and book["Follow-ups"]["A2"].value == "回访张伟"
    events = [row[1] for row in book["Pool history"].iter_rows(min_row=2, values_only=True)]
    assert "Released" in events
    changes = {row[2]: row for row in book["Change history"].iter_rows(min_row=2, values_only=True)}
    assert changes["Stage"][3:] == ("Intent", "Deal")


def test_customer_record_refusals(client, office):
    _as(client, "boss")
    assert client.get("/customers/2000000000/export").status_code == 404
    other = client.application.test_client()
    _as(other, "s2")
    assert other.get(f"/customers/{office['own']}/export").status_code == 404


# ---- streaming, bounded memory --------------------------------------------------------

def test_rows_are_a_generator_read_in_batches(app, office, monkeypatch):
    """Structural: the service hands out an iterator, and reads the database BATCH
    rows at a time (a server-side cursor on PostgreSQL)."""
    import types

    monkeypatch.setattr(exports, "BATCH", 2)
    with app.app_context():
        boss = accounts.get_by_username("boss")
        export = exports.export_customers(boss, CustomerFilter())
        assert isinstance(export.rows, types.GeneratorType) and export.count == 4
        chunks = spreadsheets.csv_chunks(spreadsheets.Sheet("x", ["a"], iter([["1"]])))
        assert isinstance(chunks, types.GeneratorType)
        assert len(list(export.rows)) == 4


def _bulk_customers(owner_id: int, start: int, count: int) -> None:
    db.session.execute(Customer.__table__.insert(), [
        {"name": f"客户{start + i}", "company": f"公司{i % 97}", "email": "", "address": "北京市海淀区中关村大街1号",
         "region": "北京", "type": "individual", "stage": "potential", "importance": "B", "source": "call",
         "owner_id": owner_id, "recycle_locked": False, "times_recycled": 0, "pool_reason": ""}
        for i in range(count)])
    db.session.commit()


def _peak_export(app, fmt: str) -> int:
    with app.app_context():
        boss = accounts.get_by_username("boss")
        tracemalloc.start()
        export = exports.export_customers(boss, CustomerFilter())
        sheet = spreadsheets.Sheet("x", export.columns, export.rows)
        if fmt == "csv":
            for _chunk in spreadsheets.csv_chunks(sheet):
                pass
        else:
            file, _counts = spreadsheets.write_xlsx([sheet])
            file.close()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        db.session.remove()
        return peak


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_memory_stays_flat_as_the_export_grows(app, office, fmt, monkeypatch):
    """Ten times the rows must not cost ten times the memory: the export holds one
    batch, never the whole list (measured with tracemalloc; a generous bound)."""
    monkeypatch.setattr(exports, "BATCH", 200)
    monkeypatch.setattr(spreadsheets, "SPOOL_BYTES", 0)  # the .xlsx goes to disk at once
    with app.app_context():
        s1_id = accounts.get_by_username("s1").id
        _bulk_customers(s1_id, 0, 500)
    small = _peak_export(app, fmt)
    with app.app_context():
        _bulk_customers(s1_id, 500, 4500)
    large = _peak_export(app, fmt)
    assert large < small * 3, (small, large)
