"""Password hashing (Argon2id at OWASP's parameters) and the rules for new passwords."""

from __future__ import annotations

import gzip
from functools import cache
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from flask_babel import lazy_gettext as _l

MIN_LENGTH = 8
MAX_LENGTH = 128

# OWASP Password Storage Cheat Sheet: Argon2id, 19 MiB memory, 2 iterations, 1 lane.
PRODUCTION = {"time_cost": 2, "memory_cost": 19 * 1024, "parallelism": 1}
# Under TESTING: the same algorithm at a fortieth of the work. The suite hashes
# hundreds of passwords; tests/services/test_passwords.py checks PRODUCTION's.
CHEAP = {"time_cost": 1, "memory_cost": 1024, "parallelism": 1}

_COMMON_PASSWORDS = Path(__file__).parent / "data" / "common-passwords.txt.gz"


class Hashing:
    """A hasher at given Argon2 parameters, and a hash it made of no one's
    password: verified against when the username does not exist, so both cases
    take as long."""

    def __init__(self, parameters: dict):
        self.hasher = PasswordHasher(**parameters)
        self.dummy_hash = self.hasher.hash("deskbook-timing-equaliser")


def init_app(app) -> None:
    """Choose the app's Argon2 parameters, once: PRODUCTION, or CHEAP under TESTING."""
    app.extensions["passwords"] = Hashing(CHEAP if app.config["TESTING"] else PRODUCTION)


def _hashing() -> Hashing:
    return current_app.extensions["passwords"]


def hash_password(password: str) -> str:
    return _hashing().hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """True when ``password`` matches ``stored_hash``. With no hash, verifies against
    a dummy so the time taken does not tell whether an account exists."""
    hashing = _hashing()
    try:
        return hashing.hasher.verify(stored_hash or hashing.dummy_hash, password) and bool(stored_hash)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return _hashing().hasher.check_needs_rehash(stored_hash)


@cache
def _common_passwords() -> frozenset[str]:
    with gzip.open(_COMMON_PASSWORDS, "rt", encoding="utf-8") as lines:
        return frozenset(line.strip() for line in lines if line.strip())


def password_problem(password: str, username: str = "") -> str | None:
    """Why ``password`` may not be used, or None. Length 8–128, not one of the most
    common passwords, not the username; no composition rules (NIST SP 800-63B)."""
    if len(password) < MIN_LENGTH:
        return _l("Use at least %(n)d characters.", n=MIN_LENGTH)
    if len(password) > MAX_LENGTH:
        return _l("Use at most %(n)d characters.", n=MAX_LENGTH)
    lowered = password.lower()
    if lowered in _common_passwords():
        return _l("This password is too common. Choose another one.")
    if username and lowered == username.lower():
        return _l("The password may not be the same as the username.")
    return None
