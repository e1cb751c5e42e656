"""The audit page (D1): filters by kind, user, customer and dates (bad input gets a
message next to its field), keyset paging, details in words, every kind written in
the code labelled, and the log's own export (audited)."""

import ast
import csv
import io
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from blueprints.admin import audit_text
from extensions import db
from models import AuditEvent, Role
from services import accounts, audit, customers, settings, spreadsheets
from services.customers import CustomerData
from tests.conftest import TEST_PASSWORD, login

ROOT = Path(__file__).resolve().parent.parent
HX = {"HX-Request": "true"}


def _kinds_written_in_code() -> set[str]:
    """Every action string passed to audit.record / audit.record_once /
    exports.record_export (and the line services/audit.py writes itself), read from
    the source with ast, so a conditional kind ("user.reactivate" if … else
    "user.deactivate") counts too."""
    found = set()
    files = [*ROOT.glob("services/**/*.py"), *ROOT.glob("blueprints/**/*.py"), ROOT / "cli.py"]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "attr", getattr(node.func, "id", ""))
            position = {"record": 0, "record_once": 1, "_values": 0, "record_export": 1}.get(name)
            if position is None or len(node.args) <= position:
                continue
            argument = node.args[position]
            for leaf in ast.walk(argument):
                if isinstance(leaf, ast.Constant) and isinstance(leaf.value, str):
                    found.add(leaf.value)
            assert not isinstance(argument, ast.JoinedStr), f"{path}: name the audit kind in full"
    return {kind for kind in found if kind and " " not in kind}


def test_every_kind_written_in_the_code_has_a_label():
    kinds = _kinds_written_in_code()
    assert {"login.success", "user.update", "settings.change", "customer.view", "export.customers",
            "user.reactivate", "user.deactivate", "login.address_wait"} <= kinds  # the scan works
    missing = sorted(kinds - set(audit_text.KINDS))
    assert not missing, f"audit kinds without a label in blueprints/admin/audit_text.py KINDS: {missing}"


def test_every_kind_has_a_chinese_label(app):
    from flask_babel import force_locale

    with app.test_request_context(), force_locale("zh"):
        untranslated = [kind for kind, (label, _fields) in audit_text.KINDS.items()
                        if str(label) == label._args[0]]
    assert not untranslated


@pytest.fixture
def log(app):
    """Audit lines of several kinds, users and days; returns ids."""
    with app.app_context():
        root = accounts.create_user("root", TEST_PASSWORD, "admin")
        seller = accounts.create_user("seller", TEST_PASSWORD, "sales", claim_limit=None)
        customer = customers.create_customer(root, CustomerData(name="陈静"))
        other = customers.create_customer(root, CustomerData(name="周强"))
        accounts.update_user(root, seller, display_name="销售小李", role="manager", language="",
                             claim_limit=500)
        settings.update(root, {"pool.max_owned": 80, "pool.protected_stages": ["deal", "lost"]})
        customers.archive(root, customer)
        customers.archive(root, other)
        db.session.commit()
        old = audit.record("customer.restore", root, target=customer)
        db.session.flush()
        old.at = datetime(2026, 1, 15, 4, 0)  # 12:00 in Shanghai
        db.session.commit()
        return {"root": root.id, "seller": seller.id, "customer": customer.id, "other": other.id}


def _admin(client):
    assert login(client, "root").status_code == 303


def test_details_read_as_sentences_not_codes(client, log):
    _admin(client)
    page = client.get("/admin/audit", headers=HX).get_data(as_text=True)
    assert "Role: Sales → Manager" in page
    assert "Claim limit: not set → 500" in page
    assert "Display name: seller → 销售小李" in page
    assert "Maximum owned customers per salesperson: 50 → 80" in page
    assert "Stages that are never recycled: Deal → Deal, Lost" in page
    assert "claim_limit=" not in page and "[None, 500]" not in page
    assert "Account changed" in page and "Customer archived" in page and ">user.update<" not in page


