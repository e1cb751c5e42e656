"""The nightly jobs (D5): leases, slots, the scheduler, and cron sharing the lease."""

from __future__ import annotations

import multiprocessing
import queue
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError

from extensions import db, reading_only
from models import AuditEvent, JobRun, utcnow
from services import backup, leases, nightly, scheduler
from services.office_time import office_zone
from tests.nightly_helpers import block_backups, set_nightly_hour

# Asia/Shanghai (UTC+8, no summer time): 02:00 there is 18:00 UTC the day before.
BEFORE_SLOT = datetime(2026, 12, 1, 17, 30)  # 01:30 on 12-02 in the office
AFTER_SLOT = datetime(2026, 12, 1, 18, 5)  # 02:05 on 12-02
INSTALLED = datetime(2026, 11, 20, 6, 0)


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def fake_jobs(monkeypatch):
    """Quick stand-ins for the four jobs; ``calls`` lists the names run, in order."""
    calls: list[str] = []

    def fake(name):
        def work(echo, **_options):
            calls.append(name)
            echo(f"{name} done")
            return f"{name} done"
        return work

    jobs = {name: nightly.Job(name, job.label, fake(name)) for name, job in nightly.JOBS.items()}
    monkeypatch.setattr(nightly, "JOBS", jobs)
    return calls


def _row(name: str) -> JobRun:
    """The job's row as committed, detached (lease statements use their own
    connection: on SQLite no transaction of the session may stay open)."""
    db.session.expire_all()
    with reading_only():
        row = db.session.get(JobRun, name)
        db.session.expunge(row)
    db.session.rollback()
    return row


def test_slots_follow_the_office_clock_and_the_set_hour(app):
    with app.app_context():
        assert leases.current_slot(BEFORE_SLOT, 2) == date(2026, 12, 1)
        assert leases.current_slot(AFTER_SLOT, 2) == date(2026, 12, 2)
        assert leases.slot_start(date(2026, 12, 2), 2) == datetime(2026, 12, 1, 18, 0)
        assert leases.next_run(AFTER_SLOT, 2) == datetime(2026, 12, 2, 18, 0)
        assert leases.next_run(BEFORE_SLOT, 2) == datetime(2026, 12, 1, 18, 0)
        assert leases.current_slot(AFTER_SLOT, 3) == date(2026, 12, 1)  # 03:00 not reached yet


def test_a_lease_is_refused_while_held_and_taken_over_once_expired(app):
    with app.app_context():
        assert leases.take("backup", "first", now=AFTER_SLOT, started_by="test")
        assert not leases.take("backup", "second", now=AFTER_SLOT + timedelta(minutes=5), started_by="test")
        assert _row("backup").holder == "first"
        # The first process died: no heartbeat; after the expiry another takes over.
        expired = AFTER_SLOT + timedelta(seconds=leases.LEASE_SECONDS + 1)
        assert leases.take("backup", "second", now=expired, started_by="test")
        assert _row("backup").holder == "second"
        assert not leases.finish("backup", "first", ok=True, message="late", slot=date(2026, 12, 2))
        assert leases.finish("backup", "second", ok=True, message="done", slot=date(2026, 12, 2))
        row = _row("backup")
        assert row.holder is None and row.expires_at is None and row.ok and row.message == "done"


def test_the_heartbeat_keeps_the_lease(app):
    with app.app_context():
        start = utcnow() - timedelta(minutes=10)
        assert leases.take("search", "me", now=start, started_by="test")
        first_expiry = _row("search").expires_at
        deadline = time.monotonic() + 10
        with leases.heartbeat("search", "me", every=0.05):
            while _row("search").expires_at == first_expiry and time.monotonic() < deadline:
                time.sleep(0.05)
        assert _row("search").expires_at > first_expiry
        assert not leases.renew(db.engine, "search", "someone else")


