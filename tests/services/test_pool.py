"""Pool rules (P2–P5, P8) at the service level, with every refusal."""

import random
from contextlib import contextmanager
from dataclasses import astuple
from datetime import timedelta

import pytest
from sqlalchemy import event, select

from extensions import db
from models import Customer, PoolEvent, utcnow
from services import accounts, customers, notes, pool, settings
from services.customers import CustomerData
from services.errors import DomainError
from services.notes import NoteData
from services.pool import PoolRefusal
from tests.conftest import TEST_PASSWORD


@pytest.fixture
def office(app):
    with app.app_context():
        people = {name: accounts.create_user(name, TEST_PASSWORD, role) for name, role in
                  [("boss", "manager"), ("admin1", "admin"), ("wang", "sales"), ("li", "sales"),
                   ("desk", "frontdesk")]}
        yield people


def _pool_customer(actor, name="公海客户"):
    return customers.create_customer(actor, CustomerData(name=name), acknowledge_duplicates=True)


def _kinds():
    return [e.kind for e in db.session.scalars(select(PoolEvent).order_by(PoolEvent.id))]


def test_created_in_pool_then_claimed(office):
    customer = _pool_customer(office["desk"])
    claimed = pool.claim_customer(office["wang"], customer.id)
    assert claimed.owner_id == office["wang"].id and claimed.owned_since is not None
    assert _kinds() == ["create_in_pool", "claim"]


def test_second_claim_names_the_winner(office):
    customer = _pool_customer(office["desk"])
    pool.claim_customer(office["wang"], customer.id)
    with pytest.raises(PoolRefusal) as refused:
        pool.claim_customer(office["li"], customer.id)
    assert refused.value.code == "already_claimed" and "wang" in str(refused.value.message)


def test_a_claim_names_the_winner_only_for_a_few_seconds(office):
    """Past the race, a refused claim says nothing of the owner (else walking ids with
    claims would map customers to owners)."""
    customer = _pool_customer(office["desk"])
    pool.claim_customer(office["wang"], customer.id)
    later = utcnow() + timedelta(seconds=pool.CLAIM_RACE_SECONDS + 1)
    with pytest.raises(PoolRefusal) as refused:
        pool.claim_customer(office["li"], customer.id, now=later)
    assert refused.value.code == "not_in_pool" and "wang" not in str(refused.value.message)
    assert pool.recent_claimer(customer.id).id == office["wang"].id
    assert pool.recent_claimer(customer.id, later) is None


def test_an_owned_customer_that_was_never_claimed_names_nobody(office):
    owned = customers.create_customer(office["wang"], CustomerData(name="王的客户"))
    assert pool.recent_claimer(owned.id) is None
    with pytest.raises(PoolRefusal) as refused:
        pool.claim_customer(office["li"], owned.id)
    assert refused.value.code == "not_in_pool"


def test_owned_limit_and_per_user_override(office):
    settings.update(office["admin1"], {"pool.max_owned": 2})
    ids = [_pool_customer(office["desk"], f"客户{n}").id for n in range(3)]
    pool.claim_customer(office["wang"], ids[0])
    pool.claim_customer(office["wang"], ids[1])
    with pytest.raises(PoolRefusal) as refused:
        pool.claim_customer(office["wang"], ids[2])
    assert refused.value.code == "limit"
    accounts.update_user(office["admin1"], office["wang"], display_name="wang", role="sales",
                         language=None, claim_limit=3)
    assert pool.claim_customer(office["wang"], ids[2]).owner_id == office["wang"].id


def test_deals_do_not_count_unless_set(office):
    settings.update(office["admin1"], {"pool.max_owned": 1})
    first, second = _pool_customer(office["desk"], "甲"), _pool_customer(office["desk"], "乙")
    pool.claim_customer(office["wang"], first.id)
    first.stage = "deal"
    db.session.commit()
    pool.claim_customer(office["wang"], second.id)  # the deal does not count
    settings.update(office["admin1"], {"pool.count_deals": True})
    third = _pool_customer(office["desk"], "丙")
    with pytest.raises(PoolRefusal):
        pool.claim_customer(office["wang"], third.id)


def test_daily_claim_limit(office):
    settings.update(office["admin1"], {"pool.max_daily_claims": 2})
    ids = [_pool_customer(office["desk"], f"客户{n}").id for n in range(3)]
    now = utcnow()
    pool.claim_customer(office["wang"], ids[0], now=now)
    pool.claim_customer(office["wang"], ids[1], now=now)
    with pytest.raises(PoolRefusal) as refused:
        pool.claim_customer(office["wang"], ids[2], now=now)
    assert refused.value.code == "daily_limit"
    assert pool.claim_customer(office["wang"], ids[2], now=now + timedelta(days=1)).owner_id


