"""Demo data keeps the office's own pool rules: nobody starts at their limit, few
customers are due for recycling, a handful show the warning, and claiming works."""

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from extensions import db
from models import Customer, PoolEvent, Role, User, utcnow
from services import demo, pool, settings
from tests.conftest import TEST_PASSWORD


def _generate(customers=1500, notes=4000, seed=4):
    demo.generate_users(9, TEST_PASSWORD, seed=seed)
    db.session.commit()
    counts = demo.generate_workspace(customers, notes, seed=seed, password=TEST_PASSWORD)
    db.session.commit()
    return counts


def _sales():
    return list(db.session.scalars(select(User).where(User.role == Role.SALES)))


def _owned_total():
    return db.session.scalar(select(func.count()).select_from(Customer).where(Customer.owner_id.is_not(None)))


def test_every_salesperson_has_room_to_claim(app):
    with app.app_context():
        counts = _generate()
        assert counts == {"customers": 1500, "notes": 4000, "tasks": counts["tasks"]}
        limit = settings.get("pool.max_owned")
        for user in _sales():
            assert 0 < pool.owned_count_all(user.id) <= limit - limit // 5
        in_pool = db.session.scalar(select(func.count()).select_from(Customer).where(Customer.owner_id.is_(None)))
        assert in_pool > 1000  # the rest wait in the pool


def test_few_due_tonight_and_a_handful_warned(app):
    with app.app_context():
        _generate()
        owned = _owned_total()
        tonight = pool.due_for_recycling(now=utcnow() + timedelta(days=1))
        assert len(tonight) < 0.05 * owned
        assert pool.due_for_recycling() == []
        warned = sum(len(pool.due_soon(user.id)) for user in _sales())
        assert 1 <= warned <= 3 * len(_sales())


def test_a_salesperson_claims_at_once(app):
    with app.app_context():
        _generate()
        salesperson = _sales()[0]
        before = pool.owned_count_all(salesperson.id)
        pool_ids = db.session.scalars(select(Customer.id).where(Customer.owner_id.is_(None)).limit(3)).all()
        for customer_id in pool_ids:
            pool.claim_customer(salesperson, customer_id)
        db.session.commit()
        assert pool.owned_count_all(salesperson.id) == before + 3
        assert pool.claims_today(salesperson.id, utcnow()) == 3  # no demo claim used up the day


def test_pool_history_and_reasons_are_generated(app):
    with app.app_context():
        _generate(customers=600, notes=1200)
        kinds = set(db.session.scalars(select(PoolEvent.kind).distinct()))
        assert {"claim", "create_in_pool", "recycle"} <= kinds
        reasons = set(db.session.scalars(select(Customer.pool_reason).where(Customer.owner_id.is_(None)).distinct()))
        assert reasons == {"new", "recycled"}


@pytest.mark.parametrize("limit", [10, 3])
def test_a_lower_limit_is_kept(app, limit):
    with app.app_context():
        demo.generate_users(9, TEST_PASSWORD, seed=2)
        manager = db.session.scalar(select(User).where(User.role == Role.MANAGER))
        settings.update(manager, {"pool.max_owned": limit})
        db.session.commit()
        demo.generate_workspace(400, 800, seed=2, password=TEST_PASSWORD)
        db.session.commit()
        for user in _sales():
            assert pool.owned_count_all(user.id) <= limit - max(2, limit // 5)