def test_beating_stops_when_the_beat_says_so_and_rides_out_a_busy_database(caplog):
    """The one heartbeat helper (the leases' and the imports'): a busy database is
    logged and tried again; a beat that returns False ends the beating."""
    beats: list[int] = []
    done = threading.Event()

    def beat() -> bool:
        beats.append(len(beats))
        if len(beats) == 1:
            raise OperationalError("UPDATE", {}, Exception("database is locked"))
        if len(beats) == 3:
            done.set()
            return False
        return True

    with leases.beating(0.01, beat, name="test-beat"):
        assert done.wait(10)
        time.sleep(0.1)  # room for beats that should not come
    assert beats == [0, 1, 2]
    assert "test-beat: missed a beat (the database was busy)" in caplog.text


def test_beating_stops_with_the_block():
    beats: list[float] = []
    with leases.beating(0.01, lambda: beats.append(time.monotonic()) is None, name="test-beat"):
        deadline = time.monotonic() + 10
        while not beats and time.monotonic() < deadline:
            time.sleep(0.01)
    after = len(beats)
    time.sleep(0.1)
    assert after >= 1 and len(beats) == after
    assert not any(t.name == "test-beat" for t in threading.enumerate())


def test_each_job_runs_once_a_night_after_the_hour(app, fake_jobs):
    with app.app_context():
        leases.ensure_jobs(nightly.JOBS, INSTALLED)
        assert all(o.ran for o in nightly.run_due(now=BEFORE_SLOT))  # 12-01's night, owed since install
        fake_jobs.clear()
        assert not any(o.ran for o in nightly.run_due(now=BEFORE_SLOT + timedelta(minutes=20)))
        assert fake_jobs == []  # the hour of 12-02 has not come
        outcomes = nightly.run_due(now=AFTER_SLOT)
        assert [o.name for o in outcomes if o.ran and o.ok] == ["pool_sweep", "search", "prune", "backup"]
        assert not any(o.ran for o in nightly.run_due(now=AFTER_SLOT + timedelta(hours=3)))
        assert fake_jobs == ["pool_sweep", "search", "prune", "backup"]
        assert _row("backup").done_slot == date(2026, 12, 2)
        forced = nightly.run("backup", force=True, now=AFTER_SLOT + timedelta(hours=4))
        assert forced.ran and forced.ok and fake_jobs[-1] == "backup"


def test_a_fresh_install_owes_no_night(app, fake_jobs):
    with app.app_context():
        installed = AFTER_SLOT + timedelta(hours=12)  # 14:05 in the office, after tonight's slot
        leases.ensure_jobs(nightly.JOBS, installed)
        assert not any(o.ran for o in nightly.run_due(now=installed + timedelta(minutes=1)))
        assert fake_jobs == []
        for name in nightly.JOBS:
            assert leases.attention(name, installed + timedelta(hours=10)) is None
        next_night = AFTER_SLOT + timedelta(days=1)
        assert [o.name for o in nightly.run_due(now=next_night) if o.ran] == list(nightly.JOBS)


def test_overdue_only_when_a_known_night_passed_unserved(app, fake_jobs):
    with app.app_context():
        leases.ensure_jobs(["backup"], INSTALLED)
        slot_moment = leases.slot_start(date(2026, 12, 2), 2)
        assert leases.attention("backup", slot_moment + timedelta(hours=1)) is None  # still time
        assert leases.attention("backup", slot_moment + leases.OVERDUE_AFTER + timedelta(minutes=1)) == "overdue"
        nightly.run("backup", now=slot_moment + timedelta(hours=5))  # caught up late
        assert leases.attention("backup", slot_moment + timedelta(hours=6)) is None


def test_the_scheduler_stops_at_a_job_another_process_runs(app, fake_jobs):
    with app.app_context():
        leases.ensure_jobs(nightly.JOBS, INSTALLED)
        assert leases.take("search", "other-server:42:ab", now=AFTER_SLOT, started_by="scheduler")
        outcomes = nightly.run_due(now=AFTER_SLOT + timedelta(minutes=1))
        assert [(o.name, o.ran, o.held_by) for o in outcomes] == [
            ("pool_sweep", True, None), ("search", False, "other-server:42:ab")]
        assert fake_jobs == ["pool_sweep"]