def test_release_needs_a_reason_and_starts_the_reclaim_lock(office):
    customer = _pool_customer(office["desk"])
    pool.claim_customer(office["wang"], customer.id)
    with pytest.raises(DomainError) as refused:
        pool.release_to_pool(office["wang"], customer, "")
    assert refused.value.field == "reason"
    with pytest.raises(DomainError) as refused:
        pool.release_to_pool(office["wang"], customer, "other", "  ")
    assert refused.value.field == "reason_text"
    now = utcnow()
    pool.release_to_pool(office["wang"], customer, "unreachable", now=now)
    assert customer.owner_id is None and customer.pool_reason == "released"
    with pytest.raises(PoolRefusal) as refused:
        pool.claim_customer(office["wang"], customer.id, now=now + timedelta(days=3))
    assert refused.value.code == "reclaim_lock" and "4" in str(refused.value.message)
    assert pool.claim_customer(office["wang"], customer.id, now=now + timedelta(days=7, minutes=1)).owner_id
    with pytest.raises(PoolRefusal):
        pool.release_to_pool(office["wang"], _pool_customer(office["desk"], "另一个"), "no_need")


def test_assign_respects_the_limit_unless_overridden(office):
    settings.update(office["admin1"], {"pool.max_owned": 1})
    ids = [_pool_customer(office["desk"], f"客户{n}").id for n in range(2)]
    with pytest.raises(PoolRefusal):
        pool.assign_customers(office["boss"], ids, office["wang"].id)
    assert pool.assign_customers(office["boss"], ids, office["wang"].id, override_limit=True) == ids
    event = db.session.scalars(select(PoolEvent).where(PoolEvent.kind == "assign")).first()
    assert event.details["override_limit"] is True
    with pytest.raises(DomainError):
        pool.assign_customers(office["boss"], ids, office["desk"].id)


def _age(customer, days):
    customer.owned_since = utcnow() - timedelta(days=days)
    db.session.commit()


def test_recycle_clock_counts_from_the_later_of_owning_and_effective_note(office):
    customer = customers.create_customer(office["wang"], CustomerData(name="张伟"))
    _age(customer, 40)
    clock = pool.recycle_clock(customer)
    assert clock.state == "counting" and clock.days_left <= -9
    note = notes.create_note(office["wang"], customer, NoteData(kind="visit", body="到访")).note
    clock = pool.recycle_clock(customer)
    assert 29 <= clock.days_left <= 30 and clock.reset_by_note_id == note.id
    settings.update(office["admin1"], {"pool.effective_kinds": ["visit"]})
    notes.create_note(office["wang"], customer, NoteData(kind="other", body="没接"))
    assert pool.recycle_clock(customer).reset_by_note_id == note.id  # "other" does not count



def test_recycle_clock_reads_the_latest_effective_note_once(office):
    """The customer page's clock: one query for the counting clock (the note's time and
    id together), none for one that does not count; the same answers as the clocks
    the lists compute."""
    from tests.conftest import statements_run

    customer = customers.create_customer(office["wang"], CustomerData(name="周杰"))
    _age(customer, 40)
    notes.create_note(office["wang"], customer, NoteData(kind="visit", body="到访"))
    newest = notes.create_note(office["wang"], customer, NoteData(kind="call", body="回访")).note
    db.session.commit()
    with statements_run(db.engine) as statements:
        clock = pool.recycle_clock(customer)
    assert len([s for s in statements if "customer_notes" in s]) == 1
    assert clock.reset_by_note_id == newest.id
    assert (clock.state, clock.due_at, clock.days_left, clock.started_at) == astuple(
        pool.recycle_clocks([customer], now=utcnow())[customer.id])[:4]
    customer.recycle_locked = True
    db.session.commit()
    with statements_run(db.engine) as statements:
        assert pool.recycle_clock(customer).state == "locked"
    assert not [s for s in statements if "customer_notes" in s]