def test_details_in_chinese(client, log):
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "zh-CN"
    _admin(client)
    page = client.get("/admin/audit").get_data(as_text=True)
    assert "角色：销售 → 主管" in page
    assert "名下客户上限：未设置 → 500" in page


def test_unknown_fields_and_kinds_fall_back_to_key_value(app):
    event = AuditEvent(action="import.rows", details={"rows_added": 3, "file": "a.csv"})
    with app.test_request_context(headers={"Accept-Language": "en"}):
        assert audit_text.kind_label("import.rows") == "import.rows"
        assert audit_text.describe(event) == ["rows added: 3", "File: a.csv"]


@pytest.mark.parametrize("lang, kind, sentences, target", [
    ("en", "Import resumed", ["File: k.csv", "Rows done before: 4", "Rows: 7"], "Import batch #5"),
    ("zh", "继续导入", ["文件：k.csv", "此前已处理的行数：4", "行数：7"], "导入批次 #5"),
])
def test_a_resumed_import_reads_in_words(app, lang, kind, sentences, target):
    event = AuditEvent(action="customer.import_resume", target_type="import_batches", target_id=5,
                       details={"file": "k.csv", "rows_done": 4, "rows": 7})
    with app.test_request_context(headers={"Accept-Language": lang}):
        assert audit_text.kind_label("customer.import_resume") == kind
        assert audit_text.describe(event) == sentences
        assert audit_text.describe_target(event) == target


def test_the_kind_select_offers_every_kind_in_words(client, log):
    _admin(client)
    page = client.get("/admin/audit").get_data(as_text=True)
    for kind in audit_text.KINDS:
        assert f'value="{kind}"' in page
    assert ">Settings changed<" in page


def _rows(client, query, **headers):
    response = client.get(f"/admin/audit?{query}", headers=headers)
    return response, response.get_data(as_text=True)


def test_filter_by_kind_user_customer_and_dates(client, log):
    _admin(client)
    _, page = _rows(client, "kind=customer.archive", **HX)
    assert page.count("Customer archived") == 2 and "Account changed" not in page and "<html" not in page
    _, page = _rows(client, f"user={log['seller']}", **HX)
    assert "Account changed" not in page  # seller did nothing; root did
    _, page = _rows(client, f"user={log['root']}&kind=user.update", **HX)
    assert "Account changed" in page
    _, page = _rows(client, f"customer={log['customer']}", **HX)
    assert f"Customer #{log['customer']}" in page and f"Customer #{log['other']}" not in page
    _, page = _rows(client, "date_from=2026-01-15&date_to=2026-01-15", **HX)
    assert "Customer restored" in page and "Customer archived" not in page
    _, page = _rows(client, "date_to=2026-01-14", **HX)
    assert "Customer restored" not in page and "audit line matches" in page


@pytest.mark.parametrize("query,field,message", [
    ("date_from=2026-02-30", "date_from", "Not a valid date value."),
    ("date_from=2026-03-02&date_to=2026-03-01", "date_to", "The end date is before the start date."),
    ("date_from=0001-01-01", "date_from", "Enter a date between the years"),
    ("customer=abc", "customer", "Enter a customer number, e.g. 42."),
    ("kind=nonsense", "kind", "Not a valid choice"),
])
def test_bad_filter_gets_a_message_next_to_the_field(client, log, query, field, message):
    _admin(client)
    response, page = _rows(client, query)
    assert response.status_code == 422
    assert f'id="{field}-error"' in page and message in page
    assert 'aria-invalid="true"' in page


def test_keyset_paging_goes_back_in_time_without_repeats(app, client, log):
    with app.app_context():
        root = db.session.get(accounts.User, log["root"])
        for number in range(120):
            audit.record("login.success", root, ip=f"10.0.0.{number % 250}")
        db.session.commit()
        total = db.session.scalar(select(db.func.count()).select_from(AuditEvent))
    _admin(client)
    _, page = _rows(client, "")
    seen = page.count("<tr>") - 1  # the header row
    assert seen == 50 and "audit-more" in page
    while 'id="audit-more"' in page:
        older = page.split('id="audit-more"')[1].split('hx-get="')[1].split('"')[0].replace("&amp;", "&")
        assert "after=" in older
        response = client.get(older, headers=HX)
        page = response.get_data(as_text=True)
        assert "<table" not in page  # only rows, appended
        seen += page.count("<tr>")
    assert seen == total + 1  # every line once; the sign-in just made adds one


