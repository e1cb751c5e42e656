"""The database side of backups (:mod:`services.backup`): a consistent copy while the
app keeps writing, row counts of that very copy, a check of a copy, and restore.

SQLite: the backup API copies in one step inside one read transaction (WAL: writers
go on meanwhile), and a restore writes the copy back through the same API in one
write transaction, so connections of a running app see the old or the restored
database, never a mix, and no file is swapped under them.
PostgreSQL: ``pg_dump -Fc`` of the schema Deskbook uses, taken in a snapshot that the
row counts share (``pg_export_snapshot``); restore with ``pg_restore --clean
--if-exists --single-transaction``.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from abc import ABC, abstractmethod
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

COPY_NAMES = ("deskbook.db", "deskbook.dump")


class BackupError(Exception):
    """A backup, verify or restore that cannot be done; the message says why."""


class Database(ABC):
    """The configured database, seen by the backup commands."""

    kind = ""
    copy_name = ""
    compresslevel = 6

    @abstractmethod
    def copy_to(self, path: Path) -> dict:
        """Write a consistent copy to ``path``; return its schema revision and row counts."""

    @abstractmethod
    def restore_from(self, path: Path) -> None:
        """Replace the database's contents with the copy at ``path``."""

    @abstractmethod
    def other_users(self) -> str:
        """Who else has the database open, in words ("" when nobody)."""

    @abstractmethod
    def describe(self) -> str:
        """The database in words, for the commands' output."""


def database_for(url: str, *, busy_timeout_ms: int = 15000) -> Database:
    """The :class:`Database` for a SQLAlchemy URL. Raises :class:`BackupError` for a
    kind of database that backups do not know."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        return SQLiteDatabase(Path(parsed.database), busy_timeout_ms)
    if parsed.get_backend_name() == "postgresql":
        return PostgreSQLDatabase(url)
    raise BackupError(f"cannot back up a {parsed.get_backend_name()} database")


def check_copy(manifest: dict, copy: Path) -> list[str]:
    """What is wrong with an unpacked copy, in words (an empty list: nothing)."""
    if manifest.get("database") == "sqlite":
        return _check_sqlite_copy(manifest, copy)
    if manifest.get("database") == "postgresql":
        return _check_pg_copy(copy)
    return [f"unknown database kind {manifest.get('database')!r}"]


class SQLiteDatabase(Database):
    kind, copy_name = "sqlite", "deskbook.db"

    def __init__(self, path: Path, busy_timeout_ms: int):
        self.path, self.timeout = path, busy_timeout_ms / 1000

    def copy_to(self, path: Path) -> dict:
        if not self.path.is_file():
            raise BackupError(f"no database at {self.path}")
        source = sqlite3.connect(self.path, timeout=self.timeout)
        target = sqlite3.connect(path)
        try:
            source.backup(target)  # all pages in one step: one read snapshot, writers go on
            target.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
        finally:
            target.close()
            source.close()
        return _sqlite_facts(path)

    def restore_from(self, path: Path) -> None:
        source = sqlite3.connect(path)
        target = sqlite3.connect(self.path, timeout=self.timeout)
        try:
            source.backup(target)  # one write transaction: all of it, or nothing
        finally:
            target.close()
            source.close()

    def other_users(self) -> str:
        """Another process holds the database open when an exclusive lock cannot be
        had at once (in WAL mode every open connection keeps a shared lock). This
        process's own connections count too: dispose of them first."""
        if not self.path.exists():
            return ""
        probe = sqlite3.connect(self.path, timeout=0, isolation_level=None)
        try:
            probe.execute("PRAGMA locking_mode = EXCLUSIVE")
            probe.execute("BEGIN EXCLUSIVE")
            probe.execute("ROLLBACK")
            return ""
        except sqlite3.OperationalError:
            return "another process has the database file open"
        finally:
            probe.close()

    def describe(self) -> str:
        return str(self.path)


def _sqlite_facts(path: Path) -> dict:
    with _read_only(path) as copy:
        tables = [row[0] for row in copy.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        counts = {table: copy.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0] for table in tables}
        revision = (copy.execute("SELECT version_num FROM alembic_version").fetchone()
                    if "alembic_version" in tables else None)
    return {"schema_revision": revision[0] if revision else None, "row_counts": counts}


