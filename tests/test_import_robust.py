"""The import's gaps closed, through the pages and the command line: a real import
process killed half-way shows as interrupted and is undone cleanly; a choice per
duplicate row sent with the confirm form; the CLI in the configured language; the
nightly jobs' results in the reader's language."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from extensions import database_url, db
from models import AuditEvent, Customer, ImportBatch, ImportRow, ImportStatus, JobRun, utcnow
from services import customers, imports, nightly
from tests.import_helpers import csv_bytes, rows

ROOT = Path(__file__).resolve().parent.parent


def live_customers(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Customer).where(Customer.archived_at.is_(None)))


# ---- a killed import --------------------------------------------------------------------

def _state(app, batch_name: str):
    with app.app_context():
        row = db.session.execute(select(ImportBatch.id, ImportBatch.status, ImportBatch.progress)
                                 .where(ImportBatch.file_name == batch_name)).first()
        db.session.commit()
        return row


@pytest.mark.concurrency
def test_an_import_process_killed_half_way_is_interrupted_and_undone(app, client, login_as, tmp_path):
    path = tmp_path / "big.csv"
    path.write_bytes(csv_bytes(rows(20000)))
    env = {**os.environ, "DATABASE_URL": database_url(app), "DESKBOOK_INSTANCE_PATH": app.instance_path,
           "SECRET_KEY": "x", "DESKBOOK_JOBS_ENABLED": "false"}
    command = [sys.executable, "-m", "flask", "--app", "app", "import", "customers", str(path), "--lang", "en"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and process.poll() is None:
            state = _state(app, "big.csv")
            if state and state.status == ImportStatus.IMPORTING and state.progress > 0:
                break  # a chunk or more is committed
            time.sleep(0.05)
        assert process.poll() is None, "the import ended before it could be killed"
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(30)
    batch_id, status, progress = _state(app, "big.csv")
    assert status == ImportStatus.IMPORTING and 0 < progress < 20000  # what the dead process left
    with app.app_context():
        assert imports.settle_interrupted() == 0  # its last heartbeat is recent
        later = utcnow() + timedelta(seconds=app.config["IMPORT_STALE_SECONDS"] + 1)
        assert imports.settle_interrupted(later) == 1
        db.session.commit()
        batch = db.session.get(ImportBatch, batch_id)
        written = db.session.scalar(select(func.count()).select_from(ImportRow))
        assert batch.status == ImportStatus.INTERRUPTED and batch.counts["created"] == written == batch.progress
    assert live_customers(app) == written

    login_as("manager", language="en")
    page = client.get("/customers/imports").get_data(as_text=True)
    assert "Interrupted" in page and f"{written:,} of 20,000 rows" in page and "Resume" in page
    page = client.get(f"/customers/imports/{batch_id}").get_data(as_text=True)
    assert 'data-testid="import-interrupted"' in page and 'data-testid="undo-import"' in page
    assert client.post(f"/customers/imports/{batch_id}/undo").status_code in (200, 303)
    assert live_customers(app) == 0
    with app.app_context():
        assert db.session.get(ImportBatch, batch_id).status == ImportStatus.UNDONE


def test_the_history_shows_a_silent_import_as_interrupted_and_resumes_it(app, client, login_as, tmp_path):
    manager = login_as("manager", language="en")
    app.config["IMPORT_BACKGROUND_ROWS"] = 100
    with app.app_context():
        batch = imports.receive_file(manager, "s.csv", lambda dest: dest.write_bytes(csv_bytes(rows(3))))
        batch.status, batch.heartbeat_at = ImportStatus.IMPORTING, utcnow() - timedelta(hours=1)
        batch.options = {**batch.options}
        db.session.commit()
        batch_id = batch.id
    page = client.get("/customers/imports").get_data(as_text=True)
    assert "Interrupted" in page and "0 of 3 rows" in page
    assert client.post(f"/customers/imports/{batch_id}/resume").status_code in (200, 303)
    with app.app_context():
        batch = db.session.get(ImportBatch, batch_id)
        assert batch.status == ImportStatus.DONE and batch.counts["created"] == 3
    assert client.post(f"/customers/imports/{batch_id}/resume").status_code in (200, 303)  # refused: a message
    assert live_customers(app) == 3


# ---- a choice per duplicate, through the form -------------------------------------------

def test_the_preview_offers_a_choice_per_duplicate_sent_with_the_confirm(app, client, login_as):
    manager = login_as("manager", language="zh")
    with app.app_context():
        for name, phone in (("老甲", "13700000001"), ("老乙", "13700000002")):
            customers.create_customer(manager, customers.CustomerData(name=name, phones=[("mobile", phone)]))
        db.session.commit()
    content = csv_bytes([["老甲", "甲公司", "13700000001", "", "", "", ""],
                         ["老乙", "乙公司", "13700000002", "", "", "", ""]])
    import io

    response = client.post("/customers/import", data={"file": (io.BytesIO(content), "d.csv")},
                           content_type="multipart/form-data")
    batch_url = response.headers.get("Location") or response.headers.get("HX-Redirect")
    page = client.get(batch_url).get_data(as_text=True)
    assert 'name="dup_2"' in page and 'name="dup_3"' in page and "逐条选择重复行的处理方式" in page
    assert "补全空白字段" in page and "仍然新建" in page
    client.post(batch_url + "/import", data={"dup_2": "fill", "dup_3": "create"})
    page = client.get(batch_url).get_data(as_text=True)
    assert "第 2 行：补全空白字段" in page and "第 3 行：仍然新建" in page
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Customer)) == 3
        assert db.session.scalar(select(Customer.company).where(Customer.name == "老甲")) == "甲公司"


# ---- the command line's language ---------------------------------------------------------

@pytest.mark.parametrize("lang, words", [
    ("en", ["3 rows: 3 new", "Imported: 3 created"]),
    ("zh", ["共 3 行：新客户 3 行", "导入完成：新建 3 个"]),
])
def test_the_cli_import_speaks_the_chosen_language(app, tmp_path, lang, words):
    path = tmp_path / "c.csv"
    path.write_bytes(csv_bytes(rows(3)))
    result = app.test_cli_runner().invoke(args=["import", "customers", str(path), "--lang", lang])
    assert result.exit_code == 0, result.output
    assert all(word in result.output for word in words), result.output


def test_the_cli_import_defaults_to_the_offices_language(app, tmp_path):
    path = tmp_path / "c.csv"
    path.write_bytes(csv_bytes(rows(1)))
    app.config["BABEL_DEFAULT_LOCALE"] = "en"
    result = app.test_cli_runner().invoke(args=["import", "customers", str(path)])
    assert "1 rows: 1 new" in result.output and "Imported: 1 created" in result.output
    empty = tmp_path / "e.csv"
    empty.write_bytes(b"")
    result = app.test_cli_runner().invoke(args=["import", "customers", str(empty), "--owner", "nobody"])
    assert result.exit_code == 2 and "is not an active colleague" in result.output
    result = app.test_cli_runner().invoke(args=["import", "customers", str(empty), "--owner", "nobody",
                                                "--lang", "zh"])
    assert result.exit_code == 2 and "不是可以负责客户的在职同事" in result.output


# ---- nightly job results in the reader's language -----------------------------------------

def _ran_prune(app):
    with app.app_context():
        outcome = nightly.run("prune", force=True, started_by="test")
        row = db.session.get(JobRun, "prune")
        assert row.details == {"code": "throttle_pruned", "count": 0}
        assert outcome.message == row.message == "Pruned 0 sign-in throttle rows."


@pytest.mark.parametrize("language, words", [("zh", "已清理 0 条登录限制记录。"),
                                             ("en", "Pruned 0 sign-in throttle rows.")])
def test_the_data_safety_page_says_a_jobs_result_in_the_readers_language(app, client, login_as, language, words):
    _ran_prune(app)
    login_as("admin", language=language)
    page = client.get("/admin/data-safety").get_data(as_text=True)
    assert words in page


@pytest.mark.parametrize("lang, words", [("zh", ["每晚", "已清理 0 条登录限制记录。", "成功"]),
                                         ("en", ["Nightly at", "Pruned 0 sign-in throttle rows.", " ok "])])
def test_jobs_status_says_results_in_the_chosen_language(app, lang, words):
    _ran_prune(app)
    result = app.test_cli_runner().invoke(args=["jobs", "status", "--lang", lang])
    assert result.exit_code == 0 and all(word in result.output for word in words), result.output


def test_a_failed_job_and_an_old_message_are_shown(app):
    with app.app_context():
        from flask_babel import force_locale

        assert nightly.detail_text({"code": "failed", "error": "disk full"}) in ("失败：disk full", "Failed: disk full")
        with force_locale("zh"):
            assert nightly.detail_text({"code": "failed", "error": "disk full"}) == "失败：disk full"
            assert nightly.detail_text(None, "written before details were") == "written before details were"
            assert nightly.detail_text({"code": "pool_recycled"}, "fallback") == "fallback"


def _silent_import(app, n: int) -> int:
    with app.app_context():
        batch = imports.receive_file(None, "cli.csv", lambda dest: dest.write_bytes(csv_bytes(rows(n))))
        batch.status, batch.heartbeat_at = ImportStatus.IMPORTING, utcnow() - timedelta(hours=1)
        db.session.commit()
        return batch.id


def test_the_cli_resumes_and_undoes_an_interrupted_import(app):
    batch_id = _silent_import(app, 3)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["import", "resume", str(batch_id), "--lang", "en"])
    assert result.exit_code == 0 and "Imported: 3 created" in result.output, result.output
    with app.app_context():
        line = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "customer.import_resume"))
        assert (line.actor_id, line.actor_name, line.target_id) == (None, "cli", batch_id)
    result = runner.invoke(args=["import", "resume", str(batch_id), "--lang", "zh"])
    assert result.exit_code == 1 and "只有意外中断的导入才能继续" in result.output
    result = runner.invoke(args=["import", "undo", str(batch_id)])
    assert result.exit_code == 0 and "导入已撤销：3 个客户已归档" in result.output
    assert live_customers(app) == 0
    assert runner.invoke(args=["import", "undo", "999999"]).exit_code == 2


def test_an_interrupted_import_that_imported_nothing_offers_undo_which_closes_it(app, client, login_as):
    batch_id = _silent_import(app, 3)
    login_as("manager", language="en")
    assert f"/customers/imports/{batch_id}/undo" in client.get("/customers/imports").get_data(as_text=True)
    page = client.get(f"/customers/imports/{batch_id}").get_data(as_text=True)
    assert "before it created or filled in any customer" in page and "What it wrote so far" not in page
    assert 'data-testid="undo-import"' in page and 'data-testid="resume-import"' in page
    assert client.post(f"/customers/imports/{batch_id}/undo").status_code == 303
    with app.app_context():
        assert db.session.get(ImportBatch, batch_id).status == ImportStatus.UNDONE
    page = client.get(f"/customers/imports/{batch_id}").get_data(as_text=True)
    assert 'data-testid="undo-import"' not in page and 'data-testid="resume-import"' not in page
    assert "Import undone: it had changed no customer." in page and "0 customers archived" not in page
    assert live_customers(app) == 0


@pytest.mark.parametrize("lang, words", [("en", "Import undone: it had changed no customer."),
                                         ("zh", "已撤销此次导入：它未改动任何客户。")])
def test_the_cli_undo_of_an_import_that_changed_nothing_says_so(app, lang, words):
    batch_id = _silent_import(app, 3)
    result = app.test_cli_runner().invoke(args=["import", "undo", str(batch_id), "--lang", lang])
    assert result.exit_code == 0 and words in result.output, result.output
    assert "archived" not in result.output and "归档" not in result.output
    with app.app_context():
        assert db.session.get(ImportBatch, batch_id).status == ImportStatus.UNDONE


def test_the_interrupted_banner_in_chinese_when_nothing_was_imported(app, client, login_as):
    batch_id = _silent_import(app, 3)
    login_as("manager", language="zh")
    page = client.get(f"/customers/imports/{batch_id}").get_data(as_text=True)
    assert "尚未新建或补全任何客户" in page and "撤销此次导入" in page


@pytest.mark.parametrize("lang, words", [("en", "there is nothing to undo"), ("zh", "没有可撤销的内容")])
def test_the_cli_says_an_import_that_imported_nothing_has_nothing_to_undo(app, lang, words):
    batch_id = _silent_import(app, 3)
    with app.app_context():
        batch = db.session.get(ImportBatch, batch_id)
        batch.status, batch.finished_at = ImportStatus.DONE, utcnow()
        batch.counts = {**batch.counts, "created": 0, "filled": 0, "skipped": 3, "rejected": 0, "imported": 0}
        db.session.commit()
    result = app.test_cli_runner().invoke(args=["import", "undo", str(batch_id), "--lang", lang])
    assert result.exit_code == 1 and words in result.output, result.output


@pytest.mark.parametrize("command", ["resume", "undo"])
def test_the_cli_says_which_import_batch_it_cannot_find(app, command):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["import", command, "999999", "--lang", "en"])
    assert result.exit_code == 2 and "There is no import batch 999999." in result.output
    result = runner.invoke(args=["import", command, "999999", "--lang", "zh"])
    assert result.exit_code == 2 and "没有导入批次 999999。" in result.output