def test_paging_keeps_the_filter(client, log, app):
    with app.app_context():
        root = db.session.get(accounts.User, log["root"])
        for _ in range(60):
            audit.record("logout", root)
        db.session.commit()
    _admin(client)
    _, page = _rows(client, "kind=logout")
    older = page.split('hx-get="')[-1].split('"')[0].replace("&amp;", "&")
    assert "kind=logout" in older
    assert client.get(older, headers=HX).get_data(as_text=True).count("<tr>") == 10


def test_a_swap_puts_each_message_beside_its_field(client, log):
    """An htmx filter change swaps only the results; the messages beside the fields
    come out of band (filled for the bad field, cleared for the others)."""
    _admin(client)
    response, fragment = _rows(client, "date_from=2026-03-02&date_to=2026-03-01", **HX)
    assert response.status_code == 422 and "<form" not in fragment
    assert ('<small id="date_to-error" class="field-error" hx-swap-oob="true">'
            "The end date is before the start date.</small>") in fragment
    assert '<small id="date_from-error" class="field-error" hx-swap-oob="true"></small>' in fragment
    _, page = _rows(client, "date_from=2026-03-02&date_to=2026-03-01")
    assert "hx-swap-oob" not in page


def test_a_junk_cursor_is_the_first_page(client, log):
    _admin(client)
    response, page = _rows(client, "after=yesterday,1")
    assert response.status_code == 200 and "Account changed" in page


@pytest.mark.parametrize("role", ["manager", "sales", "frontdesk"])
def test_only_admins_read_and_export_the_log(client, log, make_user, role):
    user = make_user(role)
    assert login(client, user.username).status_code == 303
    for url in ("/admin/audit", "/admin/audit/export?format=csv", "/admin/audit/export?format=xlsx"):
        assert client.get(url).status_code == 403


def test_audit_export_in_words_for_the_filter_and_audited(app, client, log):
    _admin(client)
    response = client.get("/admin/audit/export?format=csv&kind=user.update")
    assert response.status_code == 200 and response.is_streamed
    body = response.get_data()
    assert body.startswith(spreadsheets.BOM)
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[0] == ["Time", "Who", "Event", "Object", "IP address", "Details"]
    assert len(rows) == 2 and rows[1][2] == "Account changed" and "Role: Sales → Manager" in rows[1][5]
    from openpyxl import load_workbook

    download = client.get(f"/admin/audit/export?format=xlsx&customer={log['customer']}")
    book = load_workbook(io.BytesIO(download.get_data()))
    assert {row[2] for row in book.active.iter_rows(min_row=2, values_only=True)} >= {"Customer archived"}
    with app.app_context():
        lines = list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == "export.audit")
                                        .order_by(AuditEvent.id)))
    assert [line.details for line in lines] == [
        {"format": "csv", "rows": 1, "filter": {"kind": "user.update"}},
        {"format": "xlsx", "rows": lines[1].details["rows"], "filter": {"customer": log["customer"]}}]
    _, page = _rows(client, "kind=export.audit")
    assert "Audit log exported" in page and "Format: CSV" in page and "Rows: 1" in page
    assert "Filter: Event = Account changed" in page


def test_bad_filter_refuses_the_export(client, log):
    _admin(client)
    assert client.get("/admin/audit/export?format=csv&date_from=2026-13-01").status_code == 400


def test_the_customer_page_links_its_audit_lines_for_admins(client, log):
    _admin(client)
    page = client.get(f"/customers/{log['customer']}").get_data(as_text=True)
    assert f"/admin/audit?customer={log['customer']}" in page


def test_role_labels_cover_every_role():
    assert {role.value for role in Role} <= {role.value for role in audit_text.ROLE_LABELS}
