"""Exporting at office scale: 100,000 customers as CSV and Excel, time and peak memory.

    .venv/bin/python bench/data_export.py [--customers 100000] [--notes 100000] [--rounds 1]
    .venv/bin/python bench/data_export.py --db /tmp/bench-export/deskbook.db   # reuse the data
    createdb -h 127.0.0.1 -U postgres deskbook_bench     # a scratch database: its tables are replaced
    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/deskbook_bench .venv/bin/python bench/data_export.py

Generates (seeded, Faker zh_CN + en_US, bulk inserts through services.demo) the
customers, tags and notes, then runs every measurement in a fresh process that signs
in as a manager and downloads through the Flask test client, reading the streamed
body chunk by chunk as a browser would: the unfiltered customer list as CSV and as
Excel, and the notes list both ways. Each process reports wall time, rows, bytes, and
its CPU time and peak resident memory (VmHWM) beside a baseline process that only starts the
app and opens the first page of the customer list. Targets: ≤ 30 s and ≤ 200 MB for
100,000 customers. On PostgreSQL the tables of the given database are dropped and
recreated: point it at a scratch database. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PASSWORD = "bench passphrase 1"
CASES = [("baseline", "page"), ("customers", "csv"), ("customers", "xlsx"), ("notes", "csv"), ("notes", "xlsx")]


def _app(url: str, instance: str):
    from app import create_app

    return create_app({"TESTING": True, "SECRET_KEY": "bench", "DATABASE_URL": url,
                       "INSTANCE_PATH": instance, "WTF_CSRF_ENABLED": False})


def generate(url: str, instance: str, customers: int, notes: int) -> None:
    from flask_migrate import upgrade

    from extensions import db, refresh_statistics
    from services import accounts, demo

    app = _app(url, instance)
    with app.app_context():
        if url.startswith("postgresql"):
            db.drop_all()
            db.session.execute(db.text("DROP TABLE IF EXISTS alembic_version"))
            db.session.commit()
        upgrade()
        started = time.perf_counter()
        demo.generate_users(12, PASSWORD, seed=1)
        counts = demo.generate_workspace(customers, notes, seed=1, password=PASSWORD)
        accounts.create_user("bench.manager", PASSWORD, "manager")
        db.session.commit()
        refresh_statistics()
        print(f"generated {counts} in {time.perf_counter() - started:.1f} s", flush=True)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_mb() -> float:
    """This process's peak resident memory (VmHWM). Not ru_maxrss: Linux carries that
    over from the parent across exec, so a child would report the generator's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(url: str, instance: str, what: str, fmt: str) -> dict:
    """One download in this process: wall and CPU seconds, rows, bytes, peak memory in MB."""
    app = _app(url, instance)
    client = app.test_client()
    response = client.post("/login", data={"username": "bench.manager", "password": PASSWORD})
    assert response.status_code == 303, response.status_code
    started, cpu = time.perf_counter(), _cpu_seconds()
    if what == "baseline":
        response = client.get("/customers")
        size, lines = len(response.get_data()), 0
    else:
        response = client.get(f"/{what}/export?format={fmt}", buffered=False)
        assert response.status_code == 200 and response.is_streamed
        size = lines = 0
        for chunk in response.response:
            size += len(chunk)
            lines += chunk.count(b"\n")
        response.close()
    seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu
    from extensions import db
    from models import AuditEvent

    with app.app_context():
        line = db.session.scalar(db.select(AuditEvent).where(AuditEvent.action == f"export.{what}")
                                 .order_by(AuditEvent.id.desc()).limit(1)) if what != "baseline" else None
        rows = line.details["rows"] if line is not None else lines
    return {"seconds": seconds, "cpu": cpu, "rows": rows, "bytes": size, "peak_mb": _peak_mb()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--notes", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--db", help="a SQLite file made by an earlier run (reused)")
    parser.add_argument("--measure", nargs=4, metavar=("URL", "INSTANCE", "WHAT", "FORMAT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        url, instance, what, fmt = args.measure
        print(json.dumps(measure(url, instance, what, fmt)))
        return
    instance = tempfile.mkdtemp(prefix="deskbook-export-bench-")
    url = os.environ.get("DATABASE_URL")
    if url is None:
        path = Path(args.db) if args.db else Path(instance) / "deskbook.db"
        url = f"sqlite:///{path}"
        if not path.exists():
            generate(url, instance, args.customers, args.notes)
    else:
        generate(url, instance, args.customers, args.notes)
    results = {}
    for what, fmt in CASES:
        runs = []
        for _ in range(args.rounds):
            output = subprocess.run([sys.executable, __file__, "--measure", url, instance, what, fmt],
                                    check=True, capture_output=True, text=True).stdout
            runs.append(json.loads(output.strip().splitlines()[-1]))
        results[f"{what} {fmt}"] = runs
    base = results["baseline page"]
    base_s, base_mb = statistics.median(r["seconds"] for r in base), statistics.median(r["peak_mb"] for r in base)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (wall time grows with it; CPU time less)")
    print(f"{'download':<18}{'rows':>9}{'MB out':>9}{'p50 s':>8}{'p95 s':>8}{'CPU s':>8}{'peak MB':>9}{'Δ MB':>7}"
          f"{'s/base':>9}")
    for name, runs in results.items():
        seconds = sorted(r["seconds"] for r in runs)
        p50, p95 = statistics.median(seconds), seconds[min(len(seconds) - 1, round(0.95 * (len(seconds) - 1)))]
        cpu = statistics.median(r["cpu"] for r in runs)
        peak = max(r["peak_mb"] for r in runs)
        print(f"{name:<18}{runs[0]['rows']:>9}{runs[0]['bytes'] / 1e6:>9.1f}{p50:>8.2f}{p95:>8.2f}{cpu:>8.2f}"
              f"{peak:>9.0f}{peak - base_mb:>7.0f}{p50 / base_s:>9.0f}")


if __name__ == "__main__":
    main()
