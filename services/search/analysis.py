"""How text becomes index terms, and what a typed query becomes.

Chinese has no spaces, and people look customers up by one character of a name
(伟 → 张伟), so CJK text is indexed as single characters and pairs of adjacent
characters; a longer query must contain all of its pairs. Latin words, digits and
pinyin are indexed with their prefixes ("edge n-grams"), so what is typed so far
already matches: ``zha`` finds 张伟 through ``zhangwei``. Phone numbers are indexed
with every ending of four or more digits.

The same functions make the terms of documents and of queries, so both always agree.
Queries are built from these terms as query objects, never parsed as query syntax.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
import unicodedata
from collections.abc import Iterable, Iterator
from importlib import resources

from pypinyin import Style, pinyin

from services import phones

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f"
# A run of CJK characters, or a run of other letters and digits.
_RUN = re.compile(rf"([{_CJK}]+)|([^\W_{_CJK}]+)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_ONE_CJK = re.compile(f"[{_CJK}]")
_CJK_ONLY = re.compile(f"[{_CJK}]+")

EDGE_MIN = 2  # a single Latin letter matches too much to be worth a term
EDGE_MAX = 20
PHONE_SUFFIX_MIN = 4
MAX_QUERY_CHARS = 100
MAX_QUERY_WORDS = 8
MAX_PINYIN_READINGS = 32


def _simplified() -> dict[int, str]:
    """Traditional character → simplified (張 → 张, 偉 → 伟, 報 → 报), one for one,
    from OpenCC's table; where it gives several simplified forms, the first."""
    table = {}
    lines = resources.files("opencc").joinpath("dictionary", "TSCharacters.txt").read_text(encoding="utf-8")
    for line in lines.splitlines():
        traditional, _tab, simplified = line.partition("\t")
        simplified = simplified.split(" ")[0]
        if len(traditional) == 1 and len(simplified) == 1 and traditional != simplified \
                and _ONE_CJK.fullmatch(traditional) and _ONE_CJK.fullmatch(simplified):  # runs stay as they are
            table[ord(traditional)] = simplified
    return table


_SIMPLIFIED = _simplified()


def fold(text: str, *, simplify: bool = True) -> str:
    """Full-width to half-width, lower case, traditional characters to simplified:
    the form index terms and queries are both made from. (A CJK character stays one
    CJK character through the last step, so shown text can be marked where it
    matched, and runs stay as they are.)"""
    text = unicodedata.normalize("NFKC", text).casefold()
    return text.translate(_SIMPLIFIED) if simplify else text


def normalise(text: str | None, *, simplify: bool = True) -> str:
    """``fold`` without control characters."""
    return _CONTROL.sub(" ", fold(text or "", simplify=simplify))


def runs(text: str, *, simplify: bool = True) -> Iterator[tuple[bool, str]]:
    """(is_cjk, run) for each run of CJK characters or of other letters/digits."""
    for match in _RUN.finditer(normalise(text, simplify=simplify)):
        cjk, word = match.groups()
        yield (True, cjk) if cjk else (False, word)


def cjk_only(text: str) -> bool:
    """Whether ``text`` is CJK characters and nothing else (one run)."""
    return _CJK_ONLY.fullmatch(text) is not None


def cjk_terms(run: str, *, unigrams: bool) -> Iterator[str]:
    """Pairs of adjacent characters; single characters too when ``unigrams`` (and
    always for a run of one character, which has no pair)."""
    if unigrams or len(run) == 1:
        yield from run
    for i in range(len(run) - 1):
        yield run[i : i + 2]


def edges(word: str) -> Iterator[str]:
    """``zhang`` → zh, zha, zhan, zhang (whole words longer than EDGE_MAX stay whole)."""
    if len(word) < EDGE_MIN:
        return
    for end in range(EDGE_MIN, min(len(word), EDGE_MAX) + 1):
        yield word[:end]
    if len(word) > EDGE_MAX:
        yield word


def lookup_terms(text: str) -> Iterator[str]:
    """Terms of customer fields (name, company, address, email, tags): CJK single
    characters and pairs, prefixes of every other word."""
    for is_cjk, run in runs(text):
        if is_cjk:
            yield from cjk_terms(run, unigrams=True)
        else:
            yield from edges(run)


