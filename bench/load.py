"""An office's mixed traffic, open loop, against gunicorn with several workers.

    .venv/bin/python bench/load.py [--customers 100000] [--notes 500000] [--workers 4] [--threads 1]
        [--rates 10,20,40,60,85,100,120] [--seconds 30] [--folder /tmp/load]
    .venv/bin/python bench/load.py --customers 5000 --notes 20000 --rates 10,40,85 --seconds 15
    .venv/bin/python bench/load.py --database-url postgresql://postgres@127.0.0.1:5432/test

Generates (or, with --folder, reuses) a workspace through services.demo (Faker zh_CN),
with one salesperson owning exactly 50 customers, a manager and a front-desk clerk,
builds the search index, then serves it with ``gunicorn --workers N --preload``
(the nightly jobs off: in the office's night a fresh copy of a workspace would run its
sweep and backup in a worker while the requests are timed),
warms it up (``--warmup`` seconds of the mix at 10 requests/s, not counted: each
worker's first requests compile templates and statements) and sends requests at
fixed rates with exponential gaps between arrivals (open loop: a
slow answer does not slow the arrivals, and each latency counts from the moment the
request was due, so queueing is measured too).

The mix: 35 % search-as-you-type (/search/suggest), 5 % search page, 20 % customer
page, 15 % list filters, 10 % note saves, 3 % claims, and home, pool and task pages.
For each rate it prints p50/p95/p99, errors and the server's mean CPU per request
kind (each response carries its worker thread's CPU time in a header the bench's
WSGI wrapper adds: measured in the server under the mix rather than alone, apart
from the workers' background merges); at the end the rate
where the overall p95 first crosses 300 ms, and the home page p95 for the salesperson
with 50 customers and for the manager. A baseline measured in the same run (GET
/login at 2 requests/s, nothing else running) gives each kind's p50 ratio; a fixed
piece of Python timed before the run and after each rate, and the share of CPU
stolen by other guests, say how fast the shared machine's cores were meanwhile.
Not part of the test suite: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import percentile  # noqa: E402

PASSWORD = "bench passphrase 1"
P95_LIMIT_MS = 300.0
WARMUP_RATE = 10.0
MIX = [  # (kind, weight in %)
    ("suggest", 35), ("search page", 5), ("customer page", 20), ("list filter", 15),
    ("note save", 10), ("claim", 3), ("home (sales 50)", 3), ("home (manager)", 2),
    ("home (front desk)", 2), ("pool page", 3), ("tasks page", 2),
]
# Each response says how much CPU its worker's thread spent on it (the whole request
# up to its headers: Flask builds the body first), so that CPU per kind is measured
# in the server under the mix, apart from the workers' background threads (merges).
CPU_HEADER = "X-Bench-CPU-Us"
CPU_MIDDLEWARE = f"""
def application(environ, start_response):
    started = time.thread_time()
    def start(status, headers, exc_info=None):
        spent = int((time.thread_time() - started) * 1e6)
        return start_response(status, headers + [({CPU_HEADER!r}, str(spent))], exc_info)
    return app(environ, start)