def test_sweep_recycles_due_customers_once_and_spares_protected_and_locked(office):
    due = customers.create_customer(office["wang"], CustomerData(name="该回收"))
    deal = customers.create_customer(office["wang"], CustomerData(name="成交", stage="deal"))
    locked = customers.create_customer(office["wang"], CustomerData(name="锁定"))
    fresh = customers.create_customer(office["wang"], CustomerData(name="新的"))
    for customer in (due, deal, locked):
        _age(customer, 31)
    pool.set_recycle_lock(office["wang"], locked, True)
    preview = pool.recycle_due_customers(dry_run=True)
    assert [c.name for c, _ in preview] == ["该回收"]
    assert db.session.get(Customer, due.id).owner_id == office["wang"].id  # dry run changed nothing
    recycled = pool.recycle_due_customers()
    db.session.commit()  # as the command does
    assert [c.name for c, _ in recycled] == ["该回收"]
    assert pool.recycle_due_customers() == []
    back = db.session.get(Customer, due.id)
    assert back.owner_id is None and back.times_recycled == 1 and back.pool_reason == "recycled"
    assert fresh.owner_id == office["wang"].id
    assert _kinds().count("recycle") == 1
    assert not pool.sweep_overdue()
    # Lost to recycling: the re-claim lock applies.
    with pytest.raises(PoolRefusal) as refused:
        pool.claim_customer(office["wang"], due.id)
    assert refused.value.code == "reclaim_lock"


def test_lock_limit(office):
    settings.update(office["admin1"], {"pool.max_locked": 1})
    first = customers.create_customer(office["wang"], CustomerData(name="一"))
    second = customers.create_customer(office["wang"], CustomerData(name="二"))
    pool.set_recycle_lock(office["wang"], first, True)
    with pytest.raises(PoolRefusal) as refused:
        pool.set_recycle_lock(office["wang"], second, True)
    assert refused.value.code == "locked_limit"


def test_due_soon_for_the_dashboard(office):
    soon = customers.create_customer(office["wang"], CustomerData(name="快到期"))
    later = customers.create_customer(office["wang"], CustomerData(name="还早"))
    _age(soon, 27)
    _age(later, 10)
    assert [c.name for c, _ in pool.due_soon(office["wang"].id)] == ["快到期"]


@pytest.mark.parametrize("effective", [["call", "visit"], []])
def test_the_due_lists_are_the_clocks_that_end_in_time_and_read_only_those(office, effective):
    """The home page's list (ending within the warning days) and the sweep's (ended)
    are exactly the owned customers whose clock, as recycle_clocks computes it for
    every one of them, ends in time: started by owning or by the latest effective
    note (its contact time, else its writing); notes of other kinds and deleted ones
    reset nothing. Only those customers' rows are read."""
    settings.update(office["admin1"], {"pool.effective_kinds": effective})
    wang, rng, now = office["wang"], random.Random(11), utcnow()
    made = []
    for n in range(40):
        customer = customers.create_customer(wang, CustomerData(name=f"回收测试{n}"), acknowledge_duplicates=True)
        for _ in range(rng.randint(0, 3)):
            note = notes.create_note(wang, customer, NoteData(kind=rng.choice(["call", "visit", "other"]),
                                                              body="跟进")).note
            note.created_at = now - timedelta(days=rng.randint(0, 45), hours=rng.randint(0, 23))
            note.contacted_at = note.created_at - timedelta(days=rng.randint(0, 5)) if rng.random() < 0.4 else None
            note.deleted_at = now if rng.random() < 0.2 else None
        customer.owned_since = now - timedelta(days=rng.randint(0, 45), hours=rng.randint(0, 23))
        made.append(customer)
    db.session.commit()
    clocks = pool.recycle_clocks(made, now=now)
    warn = settings.get("pool.warn_days")
    soon = sorted(c.id for c in made if clocks[c.id].state == "counting" and clocks[c.id].days_left <= warn)
    due = sorted(c.id for c in made if clocks[c.id].state == "counting" and clocks[c.id].due_at <= now)
    assert due and set(due) < set(soon) < {c.id for c in made}  # the draw covers each case
    db.session.expunge_all()
    with _customers_read() as read:
        listed = pool.due_soon(wang.id, now=now)
    assert sorted(c.id for c, _ in listed) == soon
    assert sorted(read) == soon  # the others' rows were not read
    assert all(clock == clocks[c.id] for c, clock in listed)
    db.session.expunge_all()
    with _customers_read() as read:
        listed = pool.due_for_recycling(now=now)
    assert sorted(c.id for c, _ in listed) == due
    assert sorted(read) == due


@contextmanager
def _customers_read():
    """The ids of the Customer rows the session loads meanwhile."""
    read: list[int] = []

    def loaded(customer, _context):
        read.append(customer.id)

    event.listen(Customer, "load", loaded)
    try:
        yield read
    finally:
        event.remove(Customer, "load", loaded)


