"""Each request kind of bench/load.py's office mix, one at a time, in-process.

    .venv/bin/python bench/kinds.py --folder /tmp/load [--rounds 40] [--repeat 3]
        [--baseline-root /path/to/another/checkout] [--profile "customer page"]

Uses a workspace that bench/load.py generated (``--folder``), signs in the same
users through the Flask test client (CSRF on, as in production) and sends each kind
of request ``--rounds`` times with the same random choices as load.py. For each kind it
prints the median wall time, the median and the mean CPU time of the serving thread
and the number of SQL statements per request: CPU and statements are what a loaded 2-core
server runs out of, and they are far less noisy than wall time on a shared machine.

With ``--baseline-root`` the same requests run against another checkout of the app
(e.g. ``git worktree add`` or ``git archive`` of main) in a second process at the same
time as this one (both meet the same load from the rest of the machine), ``--repeat``
times, and the table shows both and the ratio.
``--profile KIND`` instead runs that kind under cProfile in this checkout and prints
the functions that cost most.
Not part of the test suite: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import cProfile
import collections
import json
import pstats
import random
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PASSWORD = "bench passphrase 1"
KINDS = ["suggest", "search page", "customer page", "list filter", "note save", "claim",
         "home (sales 50)", "home (manager)", "home (front desk)", "pool page", "tasks page"]
CSRF_META = re.compile(r'"X-CSRFToken": "([^"]+)"')
CSRF_FIELD = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def workspace_data(folder: Path) -> dict:
    """The ids and queries load.py samples, read from the workspace (never generating)."""
    sys.path.insert(0, str(HERE.parent))
    sys.path.insert(0, str(HERE))
    import load

    args = argparse.Namespace(customers=0, notes=0, seed=7)
    return load.prepare(args, folder, f"sqlite:///{folder}/load.db")


# ---- one process: an app of one checkout ---------------------------------------------------

class Client:
    """A signed-in test client and its CSRF token."""

    def __init__(self, app, username: str):
        self.client = app.test_client()
        page = self.client.get("/login").get_data(as_text=True)
        token = CSRF_FIELD.search(page).group(1)
        home = self.client.post("/login", data={"username": username, "password": PASSWORD,
                                                "csrf_token": token}, follow_redirects=True)
        found = CSRF_META.search(home.get_data(as_text=True))
        if not found:
            raise SystemExit(f"could not sign in as {username}")
        self.csrf = found.group(1)

    def get(self, path: str, htmx: bool = False):
        return self.client.get(path, headers={"HX-Request": "true"} if htmx else {})

    def post(self, path: str, data: dict):
        return self.client.post(path, data=data, headers={"HX-Request": "true", "X-CSRFToken": self.csrf})


def signed_in(app, data: dict) -> dict[str, Client]:
    """The browsers request_for sends from: load.py's users, signed in to ``app``."""
    return {"sales50": Client(app, "bench.sales50"), "manager": Client(app, "bench.manager"),
            "desk": Client(app, "bench.desk"), "claimer": Client(app, data["claimers"][0])}


def request_for(kind: str, clients: dict, data: dict, rng: random.Random, serial: int):
    """A callable sending one request of ``kind`` (load.py's choices)."""
    pick = rng.choice
    sales50, manager, desk = clients["sales50"], clients["manager"], clients["desk"]
    if kind == "suggest":
        browser, q = pick([desk, sales50]), pick(data["queries"])
        return lambda: browser.client.get("/search/suggest", query_string={"q": q}, headers={"HX-Request": "true"})
    if kind == "search page":
        browser, q = pick([desk, manager]), pick(data["queries"])
        return lambda: browser.client.get("/search", query_string={"q": q})
    if kind == "customer page":
        if pick([True, False]):
            browser, cid = sales50, pick(data["own"])
        else:
            browser, cid = pick([manager, desk]), pick(data["anyone"])
        return lambda: browser.get(f"/customers/{cid}")
    if kind == "list filter":
        browser = pick([manager, sales50])
        args = pick([{"stage": "intent"}, {"tag": pick(data["tags"])}, {"q": pick(data["queries"])},
                     {"importance": "A", "sort": "name"}, {"owner": "mine"}])
        return lambda: browser.client.get("/customers", query_string=args, headers={"HX-Request": "true"})
    if kind == "note save":
        cid = pick(data["own"])
        body = {"kind": "call", "body": f"电话回访，客户询问报价 {serial}"}
        return lambda: sales50.post(f"/customers/{cid}/notes", body)
    if kind == "claim":
        cid = data["pool"].pop()
        return lambda: clients["claimer"].post(f"/pool/{cid}/claim", {"from": "list"})
    if kind == "home (sales 50)":
        return lambda: sales50.get("/")
    if kind == "home (manager)":
        return lambda: manager.get("/")
    if kind == "home (front desk)":
        return lambda: desk.get("/")
    if kind == "pool page":
        browser = pick([clients["claimer"], manager])
        return lambda: browser.get("/pool")
    if kind == "tasks page":
        return lambda: sales50.get("/tasks")
    raise ValueError(kind)


