"""The lint step: `make test` and `make test-fast` run ruff and the mypy budget before
pytest, and the budget check fails when mypy's error count grows."""

import subprocess
from pathlib import Path

import pytest

from tools import mypy_budget

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("target", ["test", "test-fast"])
def test_make_runs_lint_before_pytest(target):
    # -n prints the commands without running them; -B treats every target as out of
    # date, so the plan lists each prerequisite's commands, not only stale ones.
    plan = subprocess.run(["make", "-n", "-B", target], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout
    assert "ruff check" in plan and "tools/mypy_budget.py" in plan
    assert plan.index("tools/mypy_budget.py") < plan.index("-m pytest")


def test_summary_lines_are_counted():
    output = "a.py:1: error: x  [misc]\nFound 12 errors in 3 files (checked 9 source files)\n"
    assert mypy_budget.count_errors(output) == 12
    assert mypy_budget.count_errors("Found 1 error in 1 file (checked 2 source files)\n") == 1
    assert mypy_budget.count_errors("Success: no issues found in 79 source files\n") == 0
    with pytest.raises(ValueError):
        mypy_budget.count_errors("mypy: can't read file 'nope.py'\n")


@pytest.fixture
def budget(tmp_path, monkeypatch):
    path = tmp_path / ".mypy-budget"
    path.write_text("10\n")
    monkeypatch.setattr(mypy_budget, "BUDGET", path)
    return path


def _mypy_says(monkeypatch, errors):
    monkeypatch.setattr(mypy_budget, "run_mypy", lambda: f"Found {errors} errors in 2 files (checked 5 source files)\n")


def test_more_errors_than_the_budget_fail(budget, monkeypatch, capsys):
    _mypy_says(monkeypatch, 11)
    assert mypy_budget.main([]) == 1
    assert "more than the budget of 10" in capsys.readouterr().err


@pytest.mark.parametrize("errors", [10, 9])
def test_the_budget_or_fewer_pass(budget, monkeypatch, errors):
    _mypy_says(monkeypatch, errors)
    assert mypy_budget.main([]) == 0
    assert budget.read_text() == "10\n"


def test_update_writes_the_new_count(budget, monkeypatch):
    _mypy_says(monkeypatch, 7)
    assert mypy_budget.main(["--update"]) == 0
    assert budget.read_text() == "7\n"


def test_unreadable_mypy_output_fails(budget, monkeypatch):
    monkeypatch.setattr(mypy_budget, "run_mypy", lambda: "Traceback (most recent call last): ...")
    assert mypy_budget.main([]) == 2
