"""The pool under real concurrency: threads with their own connections against a real
database file (SQLite) or PostgreSQL. Bounded: every wait has a timeout."""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from extensions import db
from models import Customer, PoolEvent, utcnow
from services import accounts, customers, pool, settings
from services.customers import CustomerData
from services.pool import PoolRefusal
from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.concurrency


def _run_parallel(app, jobs, workers):
    """Run ``jobs`` (callables) at once, each in its own app context; returns their
    results or the exceptions they raised."""
    barrier = threading.Barrier(min(workers, len(jobs)))

    def run(job):
        with app.app_context():
            try:
                barrier.wait(timeout=30)
                result = job()
                db.session.commit()  # as the view or command does
                return result
            except PoolRefusal as refused:
                return refused
            finally:
                db.session.remove()

    with ThreadPoolExecutor(max_workers=workers) as executor:
        return list(executor.map(run, jobs, timeout=120))


def test_thirty_claimers_twenty_customers_one_winner_each(app):
    with app.app_context():
        desk = accounts.create_user("desk", TEST_PASSWORD, "frontdesk")
        ids = [customers.create_customer(desk, CustomerData(name=f"客户{n}")).id for n in range(20)]
        claimers = [accounts.create_user(f"sales{n}", TEST_PASSWORD, "sales").id for n in range(30)]
        settings.update(accounts.create_user("root", TEST_PASSWORD, "admin"), {"pool.max_daily_claims": 100})
        db.session.commit()

    def claim_all(user_id):
        def job():
            user = db.session.get(type(accounts.get_by_username("desk")), user_id)
            won = []
            for customer_id in ids:
                try:
                    pool.claim_customer(user, customer_id)
                    db.session.commit()
                    won.append(customer_id)
                except PoolRefusal as refused:
                    assert refused.code == "already_claimed", refused.code
            return won
        return job

    results = _run_parallel(app, [claim_all(uid) for uid in claimers], workers=30)
    winners = [cid for won in results for cid in won]
    assert sorted(winners) == sorted(ids)  # every customer exactly once
    with app.app_context():
        owners = dict(db.session.execute(select(Customer.id, Customer.owner_id)).all())
        claims = db.session.scalar(select(func.count()).select_from(PoolEvent).where(PoolEvent.kind == "claim"))
    assert claims == 20 and all(owners[cid] in claimers for cid in ids)


def test_one_user_parallel_claims_never_pass_the_limit(app):
    with app.app_context():
        admin = accounts.create_user("root", TEST_PASSWORD, "admin")
        settings.update(admin, {"pool.max_owned": 3, "pool.max_daily_claims": 10000})
        accounts.create_user("desk", TEST_PASSWORD, "frontdesk")
        user_id = accounts.create_user("eager", TEST_PASSWORD, "sales").id
        db.session.commit()
    for round_number in range(20):
        with app.app_context():
            db.session.execute(Customer.__table__.update().where(Customer.owner_id == user_id)
                               .values(archived_at=utcnow()))
            db.session.commit()
            desk = accounts.get_by_username("desk")
            ids = [customers.create_customer(desk, CustomerData(name=f"第{round_number}轮{n}")).id for n in range(20)]
            db.session.commit()

        def claim(customer_id):
            def job():
                from models import User
                return pool.claim_customer(db.session.get(User, user_id), customer_id).id
            return job

        results = _run_parallel(app, [claim(cid) for cid in ids], workers=20)
        won = [r for r in results if isinstance(r, int)]
        assert len(won) == 3, (round_number, results)
        assert all(r.code == "limit" for r in results if isinstance(r, PoolRefusal))


def test_two_sweeps_at_once_recycle_each_customer_once(app):
    with app.app_context():
        owner = accounts.create_user("owner", TEST_PASSWORD, "sales")
        db.session.commit()
        for n in range(40):
            customer = customers.create_customer(owner, CustomerData(name=f"久未跟进{n}"))
            db.session.commit()
            customer.owned_since = utcnow() - timedelta(days=45)
        db.session.commit()

    results = _run_parallel(app, [lambda: len(pool.recycle_due_customers()) for _ in range(2)], workers=2)
    assert sum(results) == 40
    with app.app_context():
        events = db.session.execute(select(PoolEvent.customer_id, func.count()).where(PoolEvent.kind == "recycle")
                                    .group_by(PoolEvent.customer_id)).all()
        assert len(events) == 40 and all(count == 1 for _, count in events)
        assert db.session.scalar(select(func.sum(Customer.times_recycled))) == 40