def make_app(root: Path, folder: Path):
    sys.path.insert(0, str(root))
    from app import create_app

    return create_app({"SECRET_KEY": "bench", "DATABASE_URL": f"sqlite:///{folder}/load.db",
                       "INSTANCE_PATH": str(folder), "JOBS_ENABLED": False})


def measure(root: Path, folder: Path, data: dict, kinds: list[str], rounds: int, seed: int,
            profile: cProfile.Profile | None = None) -> dict:
    """Per kind: wall ms, thread CPU ms and SQL statements of each of ``rounds`` requests."""
    from sqlalchemy import event

    app = make_app(root, folder)
    with app.app_context():
        from extensions import db

        engine = db.engine
    statements = [0]
    event.listen(engine, "before_cursor_execute", lambda *a, **k: statements.__setitem__(0, statements[0] + 1))
    clients = signed_in(app, data)
    results = {}
    for kind in kinds:
        rng = random.Random(f"{seed}-{kind}")
        request_for(kind, clients, data, rng, 0)()  # warm: templates compiled, caches filled
        wall, cpu, sql = [], [], []
        for serial in range(rounds):
            send = request_for(kind, clients, data, rng, serial)
            statements[0] = 0
            if profile:
                profile.enable()
            started, started_cpu = time.perf_counter(), time.thread_time()
            response = send()
            cpu.append((time.thread_time() - started_cpu) * 1000)
            wall.append((time.perf_counter() - started) * 1000)
            if profile:
                profile.disable()
            sql.append(statements[0])
            status = response.status_code
            if status >= 400 and not (kind == "claim" and status == 409):
                raise SystemExit(f"{kind}: {status} {response.get_data(as_text=True)[:300]}")
        results[kind] = {"wall": wall, "cpu": cpu, "sql": sql}
    return results


class Sampler:
    """A statistical profiler: every 0.5 ms of CPU time, the stack of the main thread.
    Unlike cProfile it does not slow small Python calls more than big ones, so the
    shares it gives are the shares of the real CPU time."""

    def __init__(self):
        self.inclusive: collections.Counter = collections.Counter()
        self.own: collections.Counter = collections.Counter()
        self.samples = 0

    def _name(self, frame) -> str:
        code = frame.f_code
        path = code.co_filename
        if "site-packages/" in path:
            return f"{path.split('site-packages/')[-1]}:{code.co_name}"
        short = path.replace(str(HERE.parent) + "/", "")
        return f"{short}:{code.co_name}"

    def _tick(self, _signum, frame) -> None:
        self.samples += 1
        self.own[self._name(frame)] += 1
        seen = set()
        while frame is not None:
            name = self._name(frame)
            if name not in seen:
                seen.add(name)
                self.inclusive[name] += 1
            frame = frame.f_back

    def enable(self) -> None:
        signal.signal(signal.SIGPROF, self._tick)
        signal.setitimer(signal.ITIMER_PROF, 0.0005, 0.0005)

    def disable(self) -> None:
        signal.setitimer(signal.ITIMER_PROF, 0, 0)

    def print(self, top: int = 50) -> None:
        print(f"{self.samples} samples; inclusive share (project code and main library entry points)")
        for name, n in self.inclusive.most_common():
            if top and not name.startswith(("bench/", "<", "/root", "werkzeug/test", "flask/testing")):
                print(f"{100 * n / self.samples:6.1f} %  {name}")
                top -= 1
        print("self share")
        for name, n in self.own.most_common(30):
            print(f"{100 * n / self.samples:6.1f} %  {name}")


def worker(args) -> None:
    data = json.loads(Path(args.data).read_text())
    out = measure(Path(args.root), Path(args.folder), data, args.kinds.split(","), args.rounds, args.seed)
    print(json.dumps(out))


# ---- the driver ---------------------------------------------------------------------------------

def start_worker(root: Path, args, data_file: Path, kinds: list[str], seed: int) -> subprocess.Popen:
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", "--root", str(root),
               "--folder", args.folder, "--data", str(data_file), "--kinds", ",".join(kinds),
               "--rounds", str(args.rounds), "--seed", str(seed)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=root)


