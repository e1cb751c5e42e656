"""Claim latency under contention: N signed-in browsers claim from the pool at once.

    .venv/bin/python bench/pool.py [--claimers 20] [--customers 400] [--rounds 3]
    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test .venv/bin/python bench/pool.py

Each claimer is a thread with its own session cookie posting /pool/<id>/claim through
the whole app (htmx fragment), all claimers racing for the same customers in the same
order, so most requests lose a race. Prints p50/p95 of winning and losing claims, and
the baseline of one claimer alone, measured in the same run. Not part of the tests.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))


from bench_app import bench_app, database_url, fresh_schema  # noqa: E402
from timing import print_table  # noqa: E402
from extensions import db  # noqa: E402
from services import accounts, customers, settings  # noqa: E402
from services.customers import CustomerData  # noqa: E402

PASSWORD = "bench passphrase 1"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--claimers", type=int, default=20)
    parser.add_argument("--customers", type=int, default=400)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as instance:
        url = database_url(instance)
        app = bench_app(instance, url)
        with app.app_context():
            fresh_schema(url)
            admin = accounts.create_user("bench.admin", PASSWORD, "admin")
            settings.update(admin, {"pool.max_owned": 100000, "pool.max_daily_claims": 10000})
            desk = accounts.create_user("bench.desk", PASSWORD, "frontdesk")
            ids = [customers.create_customer(desk, CustomerData(name=f"公海客户{n}")).id
                   for n in range(args.customers + 50)]
            names = [accounts.create_user(f"claimer{n}", PASSWORD, "sales").username
                     for n in range(args.claimers)]
            db.session.commit()
            db.engine.dispose()
        browsers = []
        for name in names:
            client = app.test_client()
            client.post("/login", data={"username": name, "password": PASSWORD})
            browsers.append(client)

        def claim(client, customer_id):
            start = time.perf_counter()
            response = client.post(f"/pool/{customer_id}/claim", headers={"HX-Request": "true"},
                                   data={"from": "list"})
            elapsed = (time.perf_counter() - start) * 1000
            assert response.status_code < 500, response.status_code
            return elapsed, response.status_code == 200  # a refused claim answers 422

        alone = [claim(browsers[0], cid)[0] for cid in ids[args.customers:]]
        barrier = threading.Barrier(len(browsers))

        def race(client):
            barrier.wait(timeout=30)
            return [claim(client, cid) for cid in ids[:args.customers]]

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=len(browsers)) as executor:
            results = [r for batch in executor.map(race, browsers) for r in batch]
        wall = time.perf_counter() - started
        won = [ms for ms, ok in results if ok]
        lost = [ms for ms, ok in results if not ok]
        with app.app_context():
            backend = db.engine.dialect.name
            db.engine.dispose()
    print(f"database: {backend}; {args.claimers} concurrent claimers racing for {args.customers} customers; "
          f"{len(results)} requests in {wall:.1f} s; winners {len(won)} (must be {args.customers})")
    print_table({"alone (baseline)": alone, "won under contention": won,
                 "lost under contention": lost}, "alone (baseline)", "claim")


if __name__ == "__main__":
    main()
