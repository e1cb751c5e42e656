"""The sign-in throttle: failures per typed username (the account lock) and per
client address (a wait that grows with each failure), both in the database so every
worker process sees the same counts. Functions here add and flush; the caller
commits (with the audit line of the attempt)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from extensions import db
from models import LoginAddressThrottle, LoginThrottle


@dataclass(frozen=True)
class LoginPolicy:
    """Per account: ``max_failures`` within ``window`` lock the name for ``lockout``.
    Per client address: ``address_free_failures`` cost nothing, then each failure
    makes the address wait before its next attempt, ``address_first_wait`` doubling
    with every further failure up to ``address_max_wait``; an address with no failure
    for ``address_memory`` starts afresh. With the defaults one address cannot fail
    ten times within fifteen minutes, so it cannot lock an account."""

    max_failures: int = 10
    window: timedelta = timedelta(minutes=15)
    lockout: timedelta = timedelta(minutes=15)
    address_free_failures: int = 5
    address_first_wait: timedelta = timedelta(seconds=30)
    address_max_wait: timedelta = timedelta(minutes=15)
    address_memory: timedelta = timedelta(hours=1)

    def address_wait(self, failures: int) -> timedelta:
        """How long an address waits after its ``failures``-th failure in a row."""
        beyond = failures - self.address_free_failures
        if beyond < 0:
            return timedelta(0)
        return min(self.address_first_wait * 2 ** min(beyond, 20), self.address_max_wait)


def policy_from_config(config: Mapping) -> LoginPolicy:
    """The sign-in policy from the app's settings (``LOGIN_*``)."""
    return LoginPolicy(
        max_failures=config["LOGIN_MAX_FAILURES"],
        window=timedelta(minutes=config["LOGIN_FAILURE_WINDOW_MINUTES"]),
        lockout=timedelta(minutes=config["LOGIN_LOCKOUT_MINUTES"]),
    )


def _row_for_update(model, key: str, **defaults):
    """``model``'s row for the primary key ``key``, created if missing and locked for
    this transaction (FOR UPDATE on PostgreSQL; SQLite's BEGIN IMMEDIATE already
    holds the write lock)."""
    column = next(iter(model.__table__.primary_key.columns))
    dialect = db.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    db.session.execute(
        insert(model).values({column.name: key, **defaults}).on_conflict_do_nothing(index_elements=[column.name])
    )
    return db.session.scalars(
        select(model).where(column == key).with_for_update().execution_options(populate_existing=True)
    ).one()


def name_row(key: str, now: datetime) -> LoginThrottle:
    """The locked per-username throttle row for ``key``."""
    return _row_for_update(LoginThrottle, key, failures=0, window_started_at=now)


def name_locked(key: str, now: datetime) -> bool:
    locked_until = db.session.scalar(
        select(LoginThrottle.locked_until).where(LoginThrottle.username == key)
    )
    return locked_until is not None and locked_until > now


def address_blocked_until(ip: str | None, now: datetime) -> datetime | None:
    """When ``ip`` may try again, if it must wait."""
    if not ip:
        return None
    until = db.session.scalar(
        select(LoginAddressThrottle.blocked_until).where(LoginAddressThrottle.address == ip)
    )
    return until if until is not None and until > now else None


def locked_message(policy: LoginPolicy):
    return wait_message(policy.lockout)


def wait_message(wait: timedelta):
    if wait <= timedelta(seconds=60):
        return _l("Too many failed sign-in attempts. Try again in a minute.")
    return _l(
        "Too many failed sign-in attempts. Try again in %(minutes)d minutes.",
        minutes=math.ceil(wait.total_seconds() / 60),
    )


def count_name_failure(key: str, now: datetime, policy: LoginPolicy) -> LoginThrottle:
    """One more failure for the username ``key``: locks it at ``policy.max_failures``
    within the window. Returns the (locked) throttle row."""
    throttle = name_row(key, now)
    if now - throttle.window_started_at > policy.window:
        throttle.failures, throttle.window_started_at = 0, now
    throttle.failures += 1
    if throttle.failures >= policy.max_failures:
        throttle.locked_until = now + policy.lockout
    return throttle


def count_address_failure(ip: str | None, now: datetime, policy: LoginPolicy) -> int:
    """One more failure for the client address ``ip``; sets how long it waits before
    its next attempt. Returns the address's failures in a row (0 without an address)."""
    if not ip:
        return 0
    row = _row_for_update(LoginAddressThrottle, ip, failures=0, last_failure_at=now)
    if now - row.last_failure_at > policy.address_memory:
        row.failures = 0
    row.failures += 1
    row.last_failure_at = now
    wait = policy.address_wait(row.failures)
    row.blocked_until = now + wait if wait else None
    return row.failures


def prune_login_throttle(now: datetime, policy: LoginPolicy = LoginPolicy()) -> int:
    """Delete throttle rows that no longer hold anything back: names whose window
    and lock are over, addresses that have not failed for ``policy.address_memory``
    and do not wait. Typed names and addresses would otherwise pile up for ever.
    Returns how many went; the caller commits."""
    names = db.session.execute(
        LoginThrottle.__table__.delete().where(
            LoginThrottle.window_started_at < now - policy.window,
            (LoginThrottle.locked_until.is_(None)) | (LoginThrottle.locked_until <= now),
        )
    ).rowcount
    addresses = db.session.execute(
        LoginAddressThrottle.__table__.delete().where(
            LoginAddressThrottle.last_failure_at < now - policy.address_memory,
            (LoginAddressThrottle.blocked_until.is_(None)) | (LoginAddressThrottle.blocked_until <= now),
        )
    ).rowcount
    return names + addresses
