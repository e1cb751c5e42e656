"""Importing 50,000 customers (issue 13 asks for at most 60 s per file, the search
index included), from an .xlsx and from a CSV file made with Faker zh_CN.

    .venv/bin/python bench/data_import.py [--rows 50000] [--database-url postgresql://...]

Each file goes into a fresh temporary instance (SQLite, or a schema of its own in
the PostgreSQL database of --database-url, dropped after; its own search index): the
whole check (what the preview and the dry run do) and the import, each timed, then
a search for the last imported customer to show the index has it. The import of a
tenth of the rows is the baseline: the ratio per row tells whether the cost grows
with the file. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import sys
import secrets
import tempfile
import time
import urllib.parse
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from faker import Faker  # noqa: E402
from flask_migrate import upgrade  # noqa: E402

from app import create_app  # noqa: E402
from extensions import db  # noqa: E402
from services import accounts, import_jobs, imports, search  # noqa: E402

HEADERS = ["姓名", "公司", "手机", "座机", "邮箱", "地址", "地区", "阶段", "重要程度", "来源", "生日", "标签", "备注"]
STAGES, SOURCES = ["潜在", "意向", "成交", "流失"], ["来电", "到访", "转介绍", "网络", "其他"]
TAGS = ["VIP", "老客户", "展会", "团购", "装修", "教育", "医疗"]


def make_rows(count: int, seed: int = 13):
    fake = Faker("zh_CN")
    fake.seed_instance(seed)
    for i in range(count):
        yield [fake.name(), fake.company(), fake.phone_number(), f"010-{6000_0000 + i}",
               f"u{i}@{fake.free_email_domain()}", fake.address(), fake.province(), STAGES[i % 4],
               "ABC"[i % 3], SOURCES[i % 5], fake.date_of_birth(minimum_age=20, maximum_age=70),
               "、".join(TAGS[i % 7 : i % 7 + 2]), fake.sentence() if i % 3 == 0 else ""]


def write_xlsx(path: Path, count: int) -> None:
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet()
    sheet.append(HEADERS)
    for row in make_rows(count):
        row[2] = int(row[2])  # as Excel keeps a typed phone number: a number
        sheet.append(row)
    workbook.save(path)


def write_csv(path: Path, count: int) -> None:
    with path.open("w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(HEADERS)
        writer.writerows(make_rows(count))


@contextmanager
def fresh_database(folder: str, database_url: str | None):
    """A URL of an empty database: a SQLite file in ``folder``, or a new schema in
    the PostgreSQL database ``database_url`` (dropped afterwards)."""
    if not database_url:
        yield f"sqlite:///{folder}/bench.db"
        return
    from sqlalchemy import create_engine, text

    schema = f"bench_import_{secrets.token_hex(4)}"
    admin = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    parts = urllib.parse.urlsplit(database_url)
    query = urllib.parse.parse_qsl(parts.query) + [("options", f"-csearch_path={schema}")]
    try:
        yield urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def timed_import(path: Path, split: bool = False, database_url: str | None = None, rebuild: bool = True) -> dict:
    """A fresh instance; the check and the import of ``path``, timed in seconds (and
    the process's CPU seconds of the check and the database part). With ``split``
    the index is updated once after the database part (timed apart) instead of
    every few chunks as the app does. Without ``rebuild``, no full rebuild after."""
    with tempfile.TemporaryDirectory(prefix="deskbook-bench-import-") as folder, \
            fresh_database(folder, database_url) as url:
        app = create_app({"TESTING": True, "SECRET_KEY": "bench", "INSTANCE_PATH": folder, "DATABASE_URL": url})
        with app.app_context():
            upgrade()
            actor = accounts.create_user("bench.admin", "bench password 123", "admin")
            db.session.commit()
            search.rebuild()  # an office has its index already; building it is not the import's cost
            start, start_cpu = time.perf_counter(), time.process_time()
            batch = imports.receive_file(actor, path.name, lambda dest: shutil.copy(path, dest))
            db.session.commit()
            batch_id = batch.id
            import_jobs.run(import_jobs.CHECK, batch_id, actor.id)
            checked, checked_cpu = time.perf_counter(), time.process_time()
            import_jobs.confirm(actor, db.session.get(imports.ImportBatch, batch_id))
            db.session.commit()
            live_drain = search.sync.drain
            if split:  # the database's part alone; the index then takes the whole backlog at once
                search.sync.drain = lambda *args, **kwargs: 0
            try:
                import_jobs.run(import_jobs.IMPORT, batch_id, actor.id)
            finally:
                search.sync.drain = live_drain
            written, written_cpu = time.perf_counter(), time.process_time()
            search.drain(timeout=3600, bulk=True)  # as the import's own drain at its end
            done = time.perf_counter()
            batch = db.session.get(imports.ImportBatch, batch_id)
            assert batch.status == "done", batch.error
            name = imports.read_report(batch)["preview"][0]["shown"]["name"]
            found = search.search_customers(actor, name)
            result = {"check": checked - start, "import": done - checked, "total": done - start,
                      "database": written - checked, "index": done - written,
                      "check_cpu": checked_cpu - start_cpu, "database_cpu": written_cpu - checked_cpu,
                      "created": batch.counts["created"], "found": found.total > 0 and not found.from_database}
            search.sync.wait_for_background(120)
            start = time.perf_counter()
            if rebuild:  # the same records indexed from scratch: what the import's index part compares with
                search.rebuild(procs=1)
            result["rebuild"] = time.perf_counter() - start if rebuild else None
            search.sync.wait_for_background(120)
            db.session.remove()
            db.engine.dispose()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--kinds", default="xlsx,csv", help="xlsx, csv or both (comma separated)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the import of a tenth of the rows")
    parser.add_argument("--split", action="store_true", help="time the database and the index apart")
    parser.add_argument("--no-rebuild", action="store_true", help="no full rebuild of the index after each import")
    parser.add_argument("--database-url", help="a PostgreSQL database to import into (a schema of its own per run)")
    args = parser.parse_args()
    kinds = [kind for kind in ("xlsx", "csv") if kind in args.kinds.split(",")]
    sizes = (args.rows,) if args.no_baseline else (args.rows // 10, args.rows)
    with tempfile.TemporaryDirectory(prefix="deskbook-bench-files-") as folder:
        results = {}
        for kind, writer in (("xlsx", write_xlsx), ("csv", write_csv)):
            if kind not in kinds:
                continue
            for count in sizes:
                path = Path(folder) / f"customers-{count}.{kind}"
                writer(path, count)
                results[(kind, count)] = timed_import(path, args.split, args.database_url, not args.no_rebuild)
                r = results[(kind, count)]
                parts = (f" (database {r['database']:.1f} s, CPU {r['database_cpu']:.1f} s; "
                         f"index after {r['index']:.1f} s)") if args.split else ""
                rebuilt = "" if r["rebuild"] is None else f"; a full rebuild of the index then: {r['rebuild']:.1f} s"
                print(f"{kind:4} {count:6} rows ({path.stat().st_size / 2**20:5.1f} MB): check {r['check']:6.1f} s "
                      f"(CPU {r['check_cpu']:.1f} s), import {r['import']:6.1f} s{parts}, "
                      f"total {r['total']:6.1f} s; created {r['created']}, "
                      f"found by the index: {r['found']}{rebuilt}", flush=True)
        for kind in kinds:
            large = results[(kind, args.rows)]
            verdict = "within" if large["total"] <= 60 else "OVER"
            line = f"{kind}: {large['total']:.1f} s for {args.rows} rows ({verdict} the 60 s target)"
            if not args.no_baseline:
                small = results[(kind, args.rows // 10)]
                ratio = (large["total"] / args.rows) / (small["total"] / (args.rows // 10))
                line += f"; per-row cost {ratio:.2f}x that of {args.rows // 10} rows"
            where = "PostgreSQL" if args.database_url else "SQLite"
            print(f"{line}; {where}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
