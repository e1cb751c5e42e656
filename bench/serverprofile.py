"""Where a loaded server's CPU goes: read the stacks `bench/load.py --profile-server`
recorded (py-spy, collapsed), across gunicorn's master and workers.

    .venv/bin/python bench/serverprofile.py /tmp/stacks.txt [--under "detail (blueprints/customers"]

Prints each part's share of the samples: every view (the first frame in
blueprints/ below Flask's dispatch), what runs before and after it in each request
(the user's row and session checks, the request context, the answer, gunicorn), and
the background merges of the search index; then the frames that cost most on their
own. With ``--under PATTERN`` it prints the frames below the first frame whose name
holds PATTERN instead, with their share of all samples. Idle samples are not recorded,
so shares are of the CPU the server used.
Not part of the test suite: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import collections
import re
from pathlib import Path

_LINE = re.compile(r":\d+\)$")
_SITE = re.compile(r"\(\S*?site-packages/|\(/\S*?/(?=(blueprints|services|templates|bench)/)")
# The part of a request a frame belongs to, by the first of these below the worker's loop.
PARTS = [
    ("background merges of the search index", "merge_small (services/search/sync.py)"),
    ("views (below)", "Flask.dispatch_request (flask/app.py)"),
    ("before and after the view: user, session rules, CSRF, headers", "Flask.full_dispatch_request"),
    ("request context, session cookie, teardown, the answer's start", "Flask.wsgi_app (flask/app.py)"),
    ("the WSGI call (bench wrapper, werkzeug)", "application (bench_wsgi.py)"),
    ("gunicorn: parse, write, accept", "SyncWorker.handle (gunicorn"),
]


def read(path: Path):
    """(frames, count) per recorded stack, outermost first, the process's name dropped
    and the frames' paths shortened to the project's or the package's."""
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [_SITE.sub("(", _LINE.sub(")", frame)) for frame in stack.split(";")[1:]]
        yield frames, int(count)


def part_of(frames: list[str]) -> str:
    for name, marker in PARTS:
        if any(marker in frame for frame in frames):
            return name
    return "other (the master, py-spy's view of idle moments)"


def view_of(frames: list[str]) -> str | None:
    for index, frame in enumerate(frames):
        if "Flask.dispatch_request" in frame:
            return next((f for f in frames[index + 1:] if "(blueprints/" in f and "access.py" not in f), None)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stacks", type=Path)
    parser.add_argument("--under", help="the frames below the first frame whose name holds this")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()

    total = 0
    parts: collections.Counter = collections.Counter()
    views: collections.Counter = collections.Counter()
    own: collections.Counter = collections.Counter()
    below: collections.Counter = collections.Counter()
    for frames, count in read(args.stacks):
        total += count
        parts[part_of(frames)] += count
        if view := view_of(frames):
            views[view] += count
        if frames:
            own[frames[-1]] += count
        if args.under:
            start = next((i for i, f in enumerate(frames) if args.under in f), None)
            if start is not None:
                for frame in set(frames[start:]):
                    below[frame] += count
    if not total:
        raise SystemExit(f"{args.stacks}: no samples")

    def share(n: int) -> str:
        return f"{100 * n / total:5.1f} %"

    print(f"{total} samples")
    if args.under:
        for frame, n in below.most_common(args.top):
            print(f"{share(n)}  {frame}")
        return
    for name, n in parts.most_common():
        print(f"{share(n)}  {name}")
    print("views")
    for frame, n in views.most_common(args.top):
        print(f"{share(n)}    {frame}")
    print("frames that cost most on their own")
    for frame, n in own.most_common(args.top):
        print(f"{share(n)}  {frame}")


if __name__ == "__main__":
    main()
