"""The daily workflow at office scale: the filtered customer list and the customer page.

    .venv/bin/python bench/workflow.py [--customers 100000] [--notes 500000] [--rounds 50]
    .venv/bin/python bench/workflow.py --db /tmp/bench/deskbook.db   # reuse a generated database

Generates (seeded, Faker zh_CN + en_US, through services.demo) customers, tags, notes and
tasks, gives one customer 2,000 notes and one 5, then measures through the Flask test
client, warm: p50/p95 of the customer list with two tags and a stage filter (page and
htmx fragment), the unfiltered list, and the customer page with 2,000 notes vs 5 notes;
the baseline is a bare route of the same app, measured in the same run. Not part of the
test suite.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from flask_migrate import upgrade  # noqa: E402
from sqlalchemy import func, insert, select  # noqa: E402

from bench_app import bench_app  # noqa: E402
from timing import print_table, timed  # noqa: E402
from extensions import db, refresh_statistics  # noqa: E402
from models import Customer, CustomerNote, customer_tags, utcnow  # noqa: E402
from services import accounts, demo  # noqa: E402

PASSWORD = "bench passphrase 1"


def add_notes(customer_id: int, author_id: int, count: int) -> None:
    now = utcnow()
    db.session.execute(insert(CustomerNote.__table__), [
        {"customer_id": customer_id, "author_id": author_id, "kind": "call", "sections": {},
         "body": f"第{n}次回访：客户询问报价和交付时间。", "created_at": now - timedelta(minutes=n)}
        for n in range(count)
    ])
    db.session.commit()


def build(args, instance: str, url: str):
    app = bench_app(instance, url)
    with app.app_context():
        fresh = not args.db
        if fresh:
            upgrade()
            started = time.perf_counter()
            demo.generate_users(12, PASSWORD, seed=1)
            counts = demo.generate_workspace(args.customers, args.notes, seed=1, password=PASSWORD)
            db.session.commit()
            refresh_statistics()
            print(f"generated {counts} in {time.perf_counter() - started:.1f} s")
        if accounts.get_by_username("bench.manager") is None:
            accounts.create_user("bench.manager", PASSWORD, "manager")
            db.session.commit()
        manager = accounts.get_by_username("bench.manager")
        heavy, light = db.session.scalars(
            select(Customer.id).where(Customer.archived_at.is_(None)).order_by(Customer.id.desc()).limit(2)
        ).all()
        have = db.session.scalar(select(func.count()).where(CustomerNote.customer_id == heavy))
        if have < 2000:
            add_notes(heavy, manager.id, 2000 - have)
        top_tags = [row[0] for row in db.session.execute(
            select(customer_tags.c.tag_id, func.count()).group_by(customer_tags.c.tag_id)
            .order_by(func.count().desc()).limit(2))]
        light_notes = db.session.scalar(select(func.count()).where(CustomerNote.customer_id == light))
        db.engine.dispose()
    return app, heavy, light, light_notes, top_tags


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--notes", type=int, default=500_000)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--db", help="an existing SQLite file made by an earlier run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as instance:
        url = os.environ.get("DATABASE_URL") or f"sqlite:///{args.db or instance + '/bench.db'}"
        app, heavy, light, light_notes, tags = build(args, instance, url)
        client = app.test_client()
        client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "zh-CN"
        client.post("/login", data={"username": "bench.manager", "password": PASSWORD})
        filtered = f"/customers?stage=intent&tag={tags[0]}&tag={tags[1]}"
        hx = {"HX-Request": "true"}
        results = {
            "baseline (bare route)": timed(lambda: client.get("/__baseline"), args.rounds),
            "list: 2 tags + stage (page)": timed(lambda: client.get(filtered), args.rounds),
            "list: 2 tags + stage (htmx)": timed(lambda: client.get(filtered, headers=hx), args.rounds),
            "list: unfiltered (htmx)": timed(lambda: client.get("/customers", headers=hx), args.rounds),
            "customer page, 2,000 notes": timed(lambda: client.get(f"/customers/{heavy}"), args.rounds),
            f"customer page, {light_notes} notes": timed(lambda: client.get(f"/customers/{light}"), args.rounds),
        }
        with app.app_context():
            backend = db.engine.dialect.name
            total = db.session.scalar(select(func.count()).select_from(Customer))
            notes = db.session.scalar(select(func.count()).select_from(CustomerNote))
            db.engine.dispose()
    print(f"database: {backend}; {total} customers, {notes} notes; {args.rounds} rounds, warm")
    print_table(results, "baseline (bare route)", "request")


if __name__ == "__main__":
    main()
