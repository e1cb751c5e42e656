"""Marking what a search matched in the text a result shows, and cutting a note down
to a snippet around its first match.

The strings to mark come from ``QueryWords.highlights()``, folded as index terms
are (``analysis.fold``: NFKC, case, traditional to simplified). Shown text is folded
the same way, character by character, so a full-width ``ＡＣＭＥ`` or ``Acme`` is marked
for ``acme``, 張偉 for 张伟, and a phone number is marked across the spaces
``phones.display`` puts in it. Every piece of text is escaped
before it is wrapped in ``<mark>``: a customer named ``<b>张伟</b>`` stays text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from markupsafe import Markup, escape

from services.search.analysis import fold

# Separators a shown phone number may have between its digits.
_PHONE_GAP = r"[\s\-\.\(\)]*"
SNIPPET_BEFORE = 24
SNIPPET_LENGTH = 90


# Characters that fold one for one and never combine with a neighbour (ASCII, CJK
# ideographs, 、。 and the full-width forms of ASCII: ，（）：！ …): a text made only of
# them is folded whole, each folded character coming from the one at its index.
_ONE_FOR_ONE = re.compile("[\x00-\x7f\u3001\u3002\u4e00-\u9fff\uff01-\uff5e]*")


def _normalised(text: str) -> tuple[str, list[int]]:
    """``text`` folded, with the index in ``text`` of the character each folded
    character came from."""
    if _ONE_FOR_ONE.fullmatch(text):
        return fold(text), list(range(len(text)))
    folded, origin = [], []
    for index, char in enumerate(text):
        for out in fold(char):
            folded.append(out)
            origin.append(index)
    return "".join(folded), origin


def _pattern(needles: Iterable[str]) -> re.Pattern | None:
    """One pattern for every needle, longest first (so 张伟 wins over 张); digits may
    have separators between them."""
    return _pattern_of(frozenset(n for n in needles if n))


@lru_cache(maxsize=256)
def _pattern_of(needles: frozenset[str]) -> re.Pattern | None:
    # Every shown field of every result is marked with the same needles.
    parts = []
    for needle in sorted(needles, key=len, reverse=True):
        if needle.isdigit():
            parts.append(_PHONE_GAP.join(re.escape(digit) for digit in needle))
        else:
            parts.append(re.escape(needle))
    return re.compile("|".join(parts)) if parts else None


def spans(text: str, needles: Iterable[str]) -> list[tuple[int, int]]:
    """(start, end) in ``text`` of each match of ``needles``, in order, not overlapping."""
    pattern = _pattern(needles)
    if not text or pattern is None:
        return []
    folded, origin = _normalised(text)
    found = []
    for match in pattern.finditer(folded):
        if match.end() > match.start():
            found.append((origin[match.start()], origin[match.end() - 1] + 1))
    return found


def mark(text: str | None, needles: Iterable[str]) -> Markup:
    """``text`` escaped, with every match of ``needles`` wrapped in ``<mark>``."""
    text = text or ""
    pieces, position = [], 0
    for start, end in spans(text, needles):
        if start < position:
            continue
        pieces.append(escape(text[position:start]))
        pieces.append(Markup("<mark>%s</mark>") % text[start:end])
        position = end
    pieces.append(escape(text[position:]))
    return Markup("").join(pieces)


def snippet(text: str | None, needles: Iterable[str], *, before: int = SNIPPET_BEFORE,
            length: int = SNIPPET_LENGTH) -> Markup:
    """A piece of ``text`` about ``length`` characters long around its first match
    (or its beginning), on one line, with "…" where it was cut, matches marked."""
    needles = list(needles)
    text = " ".join((text or "").split())
    found = spans(text, needles)
    start = max(0, found[0][0] - before) if found else 0
    end = max(start + length, found[0][1] if found else 0)
    piece = mark(text[start:end], needles)
    prefix = "…" if start > 0 else ""
    suffix = "…" if end < len(text) else ""
    return Markup("%s%s%s") % (prefix, piece, suffix)
