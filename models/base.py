"""Shared column helpers.

Every timestamp is stored as a naive UTC datetime (SQLite has no time zone type, and
one convention on both databases keeps comparisons simple); templates convert to the
office time zone for display.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current time in UTC, without tzinfo, as stored in the database."""
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)
