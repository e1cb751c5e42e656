"""Never contacted is the stalest, on SQLite and PostgreSQL alike (their default
places for NULLs are opposite): first when sorting by how long since the last
contact, last when sorting by the latest contact, in the customer list and the pool."""

from __future__ import annotations

from datetime import datetime

import pytest

from extensions import db
from services import customers, pool_list
from services.customers import CustomerFilter
from services.pool_list import PoolFilter
from tests.factories import make_customer


@pytest.fixture
def contacted(app, staff):
    """Four pool customers: two never contacted, two contacted (one long ago)."""
    admin = staff["admin"]
    made = {name: make_customer(admin, name) for name in ("从未甲", "去年乙", "昨天丙", "从未丁")}
    made["去年乙"].last_contact_at = datetime(2025, 12, 1, 9, 0)
    made["昨天丙"].last_contact_at = datetime(2026, 12, 1, 9, 0)
    db.session.commit()
    return made


def _names(page) -> list[str]:
    return [c.name for c in page.items]


@pytest.mark.parametrize("role", ["manager", "sales"])
def test_the_customer_list_sorts_never_contacted_as_the_stalest(app, staff, contacted, role):
    user = staff[role]
    stale = _names(customers.list_customers(user, CustomerFilter(sort="stale")))
    latest = _names(customers.list_customers(user, CustomerFilter(sort="last_contact")))
    assert stale[2:] == ["去年乙", "昨天丙"] and set(stale[:2]) == {"从未甲", "从未丁"}
    assert latest[:2] == ["昨天丙", "去年乙"] and set(latest[2:]) == {"从未甲", "从未丁"}


def test_the_pool_sorts_never_contacted_as_the_stalest(app, staff, contacted):
    user = staff["sales"]
    stale = _names(pool_list.list_pool(user, PoolFilter(sort="stale")))
    recent = _names(pool_list.list_pool(user, PoolFilter(sort="recent")))
    assert stale[2:] == ["去年乙", "昨天丙"] and set(stale[:2]) == {"从未甲", "从未丁"}
    assert recent[:2] == ["昨天丙", "去年乙"] and set(recent[2:]) == {"从未甲", "从未丁"}
