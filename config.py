"""Settings with defaults.

Precedence, lowest first: the defaults below, ``instance/config.py`` (written by
``flask --app app init`` with a random SECRET_KEY), environment variables, and the
``test_config`` mapping given to :func:`app.create_app`.
"""

from __future__ import annotations

import os

# Settings that may be overridden from the environment, and how to read each one.
_ENV_SETTINGS: dict[str, type] = {
    "SECRET_KEY": str,
    "DATABASE_URL": str,
    "OFFICE_TIMEZONE": str,
    "HTTPS": bool,
    "IDLE_TIMEOUT_MINUTES": int,
    "ABSOLUTE_TIMEOUT_HOURS": int,
    "LOGIN_MAX_FAILURES": int,
    "LOGIN_FAILURE_WINDOW_MINUTES": int,
    "LOGIN_LOCKOUT_MINUTES": int,
    "SEARCH_INDEX_DIR": str,
    "BACKUP_DIR": str,
    "JOBS_ENABLED": bool,
    "IMPORT_HEARTBEAT_SECONDS": int,
    "IMPORT_STALE_SECONDS": int,
}


class Config:
    """Defaults. Every name here can be set in ``instance/config.py``."""

    SECRET_KEY: str | None = None
    # Empty means SQLite at instance/deskbook.db; a postgresql:// URL switches databases.
    DATABASE_URL: str = ""
    OFFICE_TIMEZONE = "Asia/Shanghai"
    # Set HTTPS = True when the app is served over TLS: cookies are then sent only over it.
    HTTPS = False
    IDLE_TIMEOUT_MINUTES = 30
    ABSOLUTE_TIMEOUT_HOURS = 12
    LOGIN_MAX_FAILURES = 10
    LOGIN_FAILURE_WINDOW_MINUTES = 15
    LOGIN_LOCKOUT_MINUTES = 15
    # SQLite waits this long for another writer before giving up.
    SQLITE_BUSY_TIMEOUT_MS = 15000
    # The search index; empty means instance/search.
    SEARCH_INDEX_DIR = ""
    # How long a request waits for another process's index write before leaving its
    # change in the backlog for the next writer (seconds).
    SEARCH_LOCK_TIMEOUT = 3.0
    # A missing index holding up to this many records is rebuilt within the request
    # that finds it missing; for a larger one the request records that a rebuild is
    # wanted, which `search rebuild` or the nightly job runs (search answers from the
    # database meanwhile).
    SEARCH_INLINE_REBUILD_MAX = 20000
    # Where ``backup create`` writes; empty means instance/backups. Rotation keeps the
    # newest backup of each of this many recent days, ISO weeks and months.
    BACKUP_DIR = ""
    BACKUP_KEEP_DAILY = 7
    BACKUP_KEEP_WEEKLY = 4
    BACKUP_KEEP_MONTHLY = 12
    # The app runs the nightly jobs itself (a thread per serving process, started at
    # its first request; never under TESTING). False: leave them to cron.
    JOBS_ENABLED = True

    LANGUAGES = ("zh", "en")
    BABEL_DEFAULT_LOCALE = "zh"

    SQLALCHEMY_TRACK_MODIFICATIONS = False
    SESSION_COOKIE_NAME = "deskbook_session"
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_PERMANENT = False
    WTF_CSRF_TIME_LIMIT = None  # the token lives as long as the session
    MAX_CONTENT_LENGTH = 16 * 1024 * 1024
    # The customer import: largest file accepted (the app raises MAX_CONTENT_LENGTH to
    # let it through, so a larger file gets a message next to the file field), and the
    # row count above which an import runs in a background thread with a progress bar.
    IMPORT_MAX_BYTES = 20 * 1024 * 1024
    IMPORT_BACKGROUND_ROWS = 500
    # A running check or import writes a heartbeat this often; one whose heartbeat is
    # older than IMPORT_STALE_SECONDS has lost its process (killed, server restarted)
    # and is shown as interrupted: it may be undone or resumed.
    IMPORT_HEARTBEAT_SECONDS = 15
    IMPORT_STALE_SECONDS = 120


def _parse(kind: type, raw: str):
    if kind is bool:
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    return kind(raw)


def environment_overrides(environ=os.environ) -> dict:
    """Settings given as environment variables (``DESKBOOK_X`` or, for the
    usual names SECRET_KEY and DATABASE_URL, plain ``X``)."""
    found = {}
    for name, kind in _ENV_SETTINGS.items():
        for key in (f"DESKBOOK_{name}", name):
            if key in environ and environ[key] != "":
                found[name] = _parse(kind, environ[key])
                break
    return found
