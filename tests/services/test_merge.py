from datetime import date, timedelta

import pytest
from sqlalchemy import select

from extensions import db
from models import AuditEvent, CustomerNote, FollowUpTask, Tag, TagGroup, utcnow
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
