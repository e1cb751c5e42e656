"""The office's clock: its time zone (OFFICE_TIMEZONE) and the date there. Times are
stored as naive UTC; days (follow-ups due, a customer viewed today, the pool's
daily counts) are the office's, not UTC's."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from flask import current_app


def office_zone(timezone: str | None = None) -> ZoneInfo:
    """``timezone``, by default the app's OFFICE_TIMEZONE (needs an app context)."""
    return ZoneInfo(timezone or current_app.config["OFFICE_TIMEZONE"])


def office_today(timezone: str | None = None, now: datetime | None = None) -> date:
    """The date in the office (or in ``timezone``) at ``now``: an aware datetime, or a
    naive one in UTC as stored in the database; by default the current time."""
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return now.astimezone(office_zone(timezone)).date()


def local_to_utc(value: datetime) -> datetime:
    """A naive office-time datetime (as typed in a form) as naive UTC."""
    return value.replace(tzinfo=office_zone()).astimezone(UTC).replace(tzinfo=None)


def utc_to_local(value: datetime, zone: ZoneInfo | None = None) -> datetime:
    """A stored naive UTC datetime as naive office time (to prefill a form); ``zone``
    (office_zone()) given by a caller converting many."""
    return value.replace(tzinfo=UTC).astimezone(zone or office_zone()).replace(tzinfo=None)
