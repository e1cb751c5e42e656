"""Phone numbers as people type them: full-width digits, spaces, dashes, dots,
brackets, +86 / 0086 prefixes. Stored as digits; shown grouped."""

from __future__ import annotations

import re
import unicodedata

_SEPARATORS = re.compile(r"[\s\-\.\(\)（）－—–/]+")
_MOBILE = re.compile(r"^1[3-9]\d{9}$")


class InvalidPhone(ValueError):
    pass


def normalise(raw: str) -> str:
    """Digits of a Chinese phone number. Raises InvalidPhone when what is left is
    not 5–20 digits. ``+86 138-0013-8000`` → ``13800138000``."""
    text = unicodedata.normalize("NFKC", raw or "").strip()
    text = _SEPARATORS.sub("", text)
    if text.startswith("+"):
        text = text[1:]
        if text.startswith("86"):
            text = text[2:]
    elif text.startswith("0086"):
        text = text[4:]
    elif text.startswith("86") and _MOBILE.match(text[2:]):
        text = text[2:]
    if not text.isdigit() or not 5 <= len(text) <= 20:
        raise InvalidPhone(raw)
    return text


def digits_only(raw: str) -> str:
    """Every digit in ``raw`` (full-width ones too), for matching partial input."""
    return "".join(ch for ch in unicodedata.normalize("NFKC", raw or "") if ch.isdigit())


def is_mobile(digits: str) -> bool:
    return bool(_MOBILE.match(digits))


def display(digits: str) -> str:
    """Grouped for reading: 138 0013 8000; 010 6552 9988; others in fours."""
    if is_mobile(digits):
        return f"{digits[:3]} {digits[3:7]} {digits[7:]}"
    if digits.startswith("0") and len(digits) in (11, 12):
        area = 3 if digits[1] in "12" else 4
        rest = digits[area:]
        return f"{digits[:area]} {rest[:-4]} {rest[-4:]}"
    return " ".join(digits[i : i + 4] for i in range(0, len(digits), 4))
