from datetime import date, timedelta

import pytest
from sqlalchemy import select

from extensions import db
from models import AuditEvent, CustomerNote, FollowUpTask, PoolEvent, Tag, TagGroup, utcnow
from services import accounts, customers, merge, notes, tasks
from services.customers import CustomerData
from services.errors import DomainError
from services.notes import NoteData
from tests.conftest import TEST_PASSWORD


@pytest.fixture
def pair(app):
    with app.app_context():
        manager = accounts.create_user("boss", TEST_PASSWORD, "manager")
        sales = accounts.create_user("sales.a", TEST_PASSWORD, "sales")
        group = TagGroup(name="行业")
        db.session.add(group)
        db.session.flush()
        shared, extra = Tag(group_id=group.id, name="制造"), Tag(group_id=group.id, name="出口")
        db.session.add_all([shared, extra])
        db.session.commit()
        keep = customers.create_customer(sales, CustomerData(name="张伟", phones=[("mobile", "13800138000")]))
        drop = customers.create_customer(sales, CustomerData(name="张伟", phones=[
            ("mobile", "13800138000"), ("landline", "01065529988")]), acknowledge_duplicates=True)
        customers.set_tags(sales, keep, [shared.id])
        customers.set_tags(sales, drop, [shared.id, extra.id])
        notes.create_note(sales, keep, NoteData(kind="call", body="保留的记录"))
        old = notes.create_note(sales, drop, NoteData(kind="visit", body="被合并的记录")).note
        old.created_at = utcnow() + timedelta(minutes=1)
        db.session.commit()
        tasks.create_task(sales, drop, due_date=date.today() + timedelta(days=2), title="回访")
        customers.update_customer(sales, drop, CustomerData(name="张伟", stage="intent", phones=[
            ("mobile", "13800138000"), ("landline", "01065529988")]), acknowledge_duplicates=True)
        db.session.commit()
        yield {"manager": manager, "keep": keep, "drop": drop, "shared": shared, "extra": extra}


def test_merge_moves_everything_and_archives(pair):
    keep, drop = pair["keep"], pair["drop"]
    merge.merge_customers(pair["manager"], keep, drop)
    assert {n.body for n in db.session.scalars(select(CustomerNote).where(CustomerNote.customer_id == keep.id))} == {
        "保留的记录", "被合并的记录"}
    assert db.session.scalars(select(FollowUpTask)).one().customer_id == keep.id
    assert {t.name for t in keep.tags} == {"制造", "出口"}
    assert [p.digits for p in keep.phones] == ["13800138000", "01065529988"]
    assert drop.archived and drop.merged_into_id == keep.id
    assert keep.last_contact_at is not None
    assert any(c.field == "stage" for c in customers.history(keep))
    assert db.session.scalars(select(AuditEvent).where(AuditEvent.action == "customer.merge")).one()


def test_undo_merge_restores_both(pair):
    keep, drop = pair["keep"], pair["drop"]
    merge.merge_customers(pair["manager"], keep, drop)
    merge.undo_merge(pair["manager"], drop)
    assert not drop.archived and drop.merged_into_id is None
    assert {n.body for n in db.session.scalars(select(CustomerNote).where(CustomerNote.customer_id == drop.id))} == {
        "被合并的记录"}
    assert db.session.scalars(select(FollowUpTask)).one().customer_id == drop.id
    assert {t.name for t in keep.tags} == {"制造"}
    assert [p.digits for p in keep.phones] == ["13800138000"]
    assert any(c.field == "stage" for c in customers.history(drop))
    assert not any(c.field == "stage" for c in customers.history(keep))


@pytest.mark.parametrize("case", ["same", "archived"])
def test_merge_refusals(pair, case):
    keep, drop = pair["keep"], pair["drop"]
    if case == "archived":
        customers.archive(pair["manager"], drop)
    with pytest.raises(DomainError):
        merge.merge_customers(pair["manager"], keep, keep if case == "same" else drop)


def test_undo_of_a_customer_that_was_not_merged(pair):
    with pytest.raises(DomainError):
        merge.undo_merge(pair["manager"], pair["drop"])


def _pool_event_ids(customer) -> set[int]:
    return set(db.session.scalars(select(PoolEvent.id).where(PoolEvent.customer_id == customer.id)))


def _profile(customer) -> tuple:
    return (customer.email, customer.address, customer.company, customer.region, customer.birthday)


def test_merge_moves_pool_history_and_fills_empty_fields_and_undo_takes_both_back(pair):
    keep, drop, manager = pair["keep"], pair["drop"], pair["manager"]
    keep.address = "北京市海淀区"
    drop.email, drop.address, drop.company, drop.region = "zw@example.cn", "上海市", "伟业公司", "上海"
    drop.birthday = date(1980, 5, 1)
    db.session.commit()
    kept_events, dropped_events = _pool_event_ids(keep), _pool_event_ids(drop)
    assert dropped_events
    merge.merge_customers(manager, keep, drop)
    db.session.commit()
    assert _pool_event_ids(keep) == kept_events | dropped_events and _pool_event_ids(drop) == set()
    assert _profile(keep) == ("zw@example.cn", "北京市海淀区", "伟业公司", "上海", date(1980, 5, 1))
    assert {"email", "company", "region", "birthday"} <= {c.field for c in customers.history(keep)}
    keep.region = "华东"  # edited after the merge: the undo leaves it
    db.session.commit()
    merge.undo_merge(manager, drop)
    db.session.commit()
    assert _pool_event_ids(keep) == kept_events and _pool_event_ids(drop) == dropped_events
    assert _profile(keep) == ("", "北京市海淀区", "", "华东", None)
    assert _profile(drop) == ("zw@example.cn", "上海市", "伟业公司", "上海", date(1980, 5, 1))
