"""``flask backup create | list | verify | restore`` (D2), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import tarfile
import threading
import time
from datetime import datetime, timedelta, UTC
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text

from extensions import database_url, db
from models import AuditEvent, Customer, CustomerNote, User
from services import accounts, backup, customers, notes, search
from services.customers import CustomerData
from services.notes import NoteData
from tests.conftest import TEST_PASSWORD


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def folder(app) -> Path:
    return Path(app.instance_path) / "backups"


def _is_postgres(app) -> bool:
    return database_url(app).startswith("postgresql")


def _restore_args(app, path) -> list[str]:
    # The PostgreSQL test database is shared with other test runs, whose sessions
    # count as "in use"; SQLite's file is this run's alone.
    return ["backup", "restore", str(path)] + (["--force"] if _is_postgres(app) else [])


def _customer_with_note(app, name: str, body: str) -> tuple[int, int]:
    with app.app_context():
        admin = db.session.scalar(select(User).where(User.username == "root")) or \
            accounts.create_user("root", TEST_PASSWORD, "admin")
        customer = customers.create_customer(admin, CustomerData(name=name))
        note = notes.create_note(admin, customer, NoteData(kind="call", body=body))
        db.session.commit()
        return customer.id, note.note.id


def _head_revision(app) -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(Path(app.root_path) / "migrations")).get_current_head()


def _create(runner) -> Path:
    result = runner.invoke(args=["backup", "create"])
    assert result.exit_code == 0, result.output
    return Path(result.output.split("Wrote ", 1)[1].split(" (", 1)[0])


def test_round_trip_create_list_verify_restore(app, runner, folder):
    kept_customer, kept_note = _customer_with_note(app, "王建国", "报价单已发出")
    path = _create(runner)
    lost_customer, lost_note = _customer_with_note(app, "李后来", "后来的记录")

    listed = runner.invoke(args=["backup", "list"])
    assert listed.exit_code == 0 and path.name in listed.output
    assert "verified" in listed.output and "not verified" not in listed.output  # create verified it
    verified = runner.invoke(args=["backup", "verify", str(path)])
    assert verified.exit_code == 0 and "OK" in verified.output, verified.output

    restored = runner.invoke(args=_restore_args(app, path))
    assert restored.exit_code == 0, restored.output
    assert "Restored" in restored.output and "Indexed" in restored.output
    with app.app_context():
        assert db.session.get(Customer, kept_customer) and db.session.get(CustomerNote, kept_note)
        assert db.session.get(Customer, lost_customer) is None
        assert db.session.get(CustomerNote, lost_note) is None
        admin = db.session.scalar(select(User).where(User.username == "root"))
        assert [note.id for note in search.search_notes(admin, "报价单").items] == [kept_note]
        assert search.search_notes(admin, "后来").items == []
        actions = db.session.scalars(select(AuditEvent.action)).all()
        assert "backup.restore" in actions
        assert "backup.create" not in actions  # written after the copy was taken


def test_create_audits_and_writes_a_manifest_with_counts(app, runner):
    _customer_with_note(app, "张三", "第一条")
    _customer_with_note(app, "李四", "第二条")
    instance_config = Path(app.instance_path) / "config.py"
    instance_config.write_text("SECRET_KEY = 'kept-with-the-backup'\n")
    with app.app_context():
        audit_lines = db.session.scalar(select(func.count()).select_from(AuditEvent))
    path = _create(runner)
    with tarfile.open(path) as archive:
        assert sorted(archive.getnames()) == sorted(["config.py", "manifest.json", backup.backup_db.COPY_NAMES[
            1 if _is_postgres(app) else 0]])
        manifest = json.loads(archive.extractfile("manifest.json").read())
        assert b"kept-with-the-backup" in archive.extractfile("config.py").read()
    assert manifest["row_counts"]["customers"] == 2 and manifest["row_counts"]["customer_notes"] == 2
    assert manifest["row_counts"]["users"] == 1 and manifest["row_counts"]["audit_events"] == audit_lines
    assert manifest["database"] == ("postgresql" if _is_postgres(app) else "sqlite")
    assert manifest["schema_revision"] == _head_revision(app) and len(manifest["sha256"]) == 64
    assert manifest["app_version"] == backup.APP_VERSION and manifest["created_at"]
    with app.app_context():
        event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "backup.create"))
        assert (event.action, event.actor_id, event.actor_name) == ("backup.create", None, "cli")
        assert event.details["file"] == path.name


def test_a_corrupted_backup_fails_verify_and_is_not_restored(app, runner):
    _customer_with_note(app, "张三", "第一条")
    path = _create(runner)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 16] = bytes(b ^ 0xFF for b in data[middle:middle + 16])
    path.write_bytes(bytes(data))
    result = runner.invoke(args=["backup", "verify", str(path)])
    assert result.exit_code == 1 and "BAD" in result.output
    assert "FAILED verify" in runner.invoke(args=["backup", "list"]).output
    refused = runner.invoke(args=_restore_args(app, path) + ["--force"])
    assert refused.exit_code == 1 and "Nothing restored" in refused.output


def _repack(path: Path, work: Path, change) -> None:
    """Unpack the backup at ``path``, let ``change(folder)`` alter it, pack it again."""
    with tarfile.open(path) as archive:
        archive.extractall(work, filter="data")
    change(work)
    with tarfile.open(path, "w:gz") as archive:
        for member in work.iterdir():
            archive.add(member, arcname=member.name)


def test_a_tampered_copy_fails_its_checksum(app, runner, tmp_path):
    path = _create(runner)

    def append_a_byte(folder: Path):
        copy = next(p for p in folder.iterdir() if p.name in backup.backup_db.COPY_NAMES)
        copy.write_bytes(copy.read_bytes() + b"\0")

    _repack(path, tmp_path / "x", append_a_byte)
    result = runner.invoke(args=["backup", "verify", str(path)])
    assert result.exit_code == 1 and "checksum" in result.output


def test_restore_refuses_a_backup_from_a_newer_schema(app, runner, tmp_path):
    customer_id, _note = _customer_with_note(app, "张三", "第一条")
    path = _create(runner)

    def newer(folder: Path):
        manifest = json.loads((folder / "manifest.json").read_text())
        (folder / "manifest.json").write_text(json.dumps({**manifest, "schema_revision": "9999"}))

    _repack(path, tmp_path / "x", newer)
    with app.app_context():
        db.session.execute(db.delete(CustomerNote))
        db.session.commit()
    result = runner.invoke(args=["backup", "restore", str(path), "--force"])
    assert result.exit_code == 1 and "unknown to this version" in result.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(CustomerNote)) == 0
        assert db.session.get(Customer, customer_id) is not None


def test_a_half_written_backup_is_never_listed(app, runner, folder, monkeypatch):
    def killed(*_args):
        raise OSError("killed half-way")

    monkeypatch.setattr(backup.os, "replace", killed)
    failed = runner.invoke(args=["backup", "create"])
    assert failed.exit_code == 1 and "No backup made" in failed.output
    monkeypatch.undo()
    leftover = folder / ".deskbook-tmp-abc123"  # what a SIGKILL leaves behind
    leftover.mkdir()
    (leftover / "backup.tar.gz").write_bytes(b"\x1f\x8b half")
    assert backup.list_backups(folder) == []
    assert "No backups" in runner.invoke(args=["backup", "list"]).output


def test_restore_refuses_while_another_process_has_the_database_open(app, runner):
    customer_id, _note = _customer_with_note(app, "张三", "第一条")
    path = _create(runner)
    with app.app_context():
        db.session.execute(db.delete(CustomerNote))
        db.session.execute(db.delete(Customer))
        db.session.commit()
    serving = create_engine(database_url(app))  # a connection held open, as the app's pool does
    try:
        with serving.connect() as connection:
            connection.execute(text("SELECT count(*) FROM users")).scalar()
            connection.commit()  # idle, as a pooled connection is: open, holding no table lock
            refused = runner.invoke(args=["backup", "restore", str(path)])
            assert refused.exit_code == 1 and "in use" in refused.output and "--force" in refused.output
            with app.app_context():
                assert db.session.get(Customer, customer_id) is None
                db.session.remove()
            forced = runner.invoke(args=["backup", "restore", str(path), "--force"])
            assert forced.exit_code == 0, forced.output
    finally:
        serving.dispose()
    with app.app_context():
        assert db.session.get(Customer, customer_id) is not None
        event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "backup.restore"))
        assert event.details["forced"] is True


def _touch(folder: Path, moment: datetime) -> str:
    name = f"deskbook-{moment:%Y%m%dT%H%M%S}Z.tar.gz"
    (folder / name).write_bytes(b"x")
    return name


def test_rotation_keeps_seven_daily_four_weekly_twelve_monthly(tmp_path):
    folder = tmp_path / "backups"
    folder.mkdir()
    day, last = datetime(2026, 1, 1, 3, tzinfo=UTC), datetime(2026, 12, 2, 3, tzinfo=UTC)
    while day <= last:
        _touch(folder, day)
        day += timedelta(days=1)
    earlier_today = _touch(folder, last - timedelta(hours=2))
    (folder / "notes.txt").write_text("not ours")
    (folder / "deskbook-manual.db").write_text("not ours either")
    deleted = backup.rotate(folder, daily=7, weekly=4, monthly=12)
    kept = {b.created.date().isoformat() for b in backup.list_backups(folder)}
    daily = {f"2026-11-{d}" for d in range(26, 31)} | {"2026-12-01", "2026-12-02"}
    weekly = {"2026-11-15", "2026-11-22"}  # and 11-29, 12-02: daily already
    monthly = {"2026-01-31", "2026-02-28", "2026-03-31", "2026-04-30", "2026-05-31", "2026-06-30",
               "2026-07-31", "2026-08-31", "2026-09-30", "2026-10-31"}  # and 11-30, 12-02
    assert kept == daily | weekly | monthly
    assert len(backup.list_backups(folder)) == 19
    assert folder / earlier_today in deleted
    assert (folder / "notes.txt").exists() and (folder / "deskbook-manual.db").exists()


def test_create_rotates_its_folder(app, runner, tmp_path):
    other = tmp_path / "elsewhere"
    other.mkdir()
    old = _touch(other, datetime(2020, 1, 1, tzinfo=UTC))
    app.config.update(BACKUP_KEEP_DAILY=1, BACKUP_KEEP_WEEKLY=1, BACKUP_KEEP_MONTHLY=1)
    result = runner.invoke(args=["backup", "create", "--to", str(other)])
    assert result.exit_code == 0 and f"rotated away {old}" in result.output
    assert len(backup.list_backups(other)) == 1


def test_create_without_pg_dump_says_so(app, runner, monkeypatch):
    if not _is_postgres(app):
        pytest.skip("pg_dump is needed for PostgreSQL only")
    monkeypatch.setenv("PATH", "/nonexistent")
    result = runner.invoke(args=["backup", "create"])
    assert result.exit_code == 1 and "pg_dump is not installed" in result.output


@pytest.mark.concurrency
def test_backup_while_notes_are_saved_holds_every_note_saved_before_it(app, runner):
    customer_id, _note = _customer_with_note(app, "并发客户", "开始")
    saved: list[int] = []
    enough, stop = threading.Event(), threading.Event()
    deadline = time.monotonic() + 15

    def save_notes():
        with app.app_context():
            admin = db.session.scalar(select(User).where(User.username == "root"))
            while not stop.is_set() and time.monotonic() < deadline and len(saved) < 2000:
                note = notes.create_note(admin, db.session.get(Customer, customer_id),
                                         NoteData(kind="call", body=f"并发记录 {len(saved)}"))
                db.session.commit()
                saved.append(note.note.id)  # acknowledged
                if len(saved) >= 20:
                    enough.set()
            db.session.remove()

    writer = threading.Thread(target=save_notes)
    writer.start()
    try:
        assert enough.wait(15), "the writer did not get going"
        before = list(saved)
        path = _create(runner)  # creates and verifies
    finally:
        stop.set()
        writer.join(15)
    assert not writer.is_alive()
    assert len(saved) > len(before)  # the writer went on while the backup ran
    restored = runner.invoke(args=_restore_args(app, path))
    assert restored.exit_code == 0, restored.output
    with app.app_context():
        in_backup = set(db.session.scalars(select(CustomerNote.id)).all())
        assert set(before) <= in_backup
        with tarfile.open(path) as archive:
            manifest = json.loads(archive.extractfile("manifest.json").read())
        assert manifest["row_counts"]["customer_notes"] == len(in_backup) == db.session.scalar(
            select(func.count()).select_from(CustomerNote))


# ---- the restore drill with real processes --------------------------------------------------

def _save_notes_in_process(url, instance, customer_id, acknowledged, stop):
    """Save notes on ``customer_id`` until ``stop``; each id is reported once committed."""
    from app import create_app

    app = create_app({"TESTING": True, "SECRET_KEY": "x", "DATABASE_URL": url, "INSTANCE_PATH": instance})
    with app.app_context():
        admin = db.session.scalar(select(User).where(User.username == "root"))
        number = 0
        while not stop.is_set() and number < 3000:
            note = notes.create_note(admin, db.session.get(Customer, customer_id),
                                     NoteData(kind="call", body=f"多进程记录 {number}"))
            db.session.commit()
            acknowledged.put(note.note.id)
            number += 1
        db.session.remove()
        db.engine.dispose()


def _drain(acknowledged, into: list, wait: float = 0.0) -> None:
    import queue

    deadline = time.monotonic() + wait
    while True:
        try:
            into.append(acknowledged.get(timeout=max(0.0, deadline - time.monotonic()) or 0.01))
        except queue.Empty:
            return


@pytest.mark.concurrency
def test_backup_while_several_processes_save_notes_holds_every_acknowledged_note(app, runner):
    import multiprocessing

    customer_id, _note = _customer_with_note(app, "多进程客户", "开始")
    context = multiprocessing.get_context("spawn")
    acknowledged, stop = context.Queue(), context.Event()
    writers = [context.Process(target=_save_notes_in_process,
                               args=(database_url(app), app.instance_path, customer_id, acknowledged, stop))
               for _ in range(3)]
    for writer in writers:
        writer.start()
    received: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while len(received) < 60 and time.monotonic() < deadline:  # every writer under way
            _drain(acknowledged, received, wait=0.5)
        assert len(received) >= 60, "the writers did not get going"
        _drain(acknowledged, received)
        before = set(received)  # acknowledged to their writers before the backup began
        path = _create(runner)
        _drain(acknowledged, received)
    finally:
        stop.set()
        for writer in writers:
            writer.join(60)
        _drain(acknowledged, received)
    assert all(writer.exitcode == 0 for writer in writers)
    assert len(received) > len(before)  # the writers went on while the backup ran
    restored = runner.invoke(args=_restore_args(app, path))
    assert restored.exit_code == 0, restored.output
    with app.app_context():
        in_backup = set(db.session.scalars(select(CustomerNote.id)).all())
    assert before <= in_backup


@pytest.mark.concurrency
def test_a_backup_killed_half_way_leaves_no_broken_file_listed(app, folder):
    import os
    import signal
    import subprocess
    import sys

    customer_id, _note = _customer_with_note(app, "被杀的备份", "开始")
    with app.app_context():
        admin = db.session.scalar(select(User).where(User.username == "root"))
        customer = db.session.get(Customer, customer_id)
        for number in range(1500):  # enough that the copy and packing take a moment
            notes.create_note(admin, customer, NoteData(kind="call", body=f"填充记录 {number} " * 20))
        db.session.commit()
    env = {**os.environ, "DATABASE_URL": database_url(app), "DESKBOOK_INSTANCE_PATH": app.instance_path,
           "SECRET_KEY": "x"}
    flask = [sys.executable, "-m", "flask", "--app", "app", "backup", "create"]
    process = subprocess.Popen(flask, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               cwd=Path(__file__).resolve().parent.parent)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            if folder.is_dir() and any(p.name.startswith(".deskbook-tmp-") for p in folder.iterdir()):
                break  # writing under its temporary name
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(30)
    for listed in backup.list_backups(folder):  # none, unless it finished before the kill: then whole
        assert backup.verify(listed.path).ok
    assert all(p.name.startswith((".deskbook-tmp-", "deskbook-")) for p in folder.iterdir())
