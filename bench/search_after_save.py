"""A search right after a save, when the process's searchers are stale.

    .venv/bin/python bench/search_after_save.py --folder /tmp/load [--rounds 60]
        [--baseline-root /path/to/another/checkout]

Uses a workspace that bench/load.py generated (``--folder``; it adds notes to it). Per
round, as the salesperson with 50 customers: a search of customers and notes on
current searchers, a note saved (committed: the notes index is written), and the
same search again, which must reopen the notes searcher — what every process meets
after another process's save. Prints the median and p95 CPU milliseconds of both
searches. With ``--baseline-root`` the same rounds run in another checkout of the
app, in turns with this one (same machine load), and the ratio is printed.
Not part of the test suite: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def measure(root: str, folder: str, rounds: int, seed: int) -> dict[str, list[float]]:
    """In this process, on the checkout at ``root``: CPU ms of the searches."""
    sys.path.insert(0, root)
    from sqlalchemy import select

    from app import create_app
    from extensions import db
    from models import Customer
    from services import accounts, notes, search
    from services.notes import NoteData

    app = create_app({"SECRET_KEY": "bench", "DATABASE_URL": f"sqlite:///{folder}/load.db",
                      "INSTANCE_PATH": folder})
    current, after_save = [], []
    with app.app_context():
        user = accounts.get_by_username("bench.sales50")
        own = list(db.session.scalars(select(Customer).where(Customer.owner_id == user.id)))
        rng = random.Random(seed)
        words = [customer.name[:2] for customer in own]

        def searched(text: str) -> float:
            started = time.process_time()
            search.search_customers(user, text)
            search.search_notes(user, text)
            return (time.process_time() - started) * 1000

        searched(words[0])  # warm
        for n in range(rounds):
            text = rng.choice(words)
            current.append(searched(text))
            notes.create_note(user, rng.choice(own), NoteData(kind="call", body=f"电话回访，客户询问报价 {n}"))
            db.session.commit()
            after_save.append(searched(text))
        db.engine.dispose()
    return {"current searchers": current, "right after a save": after_save}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", required=True, help="a workspace bench/load.py generated")
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--baseline-root", help="another checkout of the app to compare with")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(args.worker, args.folder, args.rounds, args.seed)))
        return
    roots = {"this": str(HERE.parent)}
    if args.baseline_root:
        roots["baseline"] = str(Path(args.baseline_root).resolve())
    results: dict[str, dict[str, list[float]]] = {name: {} for name in roots}
    for turn in range(args.repeat):
        for name, root in (roots.items() if turn % 2 == 0 else reversed(roots.items())):
            out = subprocess.run([sys.executable, __file__, "--folder", args.folder, "--rounds", str(args.rounds),
                                  "--seed", str(args.seed + turn), "--worker", root],
                                 check=True, capture_output=True, text=True).stdout
            for kind, samples in json.loads(out.strip().splitlines()[-1]).items():
                results[name].setdefault(kind, []).extend(samples)
    print(f"{args.rounds * args.repeat} rounds per checkout; CPU ms")
    print(f"{'search on':<22}{'checkout':<10}{'p50':>8}{'p95':>8}{'p50/base':>10}")
    for kind in results["this"]:
        base = statistics.median(results["baseline"][kind]) if "baseline" in results else None
        for name in roots:
            samples = results[name][kind]
            p50 = statistics.median(samples)
            ratio = f"{p50 / base:>10.2f}" if base else ""
            print(f"{kind:<22}{name:<10}{p50:>8.2f}{sorted(samples)[int(0.95 * (len(samples) - 1))]:>8.2f}{ratio}")


if __name__ == "__main__":
    main()