class _read_only:
    """A read-only connection to a copy, closed on leaving (sqlite3's own context
    manager only commits)."""

    def __init__(self, path: Path):
        self.connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)

    def __enter__(self) -> sqlite3.Connection:
        return self.connection

    def __exit__(self, *_exc) -> None:
        self.connection.close()


def _check_sqlite_copy(manifest: dict, copy: Path) -> list[str]:
    try:
        with _read_only(copy) as connection:
            result = [row[0] for row in connection.execute("PRAGMA integrity_check")]
        if result != ["ok"]:
            return ["integrity check: " + "; ".join(result[:5])]
        facts = _sqlite_facts(copy)
    except sqlite3.DatabaseError as broken:
        return [f"the database copy cannot be read: {broken}"]
    problems = [f"{table}: {count} rows, the manifest says {manifest.get('row_counts', {}).get(table)}"
                for table, count in facts["row_counts"].items()
                if count != manifest.get("row_counts", {}).get(table)]
    missing = set(manifest.get("row_counts", {})) - set(facts["row_counts"])
    problems += [f"{table}: missing from the copy" for table in sorted(missing)]
    return problems


class PostgreSQLDatabase(Database):
    kind, copy_name = "postgresql", "deskbook.dump"
    compresslevel = 1  # the dump is compressed already

    def __init__(self, url: str):
        self.url = make_url(url)

    def copy_to(self, path: Path) -> dict:
        pg_dump = _tool("pg_dump")
        engine = create_engine(self.url, poolclass=NullPool)
        try:
            with engine.connect() as connection:
                connection = connection.execution_options(isolation_level="REPEATABLE READ")
                with connection.begin():
                    snapshot = connection.scalar(text("SELECT pg_export_snapshot()"))
                    schema = connection.scalar(text("SELECT current_schema()"))
                    facts = _pg_facts(connection, schema)
                    # pg_dump reads the snapshot of this open transaction: the counts are of the dump.
                    _run([pg_dump, "--format=custom", f"--snapshot={snapshot}", f"--schema={schema}",
                          f"--file={path}", f"--dbname={self._libpq_uri()}"], self._env())
        finally:
            engine.dispose()
        return {**facts, "schema": schema}

    def restore_from(self, path: Path) -> None:
        _run([_tool("pg_restore"), "--clean", "--if-exists", "--single-transaction", "--exit-on-error",
              "--no-owner", "--no-privileges", f"--dbname={self._libpq_uri()}", str(path)], self._env())

    def other_users(self) -> str:
        engine = create_engine(self.url, poolclass=NullPool)
        try:
            with engine.connect() as connection:
                count = connection.scalar(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"))
        finally:
            engine.dispose()
        return f"{count} other sessions on the database" if count else ""

    def describe(self) -> str:
        return f"PostgreSQL database {self.url.database} on {self.url.host or 'localhost'}"

    def _libpq_uri(self) -> str:
        # The password goes through the environment, not the command line (ps shows that).
        return self.url.set(drivername="postgresql", password=None).render_as_string(hide_password=False)

    def _env(self) -> dict:
        env = dict(os.environ)
        if self.url.password:
            env["PGPASSWORD"] = str(self.url.password)
        return env


def _pg_facts(connection, schema: str) -> dict:
    tables = connection.scalars(text("SELECT tablename FROM pg_tables WHERE schemaname = :schema ORDER BY tablename"),
                                {"schema": schema}).all()
    counts = {table: connection.scalar(text(f'SELECT count(*) FROM "{schema}"."{table}"')) for table in tables}
    revision = connection.scalar(text(f'SELECT version_num FROM "{schema}".alembic_version')) \
        if "alembic_version" in tables else None
    return {"schema_revision": revision, "row_counts": counts}


def _check_pg_copy(copy: Path) -> list[str]:
    try:
        _run([_tool("pg_restore"), "--list", str(copy)], dict(os.environ))
    except BackupError as broken:
        return [str(broken)]
    return []


def _tool(name: str) -> str:
    """Raises :class:`BackupError` when the PostgreSQL client program is not installed."""
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} is not installed: install the PostgreSQL client programs of the "
                          "server's major version (Debian: apt-get install postgresql-client)")
    return found


def _run(command: list[str], env: dict) -> None:
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BackupError(f"{Path(command[0]).name} failed: {done.stderr.strip()[-2000:]}")