"""
CSRF_META = re.compile(r'"X-CSRFToken": "([^"]+)"')
CSRF_FIELD = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# ---- data ------------------------------------------------------------------------------

@contextmanager
def workspace(args, folder: Path, url: str, *, made_by: str, extra: Callable | None = None):
    """An app context on the workspace in ``folder`` (pool.py's too). It is generated
    unless an earlier run left one there: a fresh schema, ``args.customers`` customers
    and ``args.notes`` notes through services.demo, their users and bench.admin, then
    the search index. ``made_by``: a user the generation creates, whose absence (or
    too few customers) means there is none yet; ``extra(admin)`` adds what one
    benchmark needs before the commit. The engine is disposed at the end."""
    from sqlalchemy import func, select

    from app import create_app
    from bench_app import fresh_schema
    from extensions import db, refresh_statistics
    from models import Customer
    from services import accounts, demo, search

    app = create_app({"SECRET_KEY": "bench", "DATABASE_URL": url, "INSTANCE_PATH": str(folder)})
    with app.app_context():
        fresh = True
        try:
            fresh = accounts.get_by_username(made_by) is None or db.session.scalar(
                select(func.count()).select_from(Customer)) < args.customers
        except Exception:
            db.session.rollback()
        if fresh:
            fresh_schema(url)
            started = time.perf_counter()
            demo.generate_users(12, PASSWORD, seed=args.seed)
            counts = demo.generate_workspace(args.customers, args.notes, seed=args.seed, password=PASSWORD)
            admin = accounts.create_user("bench.admin", PASSWORD, "admin")
            if extra:
                extra(admin)
            db.session.commit()
            refresh_statistics()
            log(f"generated {counts} in {time.perf_counter() - started:.0f} s")
            started = time.perf_counter()
            search.rebuild()
            log(f"search index built in {time.perf_counter() - started:.0f} s")
        else:
            log("reusing the workspace generated earlier in this folder")
        try:
            yield
        finally:
            db.engine.dispose()


def prepare(args, folder: Path, url: str) -> dict:
    """The workspace (generated once per folder) and what the clients need of it:
    ids and query strings sampled from the database."""
    from sqlalchemy import func, select, update

    from extensions import db
    from models import Customer, CustomerPhone, Tag, User
    from services import accounts, settings

    def office_users(admin) -> None:
        """One salesperson owning exactly 50 customers, a manager, a clerk, claimers."""
        sales50 = accounts.create_user("bench.sales50", PASSWORD, "sales")
        accounts.create_user("bench.manager", PASSWORD, "manager")
        accounts.create_user("bench.desk", PASSWORD, "frontdesk")
        for n in range(6):
            accounts.create_user(f"bench.claimer{n}", PASSWORD, "sales")
        db.session.flush()
        mine = list(db.session.scalars(
            select(Customer.id).where(Customer.owner_id.is_(None)).order_by(Customer.id).limit(50)))
        db.session.execute(update(Customer).where(Customer.id.in_(mine)).values(owner_id=sales50.id))
        settings.update(admin, {"pool.max_owned": 100_000, "pool.max_daily_claims": 10_000})

    rng = random.Random(args.seed)
    with workspace(args, folder, url, made_by="bench.sales50", extra=office_users):
        sales50 = accounts.get_by_username("bench.sales50")
        own = list(db.session.scalars(select(Customer.id).where(Customer.owner_id == sales50.id)))
        anyone = list(db.session.scalars(select(Customer.id).order_by(func.random()).limit(2000)))
        pool = list(db.session.scalars(select(Customer.id).where(
            Customer.owner_id.is_(None), Customer.archived_at.is_(None)).order_by(func.random()).limit(20000)))
        phones = list(db.session.scalars(select(CustomerPhone.digits).order_by(func.random()).limit(500)))
        names = list(db.session.scalars(select(Customer.name).order_by(func.random()).limit(500)))
        tags = list(db.session.scalars(select(Tag.id)))
        sales = [u.username for u in db.session.scalars(select(User).where(User.username.like("bench.claimer%")))]
    queries = [p[-4:] for p in phones] + [n[:2] for n in names] + [n[1:] for n in names if len(n) > 2]
    rng.shuffle(pool)
    return {"own": own, "anyone": anyone, "pool": pool, "queries": queries, "tags": tags, "claimers": sales}


# ---- the server --------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(args, folder: Path, url: str) -> tuple[subprocess.Popen, str]:
    (folder / "bench_wsgi.py").write_text(
        "import time\n"
        "from app import create_app\n"
        f"app = create_app({{'SECRET_KEY': 'bench', 'DATABASE_URL': {url!r}, "
        f"'INSTANCE_PATH': {str(folder)!r}, 'JOBS_ENABLED': False}})\n"
        f"{CPU_MIDDLEWARE}")
    port = free_port()
    gunicorn = Path(sys.executable).with_name("gunicorn")
    server = subprocess.Popen(
        [str(gunicorn), "--workers", str(args.workers), "--threads", str(args.threads),
         "--bind", f"127.0.0.1:{port}", "--preload",
         "--pythonpath", f"{ROOT},{folder}", "--log-level", "warning", "--timeout", "120",
         "bench_wsgi:application"], cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(base + "/login", timeout=2).read()
            return server, base
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("gunicorn did not start")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` and its children that are still
    running (gunicorn's master and its workers), from /proc (Linux; 0 elsewhere)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(stat.parent.name) == pid or int(fields[1]) == pid:  # fields[1]: the parent's pid
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def host_speed() -> float:
    """Milliseconds a fixed piece of pure Python takes on this machine now (the best
    of five): the same code measured at different times of a shared machine differs
    by a quarter or more, and this says how fast the cores were around each rate."""
    best = float("inf")
    for _ in range(5):
        started = time.thread_time()
        sum(i * i % 7 for i in range(300_000))
        best = min(best, time.thread_time() - started)
    return best * 1000


def host_ticks() -> tuple[int, int]:
    """(all, stolen) CPU ticks of the machine so far, from /proc/stat (Linux; zeros
    elsewhere): time a virtual machine's cores spent running other guests."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0, 0
    ticks = [int(f) for f in fields]
    return sum(ticks[:8]), ticks[7] if len(ticks) > 7 else 0


# ---- clients -------------------------------------------------------------------------------

class Browser:
    """One signed-in browser: its cookies and its CSRF token."""

    def __init__(self, base: str, username: str):
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        page = self.opener.open(base + "/login", timeout=30).read().decode()
        token = CSRF_FIELD.search(page).group(1)
        body = urllib.parse.urlencode({"username": username, "password": PASSWORD, "csrf_token": token})
        home = self.opener.open(base + "/login", data=body.encode(), timeout=30).read().decode()
        found = CSRF_META.search(home)
        if not found:
            raise SystemExit(f"could not sign in as {username}")
        self.csrf = found.group(1)

    def get(self, path: str, htmx: bool = False) -> int:
        request = urllib.request.Request(self.base + path, headers={"HX-Request": "true"} if htmx else {})
        return self._send(request)

    def post(self, path: str, data: dict) -> int:
        request = urllib.request.Request(
            self.base + path, data=urllib.parse.urlencode(data, doseq=True).encode(),
            headers={"HX-Request": "true", "X-CSRFToken": self.csrf})
        return self._send(request)

    def _send(self, request) -> int:
        try:
            with self.opener.open(request, timeout=60) as response:
                response.read()
                _record_cpu(response.headers)
                return response.status
        except urllib.error.HTTPError as error:
            error.read()
            _record_cpu(error.headers)
            return error.code


_sent = threading.local()  # the server CPU (ms) of the last request this thread sent


def _record_cpu(headers) -> None:
    value = headers.get(CPU_HEADER) if headers else None
    _sent.cpu = int(value) / 1000 if value else None


@dataclass
class Office:
    sales50: list[Browser]
    manager: Browser
    desk: Browser
    claimers: list[Browser]
    data: dict
    rng: random.Random
    lock: threading.Lock

    def pick(self, items):
        with self.lock:
            return self.rng.choice(items)

    def next_pool_customer(self) -> int | None:
        with self.lock:
            return self.data["pool"].pop() if self.data["pool"] else None


def request_for(kind: str, office: Office):
    """A callable sending one request of ``kind``; returns (status, ok)."""
    d, pick = office.data, office.pick
    if kind == "suggest":
        browser, q = pick([office.desk, *office.sales50]), pick(d["queries"])
        return lambda: browser.get("/search/suggest?" + urllib.parse.urlencode({"q": q}), htmx=True)
    if kind == "search page":
        browser, q = pick([office.desk, office.manager]), pick(d["queries"])
        return lambda: browser.get("/search?" + urllib.parse.urlencode({"q": q}))
    if kind == "customer page":
        if pick([True, False]):
            browser, cid = pick(office.sales50), pick(d["own"])
        else:
            browser, cid = pick([office.manager, office.desk]), pick(d["anyone"])
        return lambda: browser.get(f"/customers/{cid}")
    if kind == "list filter":
        browser = pick([office.manager, *office.sales50])
        args = pick([{"stage": "intent"}, {"tag": pick(d["tags"])}, {"q": pick(d["queries"])},
                     {"importance": "A", "sort": "name"}, {"owner": "mine"}])
        return lambda: browser.get("/customers?" + urllib.parse.urlencode(args), htmx=True)
    if kind == "note save":
        browser, cid = pick(office.sales50), pick(d["own"])
        body = {"kind": "call", "body": f"电话回访，客户询问报价 {random.randrange(10**6)}"}
        return lambda: browser.post(f"/customers/{cid}/notes", body)
    if kind == "claim":
        browser, cid = pick(office.claimers), office.next_pool_customer()
        return lambda: browser.post(f"/pool/{cid}/claim", {"from": "list"}) if cid else 200
    if kind == "home (sales 50)":
        browser = pick(office.sales50)
        return lambda: browser.get("/")
    if kind == "home (manager)":
        return lambda: office.manager.get("/")
    if kind == "home (front desk)":
        return lambda: office.desk.get("/")
    if kind == "pool page":
        browser = pick([*office.claimers, office.manager])
        return lambda: browser.get("/pool")
    if kind == "tasks page":
        browser = pick(office.sales50)
        return lambda: browser.get("/tasks")
    raise ValueError(kind)


def run_rate(office: Office, rate: float, seconds: float, kinds: list[str], weights: list[int],
             pool: ThreadPoolExecutor) -> dict[str, dict]:
    """Send requests at ``rate`` per second for ``seconds``; per kind the latencies (ms,
    counted from when each was due), the error count and the server CPU (ms) each
    request's response reported."""
    results: dict[str, dict] = defaultdict(lambda: {"ms": [], "errors": 0, "cpu": []})
    lock = threading.Lock()
    rng = random.Random(int(rate * 1000))

    def one(kind: str, send, due: float):
        _sent.cpu = None
        try:
            status = send()
            ok = status < 400 or (kind == "claim" and status == 409)
        except OSError:
            ok = False
        elapsed = (time.perf_counter() - due) * 1000
        with lock:
            results[kind]["ms"].append(elapsed)
            results[kind]["errors"] += 0 if ok else 1
            if _sent.cpu is not None:
                results[kind]["cpu"].append(_sent.cpu)

    start = time.perf_counter()
    due = start
    futures = []
    while due - start < seconds:
        due += rng.expovariate(rate)
        kind = rng.choices(kinds, weights)[0]
        send = request_for(kind, office)
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        futures.append(pool.submit(one, kind, send, due))
    for future in futures:
        future.result()
    return results


def report(rate: float, results: dict[str, dict], baseline_p50: float, cpu: tuple[float, float],
           host: tuple[float, float]) -> float:
    """Print one rate's figures; ``cpu``: CPU seconds of the server and of this load
    generator while it ran; ``host``: host_speed() right after it, and the share of
    the machine's ticks stolen by other guests while it ran. Returns the overall p95."""
    every = [ms for r in results.values() for ms in r["ms"]]
    errors = sum(r["errors"] for r in results.values())
    overall = percentile(every, 0.95)
    print(f"\n== {rate:g} requests/s: {len(every)} requests, {errors} errors, "
          f"p50 {percentile(every, 0.5):.0f} ms, p95 {overall:.0f} ms, p99 {percentile(every, 0.99):.0f} ms")
    server, generator = (seconds * 1000 / max(1, len(every)) for seconds in cpu)
    print(f"CPU per request: server {server:.1f} ms, load generator {generator:.1f} ms; "
          f"host: reference loop {host[0]:.1f} ms, {host[1]:.1%} stolen")
    # The requests' own CPU (each worker thread's, as the server reported it) and the
    # rest of the server's: background merges, gunicorn, the master.
    in_requests = sum(ms for r in results.values() for ms in r["cpu"])
    if in_requests:
        own = in_requests / max(1, len(every))
        print(f"  of which the requests' own {own:.1f} ms, the rest (background merges, "
              f"gunicorn) {server - own:.1f} ms")
    print(f"{'kind':<20}{'n':>6}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'errors':>8}{'p50/base':>10}"
          f"{'cpu ms':>8}{'cpu %':>7}")
    for kind, _weight in MIX:
        r = results.get(kind)
        if not r or not r["ms"]:
            continue
        p50 = percentile(r["ms"], 0.5)
        spent = (f"{sum(r['cpu']) / len(r['cpu']):>8.1f}{sum(r['cpu']) / in_requests:>7.0%}"
                 if r["cpu"] and in_requests else "")
        print(f"{kind:<20}{len(r['ms']):>6}{p50:>9.0f}{percentile(r['ms'], 0.95):>9.0f}"
              f"{percentile(r['ms'], 0.99):>9.0f}{r['errors']:>8}{p50 / baseline_p50:>10.1f}{spent}")
    return overall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--notes", type=int, default=500_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1, help="threads per worker (gunicorn's gthread workers)")
    parser.add_argument("--rates", default="10,20,40,60,85,100,120")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--warmup", type=float, default=20, help="seconds of the mix at a low rate, not counted")
    parser.add_argument("--sales-browsers", type=int, default=4)
    parser.add_argument("--folder", help="keep the workspace here and reuse it next time")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", ""))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--profile-server", metavar="FILE",
                        help="record the server's stacks during the last rate with py-spy into FILE "
                             "(read it with bench/serverprofile.py; that rate's figures include py-spy's cost)")
    args = parser.parse_args()

    folder = Path(args.folder) if args.folder else Path(tempfile.mkdtemp(prefix="deskbook-load-"))
    folder.mkdir(parents=True, exist_ok=True)
    url = args.database_url or f"sqlite:///{folder}/load.db"
    data = prepare(args, folder, url)
    server, base = serve(args, folder, url)
    try:
        office = Office(
            sales50=[Browser(base, "bench.sales50") for _ in range(args.sales_browsers)],
            manager=Browser(base, "bench.manager"), desk=Browser(base, "bench.desk"),
            claimers=[Browser(base, name) for name in data["claimers"]],
            data=data, rng=random.Random(args.seed), lock=threading.Lock())
        kinds, weights = [k for k, _ in MIX], [w for _, w in MIX]
        with ThreadPoolExecutor(max_workers=256) as pool:
            login = Browser.__new__(Browser)
            login.base, login.opener = base, urllib.request.build_opener()
            base_ms = baseline_times(login)
            baseline_p50 = percentile(base_ms, 0.5)
            print(f"database: {url.split(':')[0]}; {args.customers} customers, {args.notes} notes; "
                  f"gunicorn --workers {args.workers} --threads {args.threads}; {os.cpu_count()} cores")
            print(f"baseline GET /login alone: p50 {baseline_p50:.1f} ms, p95 {percentile(base_ms, 0.95):.1f} ms")
            print(f"host: reference loop {host_speed():.1f} ms (the same code is slower when other "
                  "guests of the machine are busy; compare runs by it)")
            # Each worker's first requests of a kind compile its templates and
            # statements and open the index: not what an office meets all day long.
            warm = run_rate(office, WARMUP_RATE, args.warmup, kinds, weights, pool)
            print(f"warm-up (not counted): {sum(len(r['ms']) for r in warm.values())} requests "
                  f"at {WARMUP_RATE:g}/s")
            crossed, homes = None, {}
            rates = [float(r) for r in args.rates.split(",")]
            for rate in rates:
                spy = None
                if args.profile_server and rate == rates[-1]:
                    spy = record_stacks(server.pid, args.seconds, args.profile_server)
                server_cpu, own_cpu, ticks = cpu_seconds(server.pid), time.process_time(), host_ticks()
                results = run_rate(office, rate, args.seconds, kinds, weights, pool)
                if spy is not None and spy.wait(timeout=args.seconds + 60):
                    print(f"py-spy failed (it needs to read the workers' memory: ptrace): "
                          f"{spy.stderr.read().strip()[-300:]}")
                cpu = (cpu_seconds(server.pid) - server_cpu, time.process_time() - own_cpu)
                (total, stolen), (total0, stolen0) = host_ticks(), ticks
                host = (host_speed(), (stolen - stolen0) / max(1, total - total0))
                p95 = report(rate, results, baseline_p50, cpu, host)
                homes[rate] = {k: percentile(results[k]["ms"], 0.95)
                               for k in ("home (sales 50)", "home (manager)") if results[k]["ms"]}
                if crossed is None and p95 > P95_LIMIT_MS:
                    crossed = rate
        print()
        print(f"overall p95 crosses {P95_LIMIT_MS:.0f} ms at: "
              f"{f'{crossed:g} requests/s' if crossed else 'none of the rates tried'}")
        for rate, shown in homes.items():
            print(f"home page p95 at {rate:g}/s: " + ", ".join(f"{k} {v:.0f} ms" for k, v in shown.items()))
    finally:
        server.terminate()
        server.wait(timeout=30)
        if not args.folder:
            shutil.rmtree(folder, ignore_errors=True)


def record_stacks(pid: int, seconds: float, out: str) -> subprocess.Popen:
    """py-spy sampling gunicorn's master and workers (100 stacks a second each, without
    pausing them) for ``seconds``, into ``out`` as collapsed stacks: unlike the WSGI
    wrapper's CPU header it sees the workers' background merges and gunicorn too."""
    spy = Path(sys.executable).with_name("py-spy")
    return subprocess.Popen([str(spy), "record", "--pid", str(pid), "--subprocesses", "--nonblocking",
                             "--rate", "100", "--duration", str(int(seconds)), "--format", "raw",
                             "--output", out], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def baseline_times(login: Browser) -> list[float]:
    """The baseline: GET /login, 2 per second for 10 s, nothing else running."""
    samples = []
    for _ in range(20):
        start = time.perf_counter()
        login.get("/login")
        samples.append((time.perf_counter() - start) * 1000)
        time.sleep(0.5)
    return samples


if __name__ == "__main__":
    main()
