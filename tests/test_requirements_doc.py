"""Every requirement code the code cites (C3, S4, P8 …) is explained in
docs/REQUIREMENTS.md, so a reader can look up what a docstring refers to."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "REQUIREMENTS.md"
SCANNED = ["app.py", "config.py", "extensions.py", "cli.py", "models", "services", "blueprints",
           "templates", "static/app.js", "tests", "bench"]
# A code: a section letter of the product document and a number, e.g. "S4"; not part of
# a longer word nor of a URL escape ("%A0") nor a quoted spreadsheet cell (sheet["I3"])
# nor the end of a cell range ("A1:F6").
# "S1–S4" cites S1 to S4.
CODE = re.compile(r"(?<![%\w\":])([ACDFINPRSTU])([1-9]\d?)(?:\s*[–-]\s*\1([1-9]\d?))?\b")


def _files():
    for name in SCANNED:
        path = ROOT / name
        yield from ([path] if path.is_file() else sorted(path.rglob("*.py")) + sorted(path.rglob("*.html")))


def cited_codes(text: str) -> set[str]:
    codes = set()
    for letter, first, last in CODE.findall(text):
        codes.update(f"{letter}{n}" for n in range(int(first), int(last or first) + 1))
    return codes


def test_codes_are_read_with_their_ranges():
    assert cited_codes("Search (S1–S4); see C3, and P8.") == {"S1", "S2", "S3", "S4", "C3", "P8"}
    assert cited_codes("/search?q=%E5%BC%A0 A4paper X1 S10b") == set()
    assert cited_codes('sheet["I3"].value, <c r="C2">, freeze_panes = "A2"') == set()
    assert cited_codes('<dimension ref="A1:F6"/>') == set()
    assert cited_codes("Requirements: D1, D2") == {"D1", "D2"}


def test_every_cited_code_is_explained():
    explained = set(re.findall(r"^- \*\*([A-Z]\d+)\*\* ", DOC.read_text(encoding="utf-8"), re.MULTILINE))
    cited: dict[str, str] = {}
    for path in _files():
        for code in cited_codes(path.read_text(encoding="utf-8")):
            cited.setdefault(code, str(path.relative_to(ROOT)))
    assert len(cited) >= 20, "the scan found too few codes to be working"
    missing = {code: where for code, where in cited.items() if code not in explained}
    assert not missing, f"cited but not in docs/REQUIREMENTS.md: {missing}"
