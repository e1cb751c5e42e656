"""The SQL-heavy pages of bench/load.py's mix, one request at a time, in-process: the
list filters, the pool page, the home pages and the tasks page.

    .venv/bin/python bench/list_pages.py --folder /work/data/load100k [--rounds 20]
        [--profile "list tag"] [--code /path/to/another/checkout]

Runs against a workspace bench/load.py generated (its users bench.sales50,
bench.manager, bench.desk, bench.claimer0), through the Flask test client, and prints
per request kind the median wall and CPU milliseconds, the SQL statements per request,
the milliseconds spent executing them (on SQLite the rows are read after that, so a
scan shows in the CPU and VM columns rather than here) and, on SQLite, its VM
instructions in thousands (a count, steadier than times on a shared machine).
``--code`` imports the app from another checkout (for a before/after in the same run:
run it once with each, back to back, on the same data). ``--profile KIND`` prints that
kind's cProfile (cumulative time, top 25).
Signs in, then only reads. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import sys
import time
from pathlib import Path

PASSWORD = "bench passphrase 1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", required=True)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--profile", default="")
    parser.add_argument("--only", default="", help="comma-separated kinds (prefixes)")
    parser.add_argument("--sql", action="store_true", help="print each kind's statements (last round)")
    parser.add_argument("--code", default=str(Path(__file__).resolve().parent.parent))
    args = parser.parse_args()
    sys.path.insert(0, args.code)

    from sqlalchemy import event, select

    from app import create_app
    from extensions import db
    from models import Customer, Tag

    folder = Path(args.folder)
    url = args.database_url or f"sqlite:///{folder}/load.db"
    app = create_app({"TESTING": True, "SECRET_KEY": "bench", "DATABASE_URL": url,
                      "INSTANCE_PATH": str(folder), "WTF_CSRF_ENABLED": False})
    statements: list[float] = []
    steps = [0]

    def tick() -> int:
        steps[0] += 1
        return 0

    texts: list[str] = []

    with app.app_context():
        tags = list(db.session.scalars(select(Tag.id).order_by(Tag.id)))
        names = list(db.session.scalars(select(Customer.name).order_by(Customer.id).limit(8)))

        if db.engine.dialect.name == "sqlite":  # SQLite's own work, in VM instructions
            db.engine.dispose()

            @event.listens_for(db.engine, "connect")
            def count_steps(dbapi_connection, record):
                dbapi_connection.set_progress_handler(tick, 1000)

        @event.listens_for(db.engine, "before_cursor_execute")
        def before(conn, cursor, statement, parameters, context, executemany):
            conn.info["started"] = time.perf_counter()

        @event.listens_for(db.engine, "after_cursor_execute")
        def after(conn, cursor, statement, parameters, context, executemany):
            statements.append((time.perf_counter() - conn.info.pop("started")) * 1000)
            texts.append(f"{statement} -- {str(parameters)[:120]}")

    def client(username: str):
        c = app.test_client()
        c.environ_base["HTTP_ACCEPT_LANGUAGE"] = "zh-CN"
        response = c.post("/login", data={"username": username, "password": PASSWORD})
        assert response.status_code in (200, 302, 303), response.status_code
        return c

    sales, manager, desk, claimer = (client(n) for n in
                                     ("bench.sales50", "bench.manager", "bench.desk", "bench.claimer0"))
    htmx = {"HX-Request": "true"}
    kinds: dict[str, list] = {  # kind: the requests it cycles through
        "list stage (manager)": [(manager, "/customers?stage=intent", htmx)],
        "list stage (sales)": [(sales, "/customers?stage=intent", htmx)],
        "list tag (manager)": [(manager, f"/customers?tag={t}", htmx) for t in tags],
        "list tag (sales)": [(sales, f"/customers?tag={t}", htmx) for t in tags],
        "list q (manager)": [(manager, f"/customers?q={n[:2]}", htmx) for n in names],
        "list A by name (manager)": [(manager, "/customers?importance=A&sort=name", htmx)],
        "list A by name (sales)": [(sales, "/customers?importance=A&sort=name", htmx)],
        "list mine (sales)": [(sales, "/customers?owner=mine", htmx)],
        "list mine (manager)": [(manager, "/customers?owner=mine", htmx)],
        "list unfiltered (manager)": [(manager, "/customers", {})],
        "list unfiltered (sales)": [(sales, "/customers", htmx)],
        "list B (sales)": [(sales, "/customers?importance=B", htmx)],
        "pool page (claimer)": [(claimer, "/pool", {})],
        "pool page (manager)": [(manager, "/pool", {})],
        "pool page B (claimer)": [(claimer, "/pool?importance=B", htmx)],
        "home (sales 50)": [(sales, "/", {})],
        "home (manager)": [(manager, "/", {})],
        "home (front desk)": [(desk, "/", {})],
        "tasks page (sales)": [(sales, "/tasks", {})],
    }
    if args.only:
        wanted = [w.strip() for w in args.only.split(",")]
        kinds = {k: v for k, v in kinds.items() if any(k.startswith(w) for w in wanted)}

    print(f"code: {args.code}\ndatabase: {url.split('@')[-1]}; {args.rounds} rounds per kind")
    print(f"{'kind':<28}{'wall ms':>9}{'cpu ms':>9}{'stmts':>7}{'sql ms':>9}{'vm kops':>9}")
    for kind, requests in kinds.items():
        for c, path, headers in requests[:2]:  # warm
            assert c.get(path, headers=headers).status_code == 200, path
        walls, cpus, counts, sql, vm = [], [], [], [], []
        profile = cProfile.Profile() if args.profile and kind.startswith(args.profile) else None
        for n in range(args.rounds):
            c, path, headers = requests[n % len(requests)]
            statements.clear()
            texts.clear()
            steps[0] = 0
            wall, cpu = time.perf_counter(), time.process_time()
            if profile:
                profile.enable()
            response = c.get(path, headers=headers)
            if profile:
                profile.disable()
            walls.append((time.perf_counter() - wall) * 1000)
            cpus.append((time.process_time() - cpu) * 1000)
            counts.append(len(statements))
            sql.append(sum(statements))
            vm.append(steps[0])
            assert response.status_code == 200, (path, response.status_code)
        print(f"{kind:<28}{statistics.median(walls):>9.1f}{statistics.median(cpus):>9.1f}"
              f"{statistics.median(counts):>7.0f}{statistics.median(sql):>9.1f}{statistics.median(vm):>9.0f}",
              flush=True)
        if args.sql:
            for ms, text in zip(statements, texts, strict=True):
                print(f"    {ms:8.1f} ms  {' '.join(text.split())[:400]}")
        if profile:
            pstats.Stats(profile).sort_stats("cumulative").print_stats(25)


if __name__ == "__main__":
    main()