def note_terms(text: str) -> Iterator[str]:
    """Terms of note text: CJK pairs, and whole other words. Notes are searched by
    words of two characters or more (报价, 合同), so single characters are left out:
    that halves the size of the largest part of the index."""
    for is_cjk, run in runs(text):
        if is_cjk:
            yield from cjk_terms(run, unigrams=False)
        else:
            yield run[:EDGE_MAX]


def pinyin_words(name: str) -> list[str]:
    """Pinyin spellings that should find ``name``: the full pinyin and the initials
    of the whole name and of every ending of it (张伟 → zhangwei, wei, zw, w), for
    each reading of characters with several (单 → shan/dan/chan, 曾 → zeng/ceng).
    Kept for the PINYIN_CACHE most recent names: names repeat (50,000 names made by
    Faker zh_CN hold 15,601 distinct ones), and pypinyin is a third of a document's cost."""
    return list(_pinyin_words(name))


PINYIN_CACHE = 65_536


@functools.lru_cache(maxsize=PINYIN_CACHE)
def _pinyin_words(name: str) -> tuple[str, ...]:
    words: set[str] = set()
    for is_cjk, run in runs(name, simplify=False):  # as written: 乾 is qian, its simplified 干 only gan
        if not is_cjk:
            continue
        readings = pinyin(run, style=Style.NORMAL, heteronym=True, errors="ignore")
        readings = [[r for r in options if r.isascii() and r.isalpha()] for options in readings]
        readings = [options for options in readings if options]
        for combination in _likeliest(readings, MAX_PINYIN_READINGS):
            for start in range(len(combination)):
                words.add("".join(combination[start:]))
                words.add("".join(syllable[0] for syllable in combination[start:]))
    return tuple(sorted(words))


def _likeliest(readings: list[list[str]], limit: int) -> list[tuple[str, ...]]:
    """At most ``limit`` spellings of a name, one reading per character, the most
    usual first: pypinyin lists a character's usual reading first, so spellings
    are taken by the sum of their readings' places in those lists (沈平: shenping,
    then chenping and shenpian, then tanping …), not letting the first character's
    first reading use up the limit."""
    readings = [list(options) for options in readings]
    while math.prod(len(options) for options in readings) > 4096:  # a long name: its rarest readings go
        max(readings, key=len).pop()
    combinations = itertools.product(*(list(enumerate(options)) for options in readings))
    ranked = sorted(combinations, key=lambda combination: sum(place for place, _reading in combination))
    return [tuple(reading for _place, reading in combination) for combination in ranked[:limit]]


def phone_terms(digits_list: Iterable[str]) -> Iterator[str]:
    """Every ending of four or more digits of each number, and every beginning of
    four or more (for a number still being typed)."""
    for digits in digits_list:
        for size in range(PHONE_SUFFIX_MIN, len(digits) + 1):
            yield digits[-size:]
            yield digits[:size]


class QueryWords:
    """What a typed query asks for: its CJK runs, its other words, and the digits
    of a phone number when the whole query is one (``+86 138-0013-8000``)."""

    def __init__(self, text: str | None):
        typed = normalise(text, simplify=False)[: MAX_QUERY_CHARS * 5]
        self.phone = _phone_digits(typed)
        found = list(itertools.islice(runs(typed[:MAX_QUERY_CHARS], simplify=False), MAX_QUERY_WORDS))
        self.typed_cjk = [run for is_cjk, run in found if is_cjk]  # as typed (the database's LIKE scan)
        self.cjk = [fold(run) for run in self.typed_cjk]
        self.words = [run[:EDGE_MAX] for is_cjk, run in found if not is_cjk]
        if self.phone:
            self.typed_cjk, self.cjk, self.words = [], [], []

    def __bool__(self) -> bool:
        return bool(self.phone or self.cjk or any(self._usable(w) for w in self.words))

    @staticmethod
    def _usable(word: str) -> bool:
        # A single letter or digit is in no index term (prefixes start at two).
        return len(word) >= EDGE_MIN

    @property
    def usable_words(self) -> list[str]:
        return [w for w in self.words if self._usable(w)]

    def highlights(self) -> list[str]:
        """The strings to mark in shown text."""
        parts = [self.phone] if self.phone else []
        return [p for p in parts + self.cjk + self.usable_words if p]


def _phone_digits(text: str) -> str:
    """The digits of ``text`` when it is nothing but a phone number typed some way
    (spaces, dashes, brackets, +86/0086) with at least four digits; else ''."""
    return phones.typed_digits(text, PHONE_SUFFIX_MIN)
