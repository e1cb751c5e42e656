"""The office's clock (services/office_time.py): the one place that says which day
it is in the office and converts between office time and stored UTC."""

from datetime import UTC, date, datetime

import pytest
from flask import Flask

from services import office_time


def _office(timezone: str):
    app = Flask(__name__)
    app.config["OFFICE_TIMEZONE"] = timezone
    return app.app_context()


@pytest.mark.parametrize("now, day", [
    (datetime(2026, 3, 1, 16, 30, tzinfo=UTC), date(2026, 3, 2)),  # 00:30 in Shanghai
    (datetime(2026, 3, 1, 15, 59), date(2026, 3, 1)),  # naive means UTC: 23:59 in Shanghai
    (datetime(2026, 3, 1, 16, 0), date(2026, 3, 2)),
])
def test_office_today_in_the_office_time_zone(now, day):
    assert office_time.office_today("Asia/Shanghai", now) == day


def test_office_today_in_another_zone():
    assert office_time.office_today("Europe/London", datetime(2026, 3, 1, 16, 30, tzinfo=UTC)) == date(2026, 3, 1)


def test_office_today_defaults_to_the_apps_office_time_zone():
    late_on_1_march = datetime(2026, 3, 1, 20, 0, tzinfo=UTC)
    with _office("Asia/Shanghai"):
        assert office_time.office_today(now=late_on_1_march) == date(2026, 3, 2)
    with _office("America/New_York"):
        assert office_time.office_today(now=late_on_1_march) == date(2026, 3, 1)
        assert office_time.office_today() == datetime.now(office_time.office_zone()).date()


def test_office_time_and_stored_utc_convert_both_ways():
    with _office("Asia/Shanghai"):
        typed = datetime(2026, 3, 2, 0, 30)  # half past midnight in the office
        stored = office_time.local_to_utc(typed)
        assert stored == datetime(2026, 3, 1, 16, 30) and stored.tzinfo is None
        assert office_time.utc_to_local(stored) == typed
