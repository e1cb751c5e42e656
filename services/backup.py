"""Backups (D2): an online, consistent copy of the database packed with a manifest
and the instance settings; listing, rotation, verification and restore.

A backup is one file ``deskbook-YYYYMMDDTHHMMSSZ.tar.gz`` holding the database copy
(``deskbook.db`` for SQLite, ``deskbook.dump`` from ``pg_dump -Fc`` for PostgreSQL),
``manifest.json`` (app version, schema revision, row counts per table, SHA-256 of the
copy, when, which database) and ``config.py`` (instance/config.py: the SECRET_KEY).
It is written under a hidden temporary name and renamed when complete, so a backup
killed half-way is never listed. Only files named like that are ever rotated away.

The database work is in :mod:`services.backup_db`. Nothing here knows Flask: the
CLI passes the database URL and folders, commits the audit line, and rebuilds the
search index after a restore.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, UTC
from pathlib import Path

from services import backup_db
from services.backup_db import BackupError, Database

__all__ = ["APP_VERSION", "BackupError", "BackupFile", "Database", "Restored", "Verified",
           "create", "list_backups", "restore", "rotate", "verify"]

# No git on the server: the version is written here when a release is made.
APP_VERSION = "0.13"
NAME = re.compile(r"^deskbook-(\d{8}T\d{6})Z(?:-(\d+))?\.tar\.gz$")
MANIFEST, SETTINGS = "manifest.json", "config.py"
# What verify found, beside the archive: "<name>.verified.json".
VERIFIED_SUFFIX = ".verified.json"


@dataclass
class BackupFile:
    path: Path
    created: datetime  # UTC, from the name
    size: int
    verified: bool | None  # None: never verified (or the file changed since)

    @property
    def name(self) -> str:
        return self.path.name


@dataclass
class Verified:
    path: Path
    problems: list[str] = field(default_factory=list)
    manifest: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class Restored:
    manifest: dict
    database: str  # what was replaced: a file path, or the PostgreSQL database and schema


def create(database: Database, folder: Path, settings_file: Path | None, *,
           now: datetime | None = None) -> tuple[Path, dict]:
    """Copy the database while the app keeps writing, pack it with its manifest and
    ``settings_file`` (when it exists) into ``folder``. Returns the backup's path and
    manifest. Raises :class:`BackupError` (pg_dump missing or failing, disk full…);
    nothing is left behind but a hidden temporary folder when the process is killed."""
    now = now or datetime.now(UTC)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".deskbook-tmp-") as work:
        copy = Path(work) / database.copy_name
        manifest = database.copy_to(copy)
        manifest.update(app_version=APP_VERSION, created_at=now.isoformat(timespec="seconds"),
                        database=database.kind, file=copy.name, sha256=_sha256(copy), size=copy.stat().st_size)
        partial = Path(work) / "backup.tar.gz"
        with tarfile.open(partial, "w:gz", compresslevel=database.compresslevel) as archive:
            archive.add(copy, arcname=copy.name)
            _add_bytes(archive, MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode())
            if settings_file is not None and settings_file.is_file():
                archive.add(settings_file, arcname=SETTINGS)
        _fsync(partial)
        final = _free_name(folder, now)
        os.replace(partial, final)  # same folder, so atomic: complete, or not there at all
    _fsync(folder)
    return final, manifest


def list_backups(folder: Path) -> list[BackupFile]:
    """Our backups in ``folder``, newest first; other files (and temporary ones) are ignored."""
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = NAME.match(path.name)
        if match and path.is_file():
            created = datetime.strptime(match.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
            found.append(BackupFile(path, created, path.stat().st_size, _verified_state(path)))
    return sorted(found, key=lambda backup: (backup.created, backup.name), reverse=True)


def rotate(folder: Path, *, daily: int, weekly: int, monthly: int) -> list[Path]:
    """Keep the newest backup of each of the ``daily`` most recent days that have
    one, of the ``weekly`` most recent ISO weeks and of the ``monthly`` most recent
    months; delete the other backups (and their verify notes). Returns what was deleted."""
    backups = list_backups(folder)
    keep: set[Path] = set()
    for count, bucket in ((daily, lambda b: b.created.date()),
                          (weekly, lambda b: b.created.isocalendar()[:2]),
                          (monthly, lambda b: (b.created.year, b.created.month))):
        seen: dict = {}
        for backup in backups:  # newest first: the first of each bucket is its newest
            if bucket(backup) not in seen and len(seen) < count:
                seen[bucket(backup)] = backup.path
        keep.update(seen.values())
    deleted = [backup.path for backup in backups if backup.path not in keep]
    for path in deleted:
        path.unlink(missing_ok=True)
        _note_path(path).unlink(missing_ok=True)
    return deleted


def verify(path: Path) -> Verified:
    """Open the backup, compare the copy's checksum with the manifest, and let the
    database check it (SQLite: ``PRAGMA integrity_check`` and the row counts;
    PostgreSQL: ``pg_restore --list``). Notes the result beside the file for
    :func:`list_backups`. Never raises for a bad backup: the problems are returned."""
    result = Verified(path)
    with tempfile.TemporaryDirectory(prefix="deskbook-verify-") as work:
        try:
            result.manifest, copy = _unpack(path, Path(work))
        except (OSError, EOFError, tarfile.TarError, ValueError, KeyError) as broken:
            result.problems.append(f"not a readable backup: {broken}")
        else:
            if _sha256(copy) != result.manifest.get("sha256"):
                result.problems.append("the database copy's checksum differs from the manifest")
            else:
                result.problems += backup_db.check_copy(result.manifest, copy)
    _note_verified(path, result.ok)
    return result


def restore(path: Path, database: Database, *, force: bool, known_revisions: set[str]) -> Restored:
    """Replace the database's contents with the backup's, atomically (SQLite: one
    write transaction through the backup API; PostgreSQL: ``pg_restore --clean
    --single-transaction``). Refuses (:class:`BackupError`, nothing changed) when the
    backup does not verify, when its schema revision is unknown to this code (made by
    a newer Deskbook), or, unless ``force``, while another process has the database
    open (the app serving)."""
    checked = verify(path)
    if not checked.ok:
        raise BackupError("the backup does not verify: " + "; ".join(checked.problems))
    revision = checked.manifest.get("schema_revision")
    if revision not in known_revisions:
        raise BackupError(f"the backup's schema revision {revision!r} is unknown to this version of "
                          "Deskbook (made by a newer one?)")
    if checked.manifest.get("database") != database.kind:
        raise BackupError(f"this is a {checked.manifest.get('database')} backup; the configured "
                          f"database is {database.kind}")
    if not force and (others := database.other_users()):
        raise BackupError(f"the database is in use ({others}): stop the app first, or give --force")
    with tempfile.TemporaryDirectory(prefix="deskbook-restore-") as work:
        _manifest, copy = _unpack(path, Path(work))
        database.restore_from(copy)
    return Restored(checked.manifest, database.describe())


def _unpack(path: Path, into: Path) -> tuple[dict, Path]:
    """The manifest and the database copy, extracted into ``into`` (only those two
    members, by name: nothing in the archive chooses where files are written)."""
    with tarfile.open(path, "r:gz") as archive:
        manifest = json.loads(archive.extractfile(MANIFEST).read())
        name = manifest["file"]
        if name not in backup_db.COPY_NAMES:
            raise ValueError(f"unexpected database file {name!r}")
        source = archive.extractfile(name)
        if source is None:
            raise ValueError(f"{name} is not a file")
        copy = into / name
        with copy.open("wb") as target:
            while chunk := source.read(1 << 20):
                target.write(chunk)
    return manifest, copy


def _free_name(folder: Path, now: datetime) -> Path:
    stem, number = f"deskbook-{now:%Y%m%dT%H%M%S}Z", 1
    path = folder / f"{stem}.tar.gz"
    while path.exists():  # two backups within a second
        number += 1
        path = folder / f"{stem}-{number}.tar.gz"
    return path


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o600, int(datetime.now().timestamp())
    archive.addfile(info, io.BytesIO(data))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    """Flush to disk, so that the rename cannot land before the data after a power cut."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _note_path(path: Path) -> Path:
    return path.with_name(path.name + VERIFIED_SUFFIX)


def _note_verified(path: Path, ok: bool) -> None:
    try:
        stat = path.stat()
    except OSError:
        return
    note = {"ok": ok, "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    _note_path(path).write_text(json.dumps(note), encoding="utf-8")


def _verified_state(path: Path) -> bool | None:
    """The last verify's result, unless the file changed since (then: not verified)."""
    try:
        note = json.loads(_note_path(path).read_text(encoding="utf-8"))
        stat = path.stat()
    except (OSError, ValueError):
        return None
    if note.get("size") != stat.st_size or note.get("mtime_ns") != stat.st_mtime_ns:
        return None
    return bool(note.get("ok"))
