"""Run mypy (settings in pyproject.toml) and fail when it reports more errors than the
budget written in .mypy-budget.

The budget only goes down: when a change fixes type errors, this says so and asks for
the lower number to be written into .mypy-budget in the same commit.

    python tools/mypy_budget.py            # check (what `make lint` runs)
    python tools/mypy_budget.py --update   # write the current count into .mypy-budget
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUDGET = ROOT / ".mypy-budget"
SUMMARY = re.compile(r"^Found (\d+) errors? in \d+ files?", re.MULTILINE)


def count_errors(output: str) -> int:
    """The error count in mypy's closing line (0 when it reports success)."""
    found = SUMMARY.search(output)
    if found:
        return int(found.group(1))
    if "Success: no issues found" in output:
        return 0
    raise ValueError("mypy printed no summary line:\n" + output[-2000:])


def run_mypy() -> str:
    result = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True)
    return result.stdout + result.stderr


def main(argv: list[str]) -> int:
    output = run_mypy()
    try:
        errors = count_errors(output)
    except ValueError as problem:
        print(problem, file=sys.stderr)
        return 2
    if "--update" in argv:
        BUDGET.write_text(f"{errors}\n")
        print(f"mypy: {errors} errors; budget written to {BUDGET.name}")
        return 0
    budget = int(BUDGET.read_text().split()[0])
    if errors > budget:
        print(output, end="")
        print(f"mypy: {errors} errors, more than the budget of {budget} in {BUDGET.name}. "
              "Fix the new ones (listed above) rather than raising the budget.", file=sys.stderr)
        return 1
    if errors < budget:
        print(f"mypy: {errors} errors, under the budget of {budget}: write {errors} into {BUDGET.name} "
              f"(python tools/mypy_budget.py --update) so it stays down.")
    else:
        print(f"mypy: {errors} errors (budget {budget})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
