"""The Data safety page (数据安全, D2/D5) and the nightly jobs' banners."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from sqlalchemy import select, update

from extensions import db
from models import AuditEvent, JobRun
from services import backup, leases, nightly, scheduler
from tests.nightly_helpers import block_backups, make_overdue

HX = {"HX-Request": "true"}
PAGE = "/admin/data-safety"


def _make_backup(app) -> Path:
    with app.app_context():
        outcome = nightly.run("backup", force=True, started_by="test")
        assert outcome.ok, outcome.message
        return backup.list_backups(nightly.backup_folder())[0].path


@pytest.mark.parametrize("role", ["manager", "sales", "frontdesk"])
def test_only_admins_open_the_page(app, client, login_as, role):
    path = _make_backup(app)
    login_as(role)
    assert client.get(PAGE).status_code == 403
    assert client.get(f"{PAGE}/status", headers=HX).status_code == 403
    assert client.post(f"{PAGE}/backup").status_code == 403
    assert client.get(f"{PAGE}/download?file={path.name}").status_code == 403
    assert 'href="/admin/data-safety"' not in client.get("/").data.decode()
    with app.app_context():
        assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "backup.download")) is None


def test_signed_out_is_sent_to_sign_in(client):
    assert client.get(PAGE).status_code in (302, 303)


def test_the_page_on_a_fresh_install(client, login_as):
    login_as("admin")
    html = client.get(PAGE).data.decode()
    assert "<h1>Data safety</h1>" in html and 'href="/admin/data-safety"' in html  # menu link
    assert 'data-testid="no-backups"' in html and "No backup yet" in html
    for name in nightly.JOBS:
        assert f'data-testid="job-{name}"' in html
    assert 'data-testid="jobs-banner"' not in html and 'data-testid="sweep-banner"' not in html
    assert "Every night at 02:00 (Asia/Shanghai)." in html


def test_the_page_in_chinese(client, login_as):
    login_as("admin", language="zh")
    html = client.get(PAGE).data.decode()
    assert "数据安全" in html and "立即备份" in html and "夜间任务" in html


def test_back_up_now_runs_in_the_background_and_shows_the_result(app, client, login_as):
    admin = login_as("admin")
    response = client.post(f"{PAGE}/backup", headers=HX)
    assert response.status_code == 200
    fragment = response.data.decode()
    assert "<html" not in fragment and 'data-testid="data-safety-status"' in fragment
    assert 'hx-trigger="every 2s"' in fragment  # the page polls until it is done
    assert "Backup started" in response.headers["HX-Trigger"]
    assert scheduler.wait_for_background(60)
    status = client.get(f"{PAGE}/status", headers=HX).data.decode()
    assert 'hx-trigger="every 2s"' not in status and "Last run succeeded" in status
    assert 'data-testid="download"' in status and "verified" in status
    with app.app_context():
        found = backup.list_backups(nightly.backup_folder())
        assert len(found) == 1 and found[0].verified
        event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "backup.create"))
        assert event.actor_id == admin.id
        assert db.session.get(JobRun, "backup").started_by == admin.username


def test_back_up_now_while_a_backup_runs_starts_none(app, client, login_as):
    login_as("admin")
    with app.app_context():
        assert leases.take("backup", "cron:1:aa", now=leases.utcnow(), started_by="cli")
    response = client.post(f"{PAGE}/backup", headers=HX)
    assert "A backup is running already" in response.headers["HX-Trigger"]
    assert 'data-testid="backup-running"' in response.data.decode()
    assert scheduler.wait_for_background(60)
    with app.app_context():
        assert backup.list_backups(nightly.backup_folder()) == []


def test_back_up_now_needs_the_csrf_token(make_app, make_user):
    from tests.conftest import TEST_PASSWORD

    app = make_app()  # CSRF on, as when serving
    client = app.test_client()
    admin = make_user("admin")
    page = client.get("/login").data.decode()
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    assert client.post("/login", data={"username": admin.username, "password": TEST_PASSWORD,
                                       "csrf_token": token}).status_code == 303
    assert client.post(f"{PAGE}/backup", headers=HX).status_code == 400
    assert scheduler.wait_for_background(5)
    with app.app_context():
        assert backup.list_backups(nightly.backup_folder()) == []
    header = json.loads(re.search(r"hx-headers='([^']+)'", client.get(PAGE).data.decode()).group(1))
    assert client.post(f"{PAGE}/backup", headers={**HX, **header}).status_code == 200
    assert scheduler.wait_for_background(60)
    with app.app_context():
        assert len(backup.list_backups(nightly.backup_folder())) == 1


def test_download_streams_the_file_and_is_audited(app, client, login_as):
    path = _make_backup(app)
    admin = login_as("admin")
    response = client.get(f"{PAGE}/download?file={path.name}")
    assert response.status_code == 200
    assert response.data == path.read_bytes()
    assert f"attachment; filename={path.name}" in response.headers["Content-Disposition"]
    response.close()
    with app.app_context():
        event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "backup.download"))
        assert event.actor_id == admin.id and event.details["file"] == path.name


@pytest.mark.parametrize("name", [
    "..%2F..%2Fconfig.py", "../config.py", "%2E%2E%2Fdeskbook.db", "deskbook.db", "config.py",
    "deskbook-20261202T030000Z.tar.gz", "{backup}.verified.json", ".deskbook-tmp-x", "",
    "%2Fetc%2Fpasswd", "{backup}%2F..%2F..%2Fconfig.py",
])
def test_download_refuses_anything_not_listed(app, client, login_as, name):
    path = _make_backup(app)
    login_as("admin")
    (Path(app.instance_path) / "config.py").write_text("SECRET_KEY = 'no'\n")
    response = client.get(f"{PAGE}/download?file={name.format(backup=path.name)}")
    assert response.status_code == 404
    with app.app_context():
        assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "backup.download")) is None


def test_download_refuses_a_symbolic_link_named_like_a_backup(app, client, login_as, tmp_path):
    path = _make_backup(app)
    secret = tmp_path / "secret.txt"
    secret.write_text("not a backup")
    link = path.with_name("deskbook-20200101T000000Z.tar.gz")
    os.symlink(secret, link)
    login_as("admin")
    assert client.get(f"{PAGE}/download?file={link.name}").status_code == 404


# ---- banners ---------------------------------------------------------------------------------

def _home(client) -> str:
    return client.get("/").data.decode()


def test_a_failed_backup_shows_a_banner_to_admins_only(app, client, login_as, tmp_path):
    block_backups(app, tmp_path)
    with app.app_context():
        assert nightly.run("backup").ok is False
    login_as("manager")
    assert 'data-testid="jobs-banner"' not in _home(client)
    client.post("/logout")
    login_as("admin")
    html = _home(client)
    assert html.count('data-testid="jobs-banner"') == 1 and "The last backup failed." in html
    page = client.get(PAGE).data.decode()
    assert "Last run failed" in page and "No backup made:" in page
    app.config["BACKUP_DIR"] = ""
    with app.app_context():
        assert nightly.run("backup", force=True).ok
    assert 'data-testid="jobs-banner"' not in _home(client)


def test_an_overdue_backup_shows_a_banner_and_a_fresh_install_none(app, client, login_as):
    login_as("admin")
    assert 'data-testid="jobs-banner"' not in _home(client)
    with app.app_context():
        make_overdue("backup")
    html = _home(client)
    assert "The nightly backup is overdue." in html
    assert 'data-testid="job-overdue"' in client.get(PAGE).data.decode()


def test_another_failed_job_shows_a_banner_to_admins(app, client, login_as):
    with app.app_context():
        leases.ensure_jobs(["search"])
        db.session.execute(update(JobRun).where(JobRun.name == "search").values(ok=False, message="boom"))
        db.session.commit()
    login_as("admin")
    assert "A nightly job failed: Search index housekeeping." in _home(client)
