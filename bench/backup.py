"""Saving a note while ``flask backup create`` runs, against saving one without (issue
13 asks for a p95 at most 2× the p95 without a backup).

    DESKBOOK_INSTANCE_PATH=/tmp/bench/instance .venv/bin/python bench/backup.py [--notes 300]

Uses the instance named by DESKBOOK_INSTANCE_PATH (fill it first, e.g. with
``flask --app app demo-data --customers 20000 --notes 100000``); the notes it saves stay
there. With a backup: ``backup create`` runs again and again in another process (as
cron would) into a temporary folder. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sqlalchemy import select  # noqa: E402

from app import create_app  # noqa: E402
from bench.timing import print_table  # noqa: E402
from extensions import db  # noqa: E402
from models import Customer  # noqa: E402
from services import notes  # noqa: E402
from services.notes import NoteData  # noqa: E402


def save_notes(count: int, label: str) -> list[float]:
    """Milliseconds per note saved and committed (the index update included), each on
    an owned customer, by its owner."""
    customers = db.session.scalars(select(Customer).where(Customer.owner_id.is_not(None)).limit(count)).all()
    samples = []
    for number, customer in enumerate(customers):
        start = time.perf_counter()
        notes.create_note(customer.owner, customer, NoteData(kind="call", body=f"{label} 备份基准 {number}"))
        db.session.commit()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def backups_meanwhile(stop: threading.Event, made: list[float]) -> None:
    flask = os.path.join(os.path.dirname(sys.executable), "flask")
    with tempfile.TemporaryDirectory(prefix="deskbook-bench-backup-") as folder:
        while not stop.is_set():
            start = time.perf_counter()
            subprocess.run([flask, "--app", "app", "backup", "create", "--to", folder],
                           check=True, capture_output=True)
            made.append(time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=300)
    args = parser.parse_args()
    if not os.environ.get("DESKBOOK_INSTANCE_PATH"):
        sys.exit("Set DESKBOOK_INSTANCE_PATH to an instance with data.")
    app = create_app()
    with app.app_context():
        results = {"no backup": save_notes(args.notes, "alone")}
        stop, made = threading.Event(), []
        runner = threading.Thread(target=backups_meanwhile, args=(stop, made))
        runner.start()
        time.sleep(1.5)  # let the first backup get past start-up into the copy
        try:
            results["backup running"] = save_notes(args.notes, "during")
        finally:
            stop.set()
            runner.join()
        db.session.remove()
    print_table(results, "no backup", label="note save")
    if made:
        print(f"{len(made)} backups meanwhile, {sum(made) / len(made):.1f} s each (flask start-up and verify included)")


if __name__ == "__main__":
    main()
