"""The customer import's pages and command: who may use them, upload refusals next
to the file field, preview, import, progress, rejected rows, history, undo, CLI."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import func, select

from extensions import db
from models import Customer, ImportBatch, ImportStatus
from services import import_jobs
from tests.import_helpers import csv_bytes, rows, xlsx_bytes

PAGES = [("get", "/customers/import"), ("post", "/customers/import"), ("get", "/customers/imports"),
         ("get", "/customers/imports/1"), ("get", "/customers/imports/1/progress"),
         ("post", "/customers/imports/1/options"), ("post", "/customers/imports/1/import"),
         ("post", "/customers/imports/1/undo"), ("get", "/customers/imports/1/rejected.csv")]


def upload(client, name, content, **extra):
    return client.post("/customers/import", data={"file": (io.BytesIO(content), name), **extra},
                       content_type="multipart/form-data")


def batch_id(response) -> int:
    assert response.status_code == 303, response.data[:2000]
    return int(response.headers["Location"].rstrip("/").split("/")[-1])


def customer_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Customer))


@pytest.mark.parametrize("role", ["sales", "frontdesk"])
@pytest.mark.parametrize("method, url", PAGES)
def test_only_admins_and_managers_may_import(client, login_as, role, method, url):
    login_as(role)
    assert getattr(client, method)(url).status_code == 403


def test_signed_out_is_sent_to_login(client):
    assert client.get("/customers/import").status_code in (302, 303)


def test_the_customer_list_links_to_the_import_for_those_allowed(client, login_as):
    login_as("manager")
    assert b'data-testid="import-customers"' in client.get("/customers").data
    client.post("/logout")
    login_as("sales")
    assert b'data-testid="import-customers"' not in client.get("/customers").data


@pytest.mark.parametrize("name, content, message", [
    ("empty.xlsx", b"", "The file is empty."),
    ("notes.docx", b"PK....", "Not a spreadsheet"),
    ("fake.xlsx", b"garbage", "cannot be read as .xlsx"),
    ("noname.csv", csv_bytes([["x"]], headers=["Something"]), "No name column"),
])
def test_bad_files_get_a_message_next_to_the_field(app, client, login_as, name, content, message):
    login_as("manager")
    response = upload(client, name, content)
    assert response.status_code == 422
    assert b'data-testid="file-error"' in response.data and message.encode() in response.data
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(ImportBatch)) == 0


def test_no_file_chosen(client, login_as):
    login_as("manager")
    response = client.post("/customers/import", data={}, content_type="multipart/form-data")
    assert response.status_code == 422 and b"Choose a file." in response.data


def test_over_the_size_limit(app, client, login_as):
    app.config["IMPORT_MAX_BYTES"] = 1000
    login_as("manager")
    response = upload(client, "big.csv", csv_bytes(rows(100)))
    assert response.status_code == 422 and b"larger than" in response.data


def test_a_body_over_max_content_length_is_a_message_not_a_raw_413(make_app, make_user):
    app = make_app(MAX_CONTENT_LENGTH=5000, IMPORT_MAX_BYTES=1000, WTF_CSRF_ENABLED=False)
    assert app.config["MAX_CONTENT_LENGTH"] > 5000  # raised to let IMPORT_MAX_BYTES through
    app.config["MAX_CONTENT_LENGTH"] = 5000
    client = app.test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    from tests.conftest import login

    with app.app_context():
        from services import accounts
        from tests.conftest import TEST_PASSWORD

        accounts.create_user("boss", TEST_PASSWORD, "manager")
        db.session.commit()
    login(client, "boss")
    response = upload(client, "big.csv", csv_bytes(rows(400)))
    assert response.status_code == 413
    assert b'data-testid="file-error"' in response.data and b"larger than" in response.data


def test_upload_preview_import_history_undo(app, client, login_as):
    login_as("manager")
    data = rows(3) + [["", "", "12", "", "", "", ""]]
    response = upload(client, "客户.xlsx", xlsx_bytes(data))
    batch = batch_id(response)
    page = client.get(f"/customers/imports/{batch}")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert 'data-testid="import-counts"' in text and "客户1" in text and "The name is missing." in text
    assert customer_count(app) == 0  # nothing before the confirmation

    rejected = client.get(f"/customers/imports/{batch}/rejected.csv")
    assert rejected.data.startswith("\ufeff".encode()) and b"Reason" in rejected.data
    assert "姓名: The name is missing.".encode() in rejected.data

    assert client.post(f"/customers/imports/{batch}/import").status_code == 303
    assert customer_count(app) == 3
    done = client.get(f"/customers/imports/{batch}").get_data(as_text=True)
    assert "3 customers created" in done and 'data-testid="undo-import"' in done
    history = client.get("/customers/imports").get_data(as_text=True)
    assert "客户.xlsx" in history
    # The history's count of customers created is headed "new", not a creation time.
    zh_history = client.get("/customers/imports", headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    assert 'scope="col">新建</th>' in zh_history and "创建时间" not in zh_history

    assert client.post(f"/customers/imports/{batch}/undo").status_code == 303
    with app.app_context():
        assert db.session.scalar(select(func.count()).where(Customer.archived_at.is_(None))) == 0
    assert "Undone" in client.get(f"/customers/imports/{batch}").get_data(as_text=True)
    # An undone import cannot be undone twice.
    client.post(f"/customers/imports/{batch}/undo")
    assert "no longer be undone" in client.get("/customers/imports").get_data(as_text=True)


def test_reimport_is_all_duplicates(app, client, login_as):
    login_as("admin")
    content = csv_bytes(rows(5), encoding="utf-8-sig")
    first = batch_id(upload(client, "a.csv", content))
    client.post(f"/customers/imports/{first}/import")
    second = batch_id(upload(client, "a.csv", content))
    page = client.get(f"/customers/imports/{second}").get_data(as_text=True)
    assert "Import: create 0, fill 0" in page
    client.post(f"/customers/imports/{second}/import")
    assert customer_count(app) == 5


def test_changing_the_mapping_checks_again(app, client, login_as):
    login_as("manager")
    content = csv_bytes([["甲", "Acme", "13900000001"]], headers=["客户", "Org", "电话"])
    batch = batch_id(upload(client, "m.csv", content))
    form = {"column_0": "name", "column_1": "company", "column_2": "phone", "duplicates": "skip", "tags": "drop",
            "owner": "pool"}
    assert client.post(f"/customers/imports/{batch}/options", data=form).status_code == 303
    client.post(f"/customers/imports/{batch}/import")
    with app.app_context():
        assert db.session.scalar(select(Customer.company)) == "Acme"
    # The next file with these headers gets the same mapping.
    again = batch_id(upload(client, "m2.csv", content))
    with app.app_context():
        assert db.session.get(ImportBatch, again).options["mapping"] == ["name", "company", "phone"]


def test_a_mapping_without_name_is_refused_next_to_the_form(client, login_as):
    login_as("manager")
    batch = batch_id(upload(client, "m.csv", csv_bytes(rows(1))))
    response = client.post(f"/customers/imports/{batch}/options", data={
        "column_0": "", "column_1": "company", "duplicates": "skip", "tags": "drop", "owner": "pool"})
    assert response.status_code == 422 and b"Choose the column that holds the names." in response.data


def test_progress_fragment_while_running_and_when_done(app, client, login_as):
    login_as("manager")
    batch = batch_id(upload(client, "p.csv", csv_bytes(rows(2))))
    with app.app_context():
        row = db.session.get(ImportBatch, batch)
        row.status, row.progress = ImportStatus.IMPORTING, 1
        db.session.commit()
    running = client.get(f"/customers/imports/{batch}/progress", headers={"HX-Request": "true"})
    assert running.status_code == 200 and b"<progress" in running.data and b'hx-trigger="every 1s"' in running.data
    with app.app_context():
        db.session.get(ImportBatch, batch).progress = 2
        db.session.commit()
    indexing = client.get(f"/customers/imports/{batch}/progress", headers={"HX-Request": "true"})
    assert b"updating the search index" in indexing.data
    with app.app_context():
        db.session.get(ImportBatch, batch).status = ImportStatus.DONE
        db.session.commit()
    done = client.get(f"/customers/imports/{batch}/progress", headers={"HX-Request": "true"})
    assert done.status_code == 204 and done.headers.get("HX-Refresh") == "true"


def test_a_large_upload_runs_in_the_background_and_reports_done(app, client, login_as):
    app.config["IMPORT_BACKGROUND_ROWS"] = 5
    login_as("manager")
    batch = batch_id(upload(client, "big.csv", csv_bytes(rows(12))))
    assert import_jobs.wait(batch, 60)
    assert client.post(f"/customers/imports/{batch}/import").status_code == 303
    assert import_jobs.wait(batch, 60)
    done = client.get(f"/customers/imports/{batch}/progress", headers={"HX-Request": "true"})
    assert done.status_code == 204 and done.headers.get("HX-Refresh") == "true"
    assert customer_count(app) == 12
    found = client.get("/search?q=客户11").get_data(as_text=True)
    assert "客户11" in found


def test_override_needs_a_manager_and_the_limit_holds(app, client, login_as, make_user):
    from models import Setting

    login_as("manager")
    seller = make_user("sales", username="li.lei")
    with app.app_context():
        db.session.add(Setting(key="pool.max_owned", value=1))
        db.session.commit()
    batch = batch_id(upload(client, "o.csv", csv_bytes(rows(2))))
    form = {"column_0": "name", "column_1": "company", "column_2": "phone", "column_3": "email",
            "column_4": "stage", "column_5": "tags", "column_6": "note", "duplicates": "skip", "tags": "create",
            "owner": str(seller.id)}
    client.post(f"/customers/imports/{batch}/options", data=form)
    page = client.get(f"/customers/imports/{batch}").get_data(as_text=True)
    assert "over the limit of 1" in page
    client.post(f"/customers/imports/{batch}/import")
    assert customer_count(app) == 0
    client.post(f"/customers/imports/{batch}/options", data={**form, "override_limit": "y"})
    client.post(f"/customers/imports/{batch}/import")
    assert customer_count(app) == 2


# ---- the command line ------------------------------------------------------------------

def test_cli_dry_run_and_import(app, make_user, tmp_path):
    make_user("sales", username="wang.wu")
    path = tmp_path / "c.csv"
    path.write_bytes(csv_bytes(rows(3) + [["", "", "x", "", "", "", ""]], encoding="gbk"))
    runner = app.test_cli_runner()
    result = runner.invoke(args=["import", "customers", str(path), "--dry-run", "--lang", "en"])
    assert result.exit_code == 0, result.output
    assert "3 new" in result.output and "1 rejected" in result.output and "Rejected rows: " in result.output
    rejected = result.output.split("Rejected rows: ")[1].strip()
    from pathlib import Path

    assert Path(rejected).read_text(encoding="utf-8-sig").splitlines()[0].endswith("Reason")
    assert customer_count(app) == 0

    result = runner.invoke(args=["import", "customers", str(path), "--owner", "wang.wu", "--lang", "en"])
    assert result.exit_code == 0, result.output
    assert "3 created" in result.output
    with app.app_context():
        owners = set(db.session.scalars(select(Customer.owner_id)))
        assert len(owners) == 1 and None not in owners

    result = runner.invoke(args=["import", "customers", str(path), "--lang", "en"])
    assert "0 created" in result.output and "3 skipped" in result.output
    assert customer_count(app) == 3


def test_cli_refusals(app, tmp_path):
    runner = app.test_cli_runner()
    bad = tmp_path / "x.csv"
    bad.write_bytes(b"")
    result = runner.invoke(args=["import", "customers", str(bad)])
    assert result.exit_code == 1 and "文件是空的" in result.output  # the command speaks the office's language
    good = tmp_path / "g.csv"
    good.write_bytes(csv_bytes(rows(1)))
    result = runner.invoke(args=["import", "customers", str(good), "--owner", "nobody"])
    assert result.exit_code == 2 and "nobody" in result.output