def test_sweep_overdue_banner(office):
    from services import nightly
    from tests.nightly_helpers import make_overdue

    assert not pool.sweep_overdue()  # a fresh install has had no night yet
    make_overdue("pool_sweep")
    assert pool.sweep_overdue()
    assert nightly.run("pool_sweep").ok
    assert not pool.sweep_overdue()
    assert pool.sweep_overdue(now=utcnow() + timedelta(hours=27))  # the next night passed too
    settings.update(office["admin1"], {"pool.recycle_enabled": False})
    assert not pool.sweep_overdue(now=utcnow() + timedelta(hours=27))


@pytest.mark.parametrize("key, value", [
    ("pool.max_owned", -1), ("pool.max_owned", "50"), ("pool.recycle_days", 0),
    ("pool.effective_kinds", ["phone"]), ("pool.recycle_enabled", "yes"),
])
def test_settings_validation(office, key, value):
    with pytest.raises(DomainError) as refused:
        settings.update(office["admin1"], {key: value})
    assert refused.value.field == key


def test_claim_standing_and_refusals_count_what_the_user_has(office):
    ids = [_pool_customer(office["desk"], f"客户{n}").id for n in range(3)]
    pool.assign_customers(office["boss"], ids, office["wang"].id)
    settings.update(office["admin1"], {"pool.max_owned": 2})
    standing = pool.claim_standing(office["wang"])
    assert (standing.owned, standing.limit, standing.claimed_today, standing.daily_limit) == (3, 2, 0, 20)
    with pytest.raises(PoolRefusal) as refused:
        pool.claim_customer(office["wang"], _pool_customer(office["desk"], "再一个").id)
    assert refused.value.code == "limit" and "3" in str(refused.value.message) and "2" in str(refused.value.message)


def test_undo_release_restores_owner_clock_and_lock_within_the_window(office):
    customer = _pool_customer(office["desk"])
    start = utcnow() - timedelta(days=10)
    pool.claim_customer(office["wang"], customer.id, now=start)
    pool.set_recycle_lock(office["wang"], customer, True)
    now = utcnow()
    pool.release_to_pool(office["wang"], customer, "no_need", now=now)
    with pytest.raises(PoolRefusal) as refused:
        pool.undo_release(office["li"], customer, now=now)
    assert refused.value.code == "not_releaser"
    with pytest.raises(PoolRefusal) as refused:
        pool.undo_release(office["wang"], customer, now=now + timedelta(seconds=pool.RELEASE_UNDO_SECONDS + 1))
    assert refused.value.code == "too_late" and customer.owner_id is None
    pool.undo_release(office["wang"], customer, now=now + timedelta(seconds=5))
    assert customer.owner_id == office["wang"].id and customer.owned_since == start
    assert customer.recycle_locked is True and customer.pool_reason == ""
    assert _kinds()[-2:] == ["release", "release_undone"]
    with pytest.raises(PoolRefusal) as refused:  # once only
        pool.undo_release(office["wang"], customer, now=now + timedelta(seconds=6))
    assert refused.value.code == "changed"
    # The undone release locks nothing: lost to a colleague and back in the pool, wang may claim it.
    pool.assign_customers(office["boss"], [customer.id], office["li"].id, now=now + timedelta(minutes=1))
    db.session.refresh(customer)
    pool.release_to_pool(office["li"], customer, "no_need", now=now + timedelta(minutes=2))
    claimed = pool.claim_customer(office["wang"], customer.id, now=now + timedelta(minutes=3))
    assert claimed.owner_id == office["wang"].id


def test_undo_release_refused_after_a_claim_or_over_the_owners_limit(office):
    claimed = _pool_customer(office["desk"], "被领走")
    pool.claim_customer(office["wang"], claimed.id)
    pool.release_to_pool(office["wang"], claimed, "no_need")
    pool.claim_customer(office["li"], claimed.id)
    with pytest.raises(PoolRefusal) as refused:
        pool.undo_release(office["wang"], claimed, now=utcnow())
    assert refused.value.code == "changed" and claimed.owner_id == office["li"].id
    mine = customers.create_customer(office["wang"], CustomerData(name="王的客户"))
    pool.release_to_pool(office["boss"], mine, "other_team")  # a manager releases it
    settings.update(office["admin1"], {"pool.max_owned": 0})
    with pytest.raises(PoolRefusal) as refused:
        pool.undo_release(office["boss"], mine)
    assert refused.value.code == "limit"
    settings.update(office["admin1"], {"pool.max_owned": 50})
    pool.undo_release(office["boss"], mine)
    assert mine.owner_id == office["wang"].id