def test_thirty_browsers_claim_over_http_without_a_server_error(app):
    """The same race through the whole stack: each thread is a signed-in browser
    (its own session cookie) posting claims; no request may end in a 5xx."""
    from tests.conftest import login

    with app.app_context():
        desk = accounts.create_user("desk", TEST_PASSWORD, "frontdesk")
        ids = [customers.create_customer(desk, CustomerData(name=f"客户{n}")).id for n in range(20)]
        names = [accounts.create_user(f"web{n}", TEST_PASSWORD, "sales").username for n in range(30)]
        db.session.commit()
    browsers = []
    for name in names:
        client = app.test_client()
        assert login(client, name).status_code == 303
        browsers.append(client)
    barrier = threading.Barrier(len(browsers))

    def claim_all(client):
        barrier.wait(timeout=30)
        return [client.post(f"/pool/{cid}/claim", headers={"HX-Request": "true"},
                            data={"from": "list"}).status_code for cid in ids]

    with ThreadPoolExecutor(max_workers=len(browsers)) as executor:
        statuses = [s for result in executor.map(claim_all, browsers, timeout=180) for s in result]
    assert all(status < 500 for status in statuses)
    with app.app_context():
        owners = db.session.execute(select(Customer.owner_id).where(Customer.id.in_(ids))).scalars().all()
        claims = db.session.scalar(select(func.count()).select_from(PoolEvent).where(PoolEvent.kind == "claim"))
    assert None not in owners and claims == 20


@pytest.mark.parametrize("rule", ["limit", "daily_limit"])
def test_one_browser_claiming_in_parallel_never_passes_a_limit(app, rule):
    """The claim view reads first and writes in a transaction of its own
    (extensions.write_transaction): twenty requests of one salesperson at once, for
    twenty pool customers, still win exactly as many as the limit allows; the rest
    are refused for that limit, and no request ends in a server error."""
    from tests.conftest import login

    with app.app_context():
        admin = accounts.create_user("root", TEST_PASSWORD, "admin")
        limits = {"pool.max_owned": 3, "pool.max_daily_claims": 10000} if rule == "limit" \
            else {"pool.max_owned": 10000, "pool.max_daily_claims": 3}
        settings.update(admin, limits)
        desk = accounts.create_user("desk", TEST_PASSWORD, "frontdesk")
        ids = [customers.create_customer(desk, CustomerData(name=f"客户{n}")).id for n in range(20)]
        user_id = accounts.create_user("eager", TEST_PASSWORD, "sales", language="en").id
        db.session.commit()
    browsers = []
    for _ in ids:
        client = app.test_client()
        assert login(client, "eager").status_code == 303
        browsers.append(client)
    barrier = threading.Barrier(len(browsers))

    def claim(pair):
        client, customer_id = pair
        barrier.wait(timeout=30)
        response = client.post(f"/pool/{customer_id}/claim", headers={"HX-Request": "true"}, data={"from": "list"})
        return response.status_code, response.data.decode()

    with ThreadPoolExecutor(max_workers=len(browsers)) as executor:
        answers = list(executor.map(claim, zip(browsers, ids), timeout=180))
    words = "the limit is 3" if rule == "limit" else "the most per day is 3"
    assert sorted(status for status, _ in answers) == [200] * 3 + [422] * 17
    assert all(words in text for status, text in answers if status == 422)
    with app.app_context():
        owned = db.session.scalar(select(func.count()).select_from(Customer).where(Customer.owner_id == user_id))
        claims = db.session.scalar(select(func.count()).select_from(PoolEvent).where(
            PoolEvent.kind == "claim", PoolEvent.actor_id == user_id))
    assert owned == claims == 3
