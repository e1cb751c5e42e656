"""The app runs its nightly jobs itself (D5), so cron is optional.

Each serving process starts one daemon thread, lazily, at its first request (a
before_request hook that compares the process id): so nothing starts in ``flask``
CLI commands, in tests (``TESTING``), or in gunicorn's master before it forks —
each worker starts its own after the fork, and no database connection is opened
in the master. The thread waits a random 5–60 s (workers started together do not
tick together), then every minute or so runs what is due (:func:`nightly.run_due`);
the leases make sure one process runs each job, once per night.

``JOBS_ENABLED = False`` (a setting) leaves the thread out, for an office that
prefers cron; the jobs' rows are still registered at the first request, so a
missing cron job shows as overdue.
"""

from __future__ import annotations

import logging
import os
import random
import threading

from flask import current_app

from extensions import db

log = logging.getLogger(__name__)

TICK_SECONDS = 60
_lock = threading.Lock()
_started_in: dict[str, int | None] = {"pid": None}
_background: list[threading.Thread] = []


def init_app(app) -> None:
    """Arm the lazy start, unless under TESTING."""
    if app.testing:
        return
    app.before_request(_start_once_per_process)


def _start_once_per_process() -> None:
    pid = os.getpid()
    if _started_in["pid"] == pid:
        return
    with _lock:
        if _started_in["pid"] == pid:
            return
        _started_in["pid"] = pid
    start(current_app._get_current_object())  # type: ignore[attr-defined]


def start(app, *, tick_seconds: float = TICK_SECONDS, first_wait: tuple[float, float] = (5, 60)) -> threading.Event:
    """Start the scheduler thread of this process; returns the event that stops it."""
    stop = threading.Event()
    thread = threading.Thread(target=_loop, args=(app, stop, tick_seconds, first_wait),
                              name="deskbook-nightly", daemon=True)
    thread.start()
    return stop


def _loop(app, stop: threading.Event, tick_seconds: float, first_wait: tuple[float, float]) -> None:
    from services import leases, nightly

    with app.app_context():
        try:
            leases.ensure_jobs(nightly.JOBS)
        except Exception:  # the database down at start: the next tick tries again
            log.exception("nightly jobs: could not register the jobs")
        finally:
            db.session.remove()
    if not app.config["JOBS_ENABLED"]:
        return
    stop.wait(random.uniform(*first_wait))
    while not stop.is_set():
        tick(app)
        stop.wait(tick_seconds * random.uniform(0.85, 1.15))


def tick(app) -> list:
    """Run what is due now (never raises: a failure is logged and recorded)."""
    from services import leases, nightly

    with app.app_context():
        try:
            leases.ensure_jobs(nightly.JOBS)
            return nightly.run_due()
        except Exception:
            log.exception("nightly jobs: the tick failed")
            return []
        finally:
            db.session.remove()


def in_background(app, work, *args, **kwargs) -> threading.Thread:
    """Run ``work(*args, **kwargs)`` in a thread inside an app context of ``app``
    ("Back up now"), so the request answers at once."""

    def run():
        with app.app_context():
            try:
                work(*args, **kwargs)
            except Exception:
                log.exception("background job failed")
            finally:
                db.session.remove()

    thread = threading.Thread(target=run, name="deskbook-job", daemon=True)
    with _lock:
        _background[:] = [t for t in _background if t.is_alive()] + [thread]
    thread.start()
    return thread


def wait_for_background(timeout: float | None = None) -> bool:
    """Wait for the background jobs of this process; False if one is still running."""
    with _lock:
        threads = list(_background)
    for thread in threads:
        thread.join(timeout)
    return not any(thread.is_alive() for thread in threads)