def test_a_failing_job_is_recorded_and_not_raised(app, tmp_path):
    block_backups(app, tmp_path)
    with app.app_context():
        outcome = nightly.run("backup")
        assert outcome.ran and outcome.ok is False and "No backup made:" in outcome.message
        row = _row("backup")
        assert row.ok is False and "No backup made:" in row.message and row.holder is None
        assert leases.attention("backup") == "failed"


def test_the_real_jobs_run(app):
    with app.app_context():
        outcomes = nightly.run_due(owed_only=False)
        assert [(o.name, o.ok) for o in outcomes] == [(name, True) for name in nightly.JOBS], outcomes
        assert len(backup.list_backups(nightly.backup_folder())) == 1
        assert backup.list_backups(nightly.backup_folder())[0].verified is True
        event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "backup.create"))
        assert event.actor_name == "scheduler"


# ---- cron shares the lease --------------------------------------------------------------

@pytest.mark.parametrize("args, job", [
    (["backup", "create"], "backup"),
    (["pool", "recycle"], "pool_sweep"),
    (["jobs", "run", "backup"], "backup"),
])
def test_cron_commands_wait_their_turn_behind_the_lease(app, runner, args, job):
    with app.app_context():
        assert leases.take(job, "web-1:77:cd", now=utcnow(), started_by="scheduler")
    refused = runner.invoke(args=args)
    assert refused.exit_code == 75, refused.output
    assert "another process is running it (web-1:77:cd)" in refused.output
    with app.app_context():
        assert _row(job).holder == "web-1:77:cd"
        assert leases.finish(job, "web-1:77:cd", ok=True, message="", slot=date(2026, 1, 1))
    done = runner.invoke(args=args)
    assert done.exit_code == 0, done.output


def test_a_cron_backup_serves_the_night_for_the_scheduler(app, runner):
    with app.app_context():
        leases.ensure_jobs(nightly.JOBS, utcnow() - timedelta(days=3))
    assert runner.invoke(args=["backup", "create"]).exit_code == 0
    with app.app_context():
        row = _row("backup")
        assert row.ok and row.started_by == "cli" and row.done_slot == leases.current_slot(utcnow(), 2)
        outcome = nightly.run("backup", owed_only=True)
        assert not outcome.ran and outcome.held_by is None  # served already
    assert len(backup.list_backups(Path(app.instance_path) / "backups")) == 1


def test_jobs_run_and_status_commands(app, runner):
    first = runner.invoke(args=["jobs", "run"])
    assert first.exit_code == 0, first.output
    for name in nightly.JOBS:
        assert f"{name}: ok:" in first.output
    again = runner.invoke(args=["jobs", "run", "prune"])
    assert "already ran for this night's slot" in again.output and again.exit_code == 0
    forced = runner.invoke(args=["jobs", "run", "prune", "--force"])
    assert "prune: ok: Pruned 0 sign-in throttle rows." in forced.output
    status = runner.invoke(args=["jobs", "status", "--lang", "en"])
    assert status.exit_code == 0 and "Nightly at 02:00 office time" in status.output
    assert "backup      ok" in status.output
    assert runner.invoke(args=["jobs", "run", "nonsense"]).exit_code == 2


def test_jobs_run_says_when_a_job_fails(app, runner, tmp_path):
    block_backups(app, tmp_path)
    result = runner.invoke(args=["jobs", "run", "backup"])
    assert result.exit_code == 1 and "backup: FAILED: No backup made:" in result.output


# ---- the scheduler thread ------------------------------------------------------------------

def test_the_scheduler_thread_runs_what_is_due(app, fake_jobs):
    with app.app_context():
        leases.ensure_jobs(nightly.JOBS, utcnow() - timedelta(days=3))
        now = utcnow()
        set_nightly_hour((now.replace(tzinfo=UTC).astimezone(office_zone()).hour - 1) % 24)
    stop = scheduler.start(app, tick_seconds=0.05, first_wait=(0, 0))
    try:
        deadline = time.monotonic() + 20
        while len(fake_jobs) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
    assert fake_jobs == ["pool_sweep", "search", "prune", "backup"]  # and only once, however many ticks
    time.sleep(0.2)
    assert len(fake_jobs) == 4


