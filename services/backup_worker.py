"""A backup in a process of its own, at a lower CPU priority (``nice``), for the app's
nightly job and "Back up now": copying, compressing, checksumming and verifying
hundreds of megabytes inside a serving process would hold its interpreter lock and
slow every request meanwhile (a note's save p95 went up 3.2x; in a child: see
bench/data_backup.py).

    python -m services.backup_worker URL FOLDER SETTINGS_FILE BUSY_MS DAILY WEEKLY MONTHLY

prints one JSON object: ``path``, ``manifest``, ``problems`` (from verify), ``rotated``,
or ``error``. Knows nothing of Flask: :func:`services.nightly.make_backup` starts it and
records the result (audit, lease).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from services import backup, backup_db

NICENESS = 10


def run_in_child(url: str, folder: Path, settings_file: Path, busy_timeout_ms: int, *, daily: int, weekly: int,
                 monthly: int) -> dict:
    """Start the worker, wait for it, return its JSON answer. Raises BackupError when
    it could not run or said nothing readable."""
    root = Path(__file__).resolve().parent.parent
    args = [sys.executable, "-m", "services.backup_worker", url, str(folder), str(settings_file),
            str(busy_timeout_ms), str(daily), str(weekly), str(monthly)]
    done = subprocess.run(args, cwd=root, capture_output=True, text=True, check=False)
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise backup.BackupError(f"the backup process ended with status {done.returncode}: "
                                 + " / ".join(tail)) from None


def _work(url: str, folder: Path, settings_file: Path, busy_timeout_ms: int, keep: tuple[int, int, int]) -> dict:
    try:
        database = backup_db.database_for(url, busy_timeout_ms=busy_timeout_ms)
        path, manifest = backup.create(database, folder, settings_file)
    except (backup.BackupError, OSError) as failed:
        return {"error": str(failed)}
    checked = backup.verify(path)
    rotated = backup.rotate(folder, daily=keep[0], weekly=keep[1], monthly=keep[2]) if checked.ok else []
    return {"path": str(path), "manifest": manifest, "problems": checked.problems,
            "rotated": [item.name for item in rotated]}


def main(argv: list[str]) -> None:
    url, folder, settings_file, busy_ms, daily, weekly, monthly = argv
    os.umask(0o077)  # as the app: the backup is the owner's alone
    try:
        os.nice(NICENESS)
    except OSError:
        pass
    answer = _work(url, Path(folder), Path(settings_file), int(busy_ms), (int(daily), int(weekly), int(monthly)))
    print(json.dumps(answer))


if __name__ == "__main__":
    main(sys.argv[1:])
