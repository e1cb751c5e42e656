"""The nightly backup at office scale, and what it costs the people saving notes meanwhile.

    .venv/bin/python bench/data_backup.py [--customers 100000] [--notes 500000] [--saves 300]
    .venv/bin/python bench/data_backup.py --folder /tmp/bench-backup   # keep (and reuse) the data

Generates (seeded, Faker zh_CN + en_US, through services.demo's bulk inserts) a SQLite
database of customers and notes, then:

1. times the nightly backup job's work (services.nightly.make_backup: copy, pack,
   verify, rotate) as the app's scheduler runs it, and prints the database and backup sizes;
2. saves notes one after another (each committed, with its search-index update) without a
   backup, then while backups run one after another, started from a thread of the same
   process as the app's own scheduler does (the work in a child process at nice 10; with
   --in-process inside the process itself), and prints p50/p95 and the ratio to the run
   without (issue 13's target: p95 at most 2x).

The search index is built while the database is empty, so it holds only the notes saved
here (building it for 600,000 records takes minutes; a save's index update does not depend
much on the index's size: each is a new small segment). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from flask_migrate import upgrade  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from app import create_app  # noqa: E402
from extensions import db, refresh_statistics  # noqa: E402
from models import Customer, CustomerNote  # noqa: E402
from services import demo, nightly, notes, search  # noqa: E402
from services.notes import NoteData  # noqa: E402
from timing import percentile, print_table  # noqa: E402

PASSWORD = "bench passphrase 1"


def generate(customers: int, notes_wanted: int) -> None:
    have = db.session.scalar(select(func.count()).select_from(CustomerNote))
    if have >= notes_wanted:
        print(f"reusing {db.session.scalar(select(func.count()).select_from(Customer))} customers, {have} notes")
        return
    search.rebuild()  # an empty index (see the module's docstring)
    started = time.perf_counter()
    demo.generate_users(12, PASSWORD, seed=1)
    counts = demo.generate_workspace(customers, notes_wanted, seed=1, password=PASSWORD)
    db.session.commit()
    refresh_statistics()
    print(f"generated {counts} in {time.perf_counter() - started:.1f} s")


def time_backup(folder: Path, in_child: bool) -> None:
    lines: list[str] = []
    started = time.perf_counter()
    summary = nightly.make_backup(lines.append, folder=folder, in_child=in_child)
    total = time.perf_counter() - started
    database = Path(db.engine.url.database)
    size = sum(p.stat().st_size for p in (database, Path(f"{database}-wal")) if p.exists())
    for line in lines:
        print("  " + line)
    print(f"backup job: {total:.1f} s in all (copy, pack, verify, rotate); database {size / 1e6:.1f} MB "
          f"(file and WAL); {summary}")


def save_notes(customers: list[Customer], label: str) -> list[float]:
    """Milliseconds per note saved and committed (its index update included), each
    on an owned customer, by its owner."""
    samples = []
    for number, customer in enumerate(customers):
        start = time.perf_counter()
        notes.create_note(customer.owner, customer, NoteData(kind="call", body=f"{label} 备份基准 {number}"))
        db.session.commit()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def backups_meanwhile(app, folder: Path, stop: threading.Event, took: list[float], in_child: bool) -> None:
    """Back up again and again from a thread of this process, as the app's scheduler would."""
    with app.app_context():
        while not stop.is_set():
            started = time.perf_counter()
            nightly.make_backup(lambda _line: None, folder=folder, in_child=in_child)
            took.append(time.perf_counter() - started)
        db.session.remove()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--notes", type=int, default=500_000)
    parser.add_argument("--saves", type=int, default=300)
    parser.add_argument("--folder", help="keep the instance here (reused by the next run)")
    parser.add_argument("--in-process", action="store_true",
                        help="back up inside this process (as `flask backup create` does) instead of in a "
                             "child process at a lower priority (as the app's scheduler does)")
    args = parser.parse_args()
    instance = args.folder or tempfile.mkdtemp(prefix="deskbook-bench-data-backup-")
    os.makedirs(instance, exist_ok=True)
    app = create_app({"TESTING": True, "SECRET_KEY": "bench", "INSTANCE_PATH": instance,
                      "DATABASE_URL": f"sqlite:///{instance}/deskbook.db", "BACKUP_KEEP_DAILY": 1,
                      "BACKUP_KEEP_WEEKLY": 0, "BACKUP_KEEP_MONTHLY": 0})
    backups = Path(instance) / "backups"
    with app.app_context():
        upgrade()
        generate(args.customers, args.notes)
        in_child = not args.in_process
        print("backing up " + ("in a child process (nice 10), as the app's scheduler does" if in_child
                               else "inside this process"))
        time_backup(backups, in_child)
        owned = db.session.scalars(select(Customer).where(Customer.owner_id.is_not(None))
                                   .order_by(Customer.id).limit(args.saves * 2)).all()
        save_notes(owned[:10], "warm-up")
        results = {"no backup": save_notes(owned[: args.saves], "alone")}
        stop, took = threading.Event(), []
        runner = threading.Thread(target=backups_meanwhile, args=(app, backups, stop, took, in_child))
        runner.start()
        time.sleep(0.5)  # into the first copy
        try:
            results["backup running"] = save_notes(owned[args.saves:], "during")
        finally:
            stop.set()
            runner.join()
        db.session.remove()
    print_table(results, "no backup", label="note save")
    ratio = percentile(results["backup running"], 0.95) / percentile(results["no backup"], 0.95)
    print(f"p95 with a backup running / without: {ratio:.2f} (target at most 2)")
    if took:
        print(f"{len(took)} backups meanwhile, {statistics.mean(took):.1f} s each")


if __name__ == "__main__":
    main()