def test_the_scheduler_starts_at_a_first_request_only_when_serving(tmp_path, database_url, monkeypatch):
    from app import create_app

    started = []
    monkeypatch.setattr(scheduler, "start", lambda app, **_kw: started.append(app))
    monkeypatch.setitem(scheduler._started_in, "pid", None)
    testing = create_app({"TESTING": True, "SECRET_KEY": "x", "DATABASE_URL": database_url,
                          "INSTANCE_PATH": str(tmp_path / "a")})
    testing.test_client().get("/login")
    assert started == []  # never under TESTING
    serving = create_app({"TESTING": False, "SECRET_KEY": "x", "DATABASE_URL": database_url,
                          "INSTANCE_PATH": str(tmp_path / "b")})
    serving.test_cli_runner().invoke(args=["jobs", "status"])
    assert started == []  # nor in a CLI command
    client = serving.test_client()
    client.get("/login")
    client.get("/login")
    assert started == [serving]  # once per process
    monkeypatch.setitem(scheduler._started_in, "pid", -1)  # as in a worker forked after a request
    client.get("/login")
    assert started == [serving, serving]
    for made in (testing, serving):
        with made.app_context():
            db.engine.dispose()


# ---- several processes at once -----------------------------------------------------------

def _take_in_process(url, instance, barrier, results, name="backup"):
    from app import create_app

    app = create_app({"TESTING": True, "SECRET_KEY": "x", "DATABASE_URL": url, "INSTANCE_PATH": instance})
    with app.app_context():
        holder = leases.new_holder()
        barrier.wait(30)
        results.put(("take", leases.take(name, holder, now=AFTER_SLOT, started_by="test")))
        db.engine.dispose()


def _nightly_in_process(url, instance, barrier, results):
    from app import create_app

    app = create_app({"TESTING": True, "SECRET_KEY": "x", "DATABASE_URL": url, "INSTANCE_PATH": instance})
    with app.app_context():
        barrier.wait(30)
        outcomes = nightly.run_due()
        results.put(("run", [(o.name, o.ran, o.ok) for o in outcomes]))
        db.session.remove()
        db.engine.dispose()


def _in_processes(target, count, *args):
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(count), context.Queue()
    processes = [context.Process(target=target, args=(*args, barrier, results)) for _ in range(count)]
    for process in processes:
        process.start()
    found, deadline = [], time.monotonic() + 120
    while len(found) < count and time.monotonic() < deadline:
        try:
            found.append(results.get(timeout=1))
        except queue.Empty:
            assert all(p.is_alive() or p.exitcode == 0 for p in processes), "a process failed"
    assert len(found) == count, "the processes did not finish in time"
    for process in processes:
        process.join(30)
        assert process.exitcode == 0
    return [value for _kind, value in found]


@pytest.mark.concurrency
def test_one_process_of_several_takes_a_lease(app, database_url):
    with app.app_context():
        leases.ensure_jobs(["backup"], INSTALLED)
    won = _in_processes(_take_in_process, 4, database_url, app.instance_path)
    assert sorted(won) == [False, False, False, True]


@pytest.mark.concurrency
def test_two_processes_start_the_nightly_run_at_once_and_each_job_runs_once(app, database_url):
    with app.app_context():
        leases.ensure_jobs(nightly.JOBS, utcnow() - timedelta(days=3))
        set_nightly_hour(0)
        db.session.execute(update(JobRun).values(created_at=utcnow() - timedelta(days=3)))
        db.session.commit()
    runs = _in_processes(_nightly_in_process, 2, database_url, app.instance_path)
    ran = [name for outcomes in runs for name, did, ok in outcomes if did]
    assert sorted(ran) == sorted(nightly.JOBS), runs
    assert all(ok for outcomes in runs for _name, did, ok in outcomes if did), runs
    with app.app_context():
        assert len(backup.list_backups(nightly.backup_folder())) == 1
        assert db.session.scalar(select(db.func.count()).select_from(AuditEvent)
                                 .where(AuditEvent.action == "backup.create")) == 1
