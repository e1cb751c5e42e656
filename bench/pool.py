"""Claim latency under contention: N signed-in browsers race to claim from the pool,
against gunicorn with several workers.

    .venv/bin/python bench/pool.py [--claimers 30] [--customers 20000] [--notes 60000]
        [--workers 4] [--seconds 20] [--think 0] [--folder /work/data/pool20k]
    .venv/bin/python bench/pool.py --database-url postgresql://postgres@127.0.0.1:5432/scratch

Generates (or, with --folder, reuses) a workspace through services.demo (most of its
customers wait in the pool), adds the claimers (sales accounts in English, so that
refusals can be told apart by their words), builds the search index and serves it
with ``gunicorn --workers N --preload`` (bench/load.py's server and browsers).

The baseline, measured in the same run: one claimer alone claims customers one after
another, nothing else running. Then all the claimers walk down the same shuffled list
of pool customers at once, for --seconds, each posting /pool/<id>/claim as the pool
list's Claim button does (htmx, "from=list") as soon as the previous answer came (or
after --think seconds), so most claims lose a race. Prints p50/p95/p99 per outcome
(won, each refusal reason), errors (5xx, timeouts), claims per second, and checks from
the database that no customer was claimed twice and no claimer passed a limit.
--max-owned and --daily set the limits (by default high enough that most refusals are
lost races; set them low to exercise the limit checks). Not part of the tests.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from load import PASSWORD, Browser, cpu_seconds, log, serve, workspace  # noqa: E402
from timing import percentile  # noqa: E402

# How a refusal reads (the claimers' language is English).
REASONS = [("Already claimed by", "already_claimed"), ("the limit is", "limit"),
           ("the most per day", "daily_limit"), ("gave this customer up", "reclaim_lock")]


def prepare(args, folder: Path, url: str) -> list[int]:
    """The workspace (generated once per folder, by load.py's ``workspace``), the
    claimers and the limits; returns the pool's customer ids, shuffled."""
    from sqlalchemy import func, select, update

    from extensions import db
    from models import Customer, PoolEvent, User
    from services import accounts, search, settings

    with workspace(args, folder, url, made_by="bench.admin"):
        # A run starts from the same state: the earlier runs' claims are put back.
        names = [f"bench.claimer{n}" for n in range(args.claimers + 1)]
        ids = list(db.session.scalars(select(User.id).where(User.username.in_(names))))
        if ids:
            taken = list(db.session.scalars(select(Customer.id).where(Customer.owner_id.in_(ids))))
            db.session.execute(update(Customer).where(Customer.id.in_(taken))
                               .values(owner_id=None, owned_since=None, pool_reason="new"))
            search.mark_customers(taken, with_notes=True)
            db.session.execute(PoolEvent.__table__.delete().where(
                (PoolEvent.to_user_id.in_(ids)) | (PoolEvent.actor_id.in_(ids))))
        for name in names:
            if accounts.get_by_username(name) is None:
                accounts.create_user(name, PASSWORD, "sales", language="en")
        admin = accounts.get_by_username("bench.admin")
        settings.update(admin, {"pool.max_owned": args.max_owned, "pool.max_daily_claims": args.daily})
        db.session.commit()
        search.drain()
        pool = list(db.session.scalars(select(Customer.id).where(
            Customer.owner_id.is_(None), Customer.archived_at.is_(None)).order_by(Customer.id)))
        log(f"{db.session.scalar(select(func.count()).select_from(Customer))} customers, "
            f"{len(pool)} in the pool; limits: {args.max_owned} owned, {args.daily} claims a day")
    random.Random(args.seed).shuffle(pool)
    return pool


def verify(folder: Path, url: str, claimers: int, max_owned: int, daily: int) -> list[str]:
    """What the database says of the race: a problem per broken rule (none expected)."""
    from sqlalchemy import func, select

    from app import create_app
    from extensions import db
    from models import Customer, PoolEvent, PoolEventKind, User

    app = create_app({"SECRET_KEY": "bench", "DATABASE_URL": url, "INSTANCE_PATH": str(folder)})
    problems = []
    with app.app_context():
        names = [f"bench.claimer{n}" for n in range(claimers + 1)]
        users = dict(db.session.execute(select(User.id, User.username).where(User.username.in_(names))).all())
        twice = db.session.execute(
            select(PoolEvent.customer_id, func.count()).where(
                PoolEvent.kind == PoolEventKind.CLAIM, PoolEvent.to_user_id.in_(users))
            .group_by(PoolEvent.customer_id).having(func.count() > 1)).all()
        problems += [f"customer {cid} claimed {n} times" for cid, n in twice]
        events = dict(db.session.execute(
            select(PoolEvent.to_user_id, func.count()).where(
                PoolEvent.kind == PoolEventKind.CLAIM, PoolEvent.to_user_id.in_(users))
            .group_by(PoolEvent.to_user_id)).all())
        owned = dict(db.session.execute(
            select(Customer.owner_id, func.count()).where(Customer.owner_id.in_(users))
            .group_by(Customer.owner_id)).all())
        for uid, name in users.items():
            if owned.get(uid, 0) > max_owned:
                problems.append(f"{name} owns {owned[uid]} (limit {max_owned})")
            if events.get(uid, 0) > daily:
                problems.append(f"{name} claimed {events[uid]} today (limit {daily})")
            if owned.get(uid, 0) != events.get(uid, 0):
                problems.append(f"{name} owns {owned.get(uid, 0)} but has {events.get(uid, 0)} claim events")
        db.engine.dispose()
    return problems


class Claimer(Browser):
    """A signed-in browser that claims from the pool list and says what came of it."""

    def claim(self, customer_id: int) -> tuple[float, str]:
        request = urllib.request.Request(
            f"{self.base}/pool/{customer_id}/claim", data=b"from=list",
            headers={"HX-Request": "true", "X-CSRFToken": self.csrf})
        start = time.perf_counter()
        try:
            with self.opener.open(request, timeout=60) as response:
                response.read()
                status, body = response.status, ""
        except urllib.error.HTTPError as error:
            status, body = error.code, error.read().decode(errors="replace")
        except OSError as error:
            return (time.perf_counter() - start) * 1000, f"error ({type(error).__name__})"
        elapsed = (time.perf_counter() - start) * 1000
        if status == 200:
            return elapsed, "won"
        if status == 422:
            return elapsed, next((reason for words, reason in REASONS if words in body), "refused (other)")
        if status == 404:
            return elapsed, "not_in_pool (404)"
        return elapsed, f"error ({status})"


def race(claimers: list[Claimer], ids: list[int], seconds: float, think: float) -> tuple[list, float]:
    """Every claimer walks down ``ids`` at once for ``seconds``; returns (ms, outcome)
    of every claim and the wall time."""
    barrier = threading.Barrier(len(claimers))

    def walk(claimer: Claimer) -> list[tuple[float, str]]:
        done = []
        barrier.wait(timeout=60)
        deadline = time.perf_counter() + seconds
        for cid in ids:
            if time.perf_counter() >= deadline:
                break
            done.append(claimer.claim(cid))
            if think:
                time.sleep(think)
        return done

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(claimers)) as executor:
        results = [r for batch in executor.map(walk, claimers) for r in batch]
    return results, time.perf_counter() - started