def worker_results(process: subprocess.Popen) -> dict:
    out, err = process.communicate()
    if process.returncode:
        raise SystemExit(err[-3000:])
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", required=True, help="a workspace bench/load.py generated")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--baseline-root", help="another checkout of the app to compare with")
    parser.add_argument("--profile", help="run this kind under cProfile and print the costliest functions")
    parser.add_argument("--sample", help="run this kind under a sampling profiler (shares of CPU time)")
    parser.add_argument("--sort", default="tottime", help="pstats order for --profile")
    parser.add_argument("--dump", help="with --profile: also write the profile to this file (pstats)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    folder = Path(args.folder)
    data = workspace_data(folder)
    if args.sample:
        sampler = Sampler()
        results = measure(HERE.parent, folder, data, [args.sample], args.rounds, args.seed, sampler)
        sampler.print()
        return
    if args.profile:
        profile = cProfile.Profile()
        results = measure(HERE.parent, folder, data, [args.profile], args.rounds, args.seed, profile)
        if args.dump:
            profile.dump_stats(args.dump)
        pstats.Stats(profile).strip_dirs().sort_stats(args.sort).print_stats(45)
        r = results[args.profile]
        print(f"{args.profile}: wall p50 {statistics.median(r['wall']):.1f} ms (under cProfile), "
              f"{statistics.median(r['sql']):.0f} statements")
        return

    kinds = args.kinds.split(",")
    roots = {"this": HERE.parent}
    if args.baseline_root:
        roots = {"baseline": Path(args.baseline_root).resolve(), "this": HERE.parent}
    pools = {name: data["pool"][i::len(roots)] for i, name in enumerate(roots)}  # no customer claimed twice
    merged: dict[str, dict] = {name: {k: {"wall": [], "cpu": [], "sql": []} for k in kinds} for name in roots}
    # The checkouts run at the same time, one process each, so that both meet the same
    # load from whatever else shares the machine.
    for repeat in range(args.repeat):
        print(f"[{time.strftime('%H:%M:%S')}] round {repeat + 1}/{args.repeat}", file=sys.stderr)
        running = {}
        for name, root in roots.items():
            chunk = pools[name][repeat * 1000:(repeat + 1) * 1000]  # claims pop from the end: a fresh chunk each time
            data_file = folder / f"kinds-data-{name}.json"
            data_file.write_text(json.dumps({**data, "pool": chunk}))
            running[name] = start_worker(root, args, data_file, kinds, args.seed + repeat)
        for name, process in running.items():
            for kind, r in worker_results(process).items():
                for key in ("wall", "cpu", "sql"):
                    merged[name][kind][key] += r[key]
            (folder / f"kinds-data-{name}.json").unlink()
    # Medians, and the mean CPU: a kind whose requests differ (the list filter's five
    # filters) costs the server its mean, which the median can hide.
    print(f"{args.rounds * args.repeat} requests per kind and checkout; medians, and the mean CPU")
    if len(roots) == 1:
        print(f"{'kind':<20}{'wall ms':>9}{'cpu ms':>9}{'mean':>8}{'sql':>6}")
        for kind in kinds:
            r = merged["this"][kind]
            print(f"{kind:<20}{statistics.median(r['wall']):>9.1f}{statistics.median(r['cpu']):>9.1f}"
                  f"{statistics.fmean(r['cpu']):>8.1f}{statistics.median(r['sql']):>6.0f}")
        return
    print(f"{'kind':<20}{'wall base':>10}{'wall this':>10}{'ratio':>7}{'cpu base':>10}{'cpu this':>10}"
          f"{'ratio':>7}{'mean base':>10}{'mean this':>10}{'ratio':>7}{'sql base':>9}{'sql this':>9}")
    for kind in kinds:
        b, t = merged["baseline"][kind], merged["this"][kind]
        wb, wt = statistics.median(b["wall"]), statistics.median(t["wall"])
        cb, ct = statistics.median(b["cpu"]), statistics.median(t["cpu"])
        mb, mt = statistics.fmean(b["cpu"]), statistics.fmean(t["cpu"])
        print(f"{kind:<20}{wb:>10.1f}{wt:>10.1f}{wt / wb:>7.2f}{cb:>10.1f}{ct:>10.1f}{ct / cb:>7.2f}"
              f"{mb:>10.1f}{mt:>10.1f}{mt / mb:>7.2f}"
              f"{statistics.median(b['sql']):>9.0f}{statistics.median(t['sql']):>9.0f}")


if __name__ == "__main__":
    main()
