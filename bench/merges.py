"""What a stream of saves costs the search index: the saves, the background merges they
cause, and the searches that then read the segments left.

    .venv/bin/python bench/merges.py --folder /tmp/load [--writes 600] [--repeat 2]
        [--baseline-root /path/to/another/checkout]

Uses a workspace that bench/load.py generated (``--folder``), never changing it: each
run works on a fresh copy of it. One run, in-process, as load.py's mix writes: note
saves and claims (10 to 3), each followed by waiting for the merges it set off, so
that the process's CPU time beyond the request's own thread is the merges'. Then
suggest and the search page, on the segments the writes left. Prints per run the
medians and means (ms of CPU), how many merges ran, and the segments of each index.
With ``--baseline-root`` the same runs alternate with another checkout of the app
(e.g. ``git worktree add``), each on its own fresh copy.
Not part of the test suite: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run(root: Path, folder: Path, data: dict, writes: int, seed: int) -> dict:
    """In this process, with the app of ``root`` on the workspace in ``folder``."""
    sys.path.insert(0, str(HERE))
    import kinds

    app = kinds.make_app(root, folder)
    from services.search import store, sync
    from services.search import whoosh_internals as internals

    merges = [0]
    merge_small = sync.merge_small

    def counted(*args, **kwargs):
        merges[0] += 1
        return merge_small(*args, **kwargs)

    sync.merge_small = counted
    clients = kinds.signed_in(app, data)
    rng = random.Random(seed)
    out: dict[str, list[float]] = {"note save": [], "claim": [], "merges after a note save": [],
                                   "merges after a claim": []}
    for serial in range(writes):
        kind = "claim" if rng.random() < 3 / 13 else "note save"
        send = kinds.request_for(kind, clients, data, rng, serial)
        started_process, started_thread = time.process_time(), time.thread_time()
        response = send()
        own = time.thread_time() - started_thread
        sync.wait_for_background()
        if response.status_code >= 400 and response.status_code != 409:
            raise SystemExit(f"{kind}: {response.status_code}")
        out[kind].append(own * 1000)
        out[f"merges after a {kind}"].append((time.process_time() - started_process - own) * 1000)
    for kind in ("suggest", "search page"):
        out[kind] = []
        for serial in range(200):
            send = kinds.request_for(kind, clients, data, rng, serial)
            started = time.thread_time()
            send()
            out[kind].append((time.thread_time() - started) * 1000)
    with app.app_context():
        segments = {which: len(internals.read_segments(store.open_index(which))[1])
                    for which in (store.CUSTOMERS, store.NOTES)}
    return {"times": out, "merges": merges[0], "segments": segments}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", required=True, help="a workspace bench/load.py generated")
    parser.add_argument("--writes", type=int, default=600)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--baseline-root", help="another checkout of the app to compare with")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        data = json.loads(Path(args.data).read_text())
        print(json.dumps(run(Path(args.root), Path(args.folder), data, args.writes, args.seed)))
        return

    sys.path.insert(0, str(HERE))
    import kinds

    data = kinds.workspace_data(Path(args.folder))
    roots = {"this": HERE.parent}
    if args.baseline_root:
        roots = {"baseline": Path(args.baseline_root).resolve(), "this": HERE.parent}
    results: dict[str, list[dict]] = {name: [] for name in roots}
    with tempfile.TemporaryDirectory(dir=Path(args.folder).parent) as scratch:
        data_file = Path(scratch) / "data.json"
        data_file.write_text(json.dumps(data))
        for repeat in range(args.repeat):
            for name, root in roots.items():
                copy = Path(scratch) / "workspace"
                shutil.rmtree(copy, ignore_errors=True)
                shutil.copytree(args.folder, copy)
                print(f"[{time.strftime('%H:%M:%S')}] {name}, run {repeat + 1}/{args.repeat}", file=sys.stderr)
                done = subprocess.run(
                    [sys.executable, __file__, "--worker", "--root", str(root), "--folder", str(copy),
                     "--data", str(data_file), "--writes", str(args.writes), "--seed", str(args.seed + repeat)],
                    capture_output=True, text=True, cwd=root)
                if done.returncode:
                    raise SystemExit(done.stderr[-3000:])
                results[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
    for name, runs in results.items():
        print(f"== {name} ({roots[name]})")
        for n, result in enumerate(runs, 1):
            print(f"run {n}: {result['merges']} merges; segments at the end: {result['segments']}")
            for kind, values in result["times"].items():
                if values:
                    print(f"  {kind:<26} n {len(values):>4}  median {statistics.median(values):6.1f}  "
                          f"mean {statistics.fmean(values):6.1f}  p95 {sorted(values)[int(len(values) * 0.95)]:6.1f}")


if __name__ == "__main__":
    main()
