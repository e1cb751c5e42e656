"""Page render and sign-in times, measured in-process through the Flask test client.

    .venv/bin/python bench/pages.py [--users 200] [--audit 20000] [--rounds 200]
    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test .venv/bin/python bench/pages.py

Builds a throw-away instance (SQLite by default) with generated staff (Faker zh_CN) and
audit lines, then prints p50/p95 per page and the ratio to a baseline measured in the
same run: a bare route of the same app that renders nothing (so the ratio is the cost
of our page on top of Flask, sessions, security headers and the user lookup).
Not part of the test suite: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))


from bench_app import bench_app, database_url, fresh_schema  # noqa: E402
from timing import print_table, timed  # noqa: E402
from extensions import db  # noqa: E402
from models import AuditEvent  # noqa: E402
from services import accounts, demo  # noqa: E402

PASSWORD = "bench passphrase 1"


def build(args, instance: str):
    url = database_url(instance)
    app = bench_app(instance, url)
    with app.app_context():
        fresh_schema(url)
        accounts.create_user("bench.admin", PASSWORD, "admin", display_name="基准管理员")
        demo.generate_users(args.users, PASSWORD, seed=1)
        db.session.commit()
        db.session.bulk_insert_mappings(AuditEvent, [
            {"action": "login.success", "actor_name": "bench.admin", "ip": "10.0.0.9",
             "details": {}} for _ in range(args.audit)])
        db.session.commit()
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--audit", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as instance:
        app = build(args, instance)
        client = app.test_client()
        client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "zh-CN"
        results = {"baseline (bare route)": timed(lambda: client.get("/__baseline"), args.rounds),
                   "GET /login": timed(lambda: client.get("/login"), args.rounds)}
        signed_in = app.test_client()
        signed_in.post("/login", data={"username": "bench.admin", "password": PASSWORD})
        for path in ("/", "/admin/users", "/admin/audit", "/account"):
            results[f"GET {path}"] = timed(lambda p=path: signed_in.get(p), args.rounds)
        results["GET /admin/audit (htmx rows)"] = timed(
            lambda: signed_in.get("/admin/audit", headers={"HX-Request": "true"}), args.rounds)
        # A new browser for every sign-in; a new unknown name for every failure, so no
        # lockout short-cuts the password check.
        ghosts = (f"ghost{n}" for n in range(10**6))
        results["POST /login (Argon2id verify)"] = timed(
            lambda: app.test_client().post(
                "/login", data={"username": "bench.admin", "password": PASSWORD}),
            max(20, args.rounds // 10))
        results["POST /login wrong password"] = timed(
            lambda: app.test_client().post(
                "/login", data={"username": next(ghosts), "password": "nope nope"}),
            max(20, args.rounds // 10), ok=lambda status: status == 422)
        with app.app_context():
            backend = db.engine.dialect.name
            db.engine.dispose()
    print(f"database: {backend}; {args.users} users, {args.audit} audit lines, {args.rounds} rounds")
    print_table(results, "baseline (bare route)", "request")


if __name__ == "__main__":
    main()
