"""Phone numbers as people type them: full-width digits, spaces, dashes, dots,
brackets, +86 / 0086 prefixes. Stored as digits; shown grouped. The one parser of
typed numbers: the customer forms (:func:`normalise`) and search queries
(:func:`typed_digits`) read them alike."""

from __future__ import annotations

import re
import unicodedata

_SEPARATORS = re.compile(r"[\s\-\.\(\)（）－—–/]+")
_MOBILE = re.compile(r"^1[3-9]\d{9}$")
_TYPED = re.compile(r"^\+?\d+$")


class InvalidPhone(ValueError):
    pass


def _national(raw: str) -> str:
    """``raw`` without separators and without China's country code (+86, 0086, or 86
    before a mobile number); '' unless what is left is an optional + and digits."""
    text = _SEPARATORS.sub("", unicodedata.normalize("NFKC", raw or ""))
    if not _TYPED.match(text):
        return ""
    if text.startswith("+"):
        text = text[1:]
        if text.startswith("86"):
            text = text[2:]
    elif text.startswith("0086") and len(text) > 8:
        text = text[4:]
    elif text.startswith("86") and _MOBILE.match(text[2:]):
        text = text[2:]
    return text if text.isascii() else ""


def normalise(raw: str) -> str:
    """Digits of a Chinese phone number. Raises InvalidPhone when what is left is
    not 5–20 digits. ``+86 138-0013-8000`` → ``13800138000``."""
    text = _national(raw)
    if not 5 <= len(text) <= 20:
        raise InvalidPhone(raw)
    return text


def typed_digits(text: str, minimum: int) -> str:
    """The digits of ``text`` when it is nothing but a phone number, or the end of
    one, typed any way (as :func:`normalise` reads it) with at least ``minimum``
    digits; else ''. For search: ``+86 138-0013`` → ``1380013``."""
    digits = _national(text)
    return digits if len(digits) >= minimum else ""


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