def print_outcomes(results: list[tuple[float, str]], baseline: list[float]) -> None:
    """p50/p95/p99/max per outcome, and the ratio of each p50 to the baseline's."""
    by = defaultdict(list)
    for ms, outcome in results:
        by[outcome].append(ms)
    rows = [("all claims", [ms for ms, _ in results])] + sorted(by.items(), key=lambda kv: -len(kv[1]))
    rows.append(("alone (baseline)", baseline))
    base = percentile(baseline, 0.5)
    print(f"{'outcome':<24}{'n':>7}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}{'p50/base':>10}")
    for name, samples in rows:
        p50 = percentile(samples, 0.5)
        print(f"{name:<24}{len(samples):>7}{p50:>9.0f}{percentile(samples, 0.95):>9.0f}"
              f"{percentile(samples, 0.99):>9.0f}{max(samples):>9.0f}{p50 / base:>10.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--claimers", type=int, default=30)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--notes", type=int, default=60_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--think", type=float, default=0.0, help="seconds each claimer waits between claims")
    parser.add_argument("--max-owned", type=int, default=100_000)
    parser.add_argument("--daily", type=int, default=10_000)
    parser.add_argument("--baseline", type=int, default=40, help="claims of the lone claimer")
    parser.add_argument("--folder", help="keep the workspace here and reuse it next time")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", ""))
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    folder = Path(args.folder) if args.folder else Path(tempfile.mkdtemp(prefix="deskbook-pool-"))
    folder.mkdir(parents=True, exist_ok=True)
    url = args.database_url or f"sqlite:///{folder}/pool.db"
    ids = prepare(args, folder, url)
    server, base = serve(args, folder, url)
    try:
        claimers = [Claimer(base, f"bench.claimer{n}") for n in range(args.claimers)]
        alone = Claimer(base, f"bench.claimer{args.claimers}")
        baseline_ids, ids = ids[-args.baseline:], ids[:-args.baseline]
        alone.claim(baseline_ids.pop())  # warm-up
        cpu = cpu_seconds(server.pid)
        baseline = [alone.claim(cid) for cid in baseline_ids]
        baseline_cpu = (cpu_seconds(server.pid) - cpu) / len(baseline) * 1000
        cpu = cpu_seconds(server.pid)
        results, wall = race(claimers, ids, args.seconds, args.think)
        race_cpu = (cpu_seconds(server.pid) - cpu) / len(results) * 1000
    finally:
        server.terminate()
        server.wait(timeout=30)
    won = sum(1 for _, outcome in results if outcome == "won")
    print(f"\ndatabase: {url.split(':')[0]}; gunicorn --workers {args.workers}; {os.cpu_count()} cores; "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{args.claimers} claimers racing down the same list for {wall:.1f} s (think {args.think:g} s): "
          f"{len(results)} claims ({len(results) / wall:.0f}/s), {won} won ({won / wall:.1f}/s)")
    print(f"baseline, one claimer alone, nothing else running: {dict(Counter(o for _, o in baseline))}")
    print(f"workers' CPU per claim: alone {baseline_cpu:.0f} ms, racing {race_cpu:.0f} ms; "
          f"racing used {race_cpu * len(results) / 1000 / wall:.2f} cores on average")
    print_outcomes(results, [ms for ms, _ in baseline])
    problems = verify(folder, url, args.claimers, args.max_owned, args.daily)
    print("database check: " + ("no customer claimed twice, no limit passed" if not problems
                                else f"{len(problems)} problems: " + "; ".join(problems[:10])))
    if not args.folder:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
