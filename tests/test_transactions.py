"""One transaction per request: services flush, the view commits once, and the
search backlog is applied once after that commit; a failure half-way leaves
nothing behind."""

from datetime import date, timedelta

import pytest
from flask_sqlalchemy.session import Session as AppSession
from sqlalchemy import event, func, select

from extensions import db
from models import AuditEvent, Customer, CustomerChange, PoolEvent, SearchBacklog, customer_tags
from services import customers
from services.customers import CustomerData
from services.search import sync
from tests.conftest import make_tag

FORM = {"name": "王小明", "company": "", "mobile": "13800138000", "mobile_2": "", "landline": "", "email": "",
        "address": "", "region": "", "type": "individual", "stage": "potential", "importance": "B",
        "source": "call", "birthday": "", "owner_id": ""}


@pytest.fixture
def tagged(app, login_as):
    """A signed-in manager, two tags, and a customer whose phone the form repeats
    (so saving anyway is audited)."""
    manager = login_as("manager")
    with app.app_context():
        first, second = make_tag("医疗", "行业"), make_tag("教育", "行业")
        customers.create_customer(manager, CustomerData(name="老客户", phones=[("mobile", "13800138000")]))
        db.session.commit()
        return {"manager": manager, "tag_ids": [first.id, second.id]}


@pytest.fixture
def counted(monkeypatch):
    """How many request transactions commit, and how often the backlog is drained."""
    counts = {"commits": 0, "drains": 0}

    def on_commit(session):
        if not session.in_nested_transaction():
            counts["commits"] += 1

    drain = sync.drain

    def counting_drain(*args, **kwargs):
        counts["drains"] += 1
        return drain(*args, **kwargs)

    monkeypatch.setattr(sync, "drain", counting_drain)
    event.listen(AppSession, "after_commit", on_commit)
    yield counts
    event.remove(AppSession, "after_commit", on_commit)


def _count(model_or_table) -> int:
    return db.session.scalar(select(func.count()).select_from(model_or_table))


def test_saving_a_customer_with_tags_is_one_commit_and_one_index_write(app, client, tagged, counted):
    response = client.post("/customers/new", data={**FORM, "tag_ids": tagged["tag_ids"],
                                                   "acknowledge_duplicates": "y"})
    assert response.status_code == 303
    assert counted == {"commits": 1, "drains": 1}
    with app.app_context():
        saved = db.session.scalar(select(Customer).where(Customer.name == "王小明"))
        assert sorted(tag.id for tag in saved.tags) == sorted(tagged["tag_ids"])
        assert _count(SearchBacklog) == 0  # applied by that one drain


def test_editing_a_customer_with_tags_is_one_commit_and_one_index_write(app, client, tagged, counted):
    with app.app_context():
        customer_id = db.session.scalar(select(Customer.id))
    response = client.post(f"/customers/{customer_id}/edit",
                           data={**FORM, "name": "老客户", "email": "a@example.cn", "tag_ids": tagged["tag_ids"]})
    assert response.status_code == 303
    assert counted == {"commits": 1, "drains": 1}


def test_a_failure_half_way_through_a_save_leaves_nothing_behind(app, client, tagged, monkeypatch):
    """The customer is created and flushed (with its pool event, its audit line for
    the duplicate and its backlog row), then tagging fails: none of it is saved."""
    set_tags = customers.set_tags

    def failing_set_tags(*args, **kwargs):
        set_tags(*args, **kwargs)
        db.session.flush()
        raise RuntimeError("the tagging failed")

    monkeypatch.setattr(customers, "set_tags", failing_set_tags)
    with app.app_context():
        before = {model: _count(model) for model in (Customer, PoolEvent, AuditEvent, CustomerChange)}
    with pytest.raises(RuntimeError):
        client.post("/customers/new", data={**FORM, "tag_ids": tagged["tag_ids"], "acknowledge_duplicates": "y"})
    with app.app_context():
        assert db.session.scalar(select(Customer).where(Customer.name == "王小明")) is None
        assert {model: _count(model) for model in before} == before
        assert _count(customer_tags) == 0
        assert _count(SearchBacklog) == 0


def test_a_refused_follow_up_takes_back_the_note_but_not_the_callers_work(app, tagged):
    """A service refusing after its own flush (a follow-up for an inactive owner)
    undoes its part only: the caller's earlier changes in the same transaction stay."""
    from models import CustomerNote, User
    from services import accounts, notes
    from services.errors import DomainError
    from services.notes import NoteData

    with app.app_context():
        manager = db.session.get(User, tagged["manager"].id)
        owner = accounts.create_user("leaving", "correct horse battery staple", "sales")
        db.session.commit()
        customer = customers.create_customer(manager, CustomerData(name="新客户", owner_id=owner.id))
        db.session.commit()
        owner.active = False
        customer.company = "同一事务"  # the caller's own change, not flushed by the service
        with pytest.raises(DomainError):
            notes.create_note(manager, customer, NoteData(kind="call", body="回访",
                                                          follow_up_on=date.today() + timedelta(days=2)))
        db.session.commit()
        db.session.expire_all()
        assert db.session.get(Customer, customer.id).company == "同一事务"
        assert _count(CustomerNote) == 0
