from datetime import date

import pytest
from sqlalchemy import select

from extensions import db
from models import AuditEvent, Customer, CustomerChange
from services import customers, phones
from services.customers import CustomerData, CustomerFilter, DuplicateCustomer
from services.errors import DomainError
from tests.conftest import make_tag, sqlite_plan


def _tag(name, group="行业"):
    return make_tag(name, group)


@pytest.mark.parametrize("raw, digits, shown", [
    ("+86 138-0013-8000", "13800138000", "138 0013 8000"),
    ("０１０－６５５２９９８８", "01065529988", "010 6552 9988"),
    ("(0755) 8888 6666", "075588886666", "0755 8888 6666"),
    ("0086 13800138000", "13800138000", "138 0013 8000"),
    ("138.0013.8000", "13800138000", "138 0013 8000"),
])
def test_phone_normalisation(raw, digits, shown):
    assert phones.normalise(raw) == digits
    assert phones.display(digits) == shown


@pytest.mark.parametrize("raw", ["", "abc", "123", "138-0013-8000 ext 5", "1" * 21])
def test_phone_refusals(raw):
    with pytest.raises(phones.InvalidPhone):
        phones.normalise(raw)


def test_owner_by_role(staff):
    sales = customers.create_customer(staff["sales"], CustomerData(name="张伟"))
    routed = customers.create_customer(staff["frontdesk"], CustomerData(name="李娜", owner_id=staff["sales"].id))
    desk = customers.create_customer(staff["frontdesk"], CustomerData(name="赵敏"))
    managed = customers.create_customer(staff["manager"], CustomerData(name="王芳", owner_id=staff["sales2"].id))
    assert sales.owner_id == staff["sales"].id
    assert routed.owner_id == staff["sales"].id  # front desk routes a caller to a salesperson
    assert desk.owner_id is None  # or, by default, into the pool
    assert managed.owner_id == staff["sales2"].id
    assert sales.owned_since is not None and desk.pool_reason == "new"


def test_owner_must_be_an_active_colleague(staff):
    with pytest.raises(DomainError) as refused:
        customers.create_customer(staff["manager"], CustomerData(name="王芳", owner_id=staff["frontdesk"].id))
    assert refused.value.field == "owner_id"


def test_duplicates_by_phone_email_and_name_company(staff):
    first = customers.create_customer(staff["sales"], CustomerData(
        name="张伟", company="华为", phones=[("mobile", "13800138000")], email="zw@example.cn"))
    for data in (
        CustomerData(name="别人", phones=[("mobile", "13800138000")]),
        CustomerData(name="别人", email="ZW@example.cn"),
        CustomerData(name="张伟", company="华为"),
    ):
        with pytest.raises(DuplicateCustomer) as duplicate:
            customers.create_customer(staff["sales2"], data)
        assert [c.id for c in duplicate.value.duplicates] == [first.id]
    # Same name alone (no company) is common in China and not a duplicate.
    assert customers.create_customer(staff["sales2"], CustomerData(name="张伟")).id != first.id


def test_the_duplicate_lookup_searches_indexes_and_never_scans_the_customers(app, staff):
    """An import asks for the duplicates of each chunk of rows: on SQLite each kind of
    key is searched in its index (a scan per chunk made a large import slow down as
    the table grew). The email is compared as stored, in lower case."""
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        pytest.skip("SQLite only (PostgreSQL's planner scans a small table, as it should)")
    keys = {("phone", "13800138000"), ("email", "zw@example.cn"), ("name", "张伟\x1f华为")}
    query = select(Customer.id).where(customers._key_condition(keys), Customer.merged_into_id.is_(None))
    plan = sqlite_plan(query).split(" | ")
    assert not [step for step in plan if step.startswith("SCAN customers")], plan
    assert any("ix_customers_email" in step for step in plan), plan


def test_save_anyway_is_recorded(staff):
    customers.create_customer(staff["sales"], CustomerData(name="A", phones=[("mobile", "13800138000")]))
    second = customers.create_customer(staff["sales2"], CustomerData(name="B", phones=[("mobile", "13800138000")]),
                                       acknowledge_duplicates=True)
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "customer.create_despite_duplicate")).one()
    assert event.target_id == second.id


def test_update_keeps_field_history(staff):
    customer = customers.create_customer(staff["sales"], CustomerData(name="张伟", stage="potential"))
    changes = customers.update_customer(staff["sales"], customer, CustomerData(
        name="张伟", stage="intent", phones=[("mobile", "13800138000")], birthday=date(1990, 5, 1),
        owner_id=staff["sales2"].id))
    fields = {c.field: (c.old_value, c.new_value) for c in changes}
    assert fields["stage"] == ("potential", "intent")
    assert fields["phones"] == ("", "138 0013 8000")
    assert fields["birthday"] == ("", "1990-05-01")
    assert "owner_id" not in fields  # a salesperson cannot hand the customer over here
    assert customer.owner_id == staff["sales"].id
    assert [c.field for c in customers.history(customer)] == list(reversed(list(fields)))  # newest first


def test_manager_changes_owner_with_history(staff):
    customer = customers.create_customer(staff["sales"], CustomerData(name="张伟"))
    customers.update_customer(staff["manager"], customer, CustomerData(name="张伟", owner_id=staff["sales2"].id))
    change = db.session.scalars(select(CustomerChange).where(CustomerChange.field == "owner_id")).one()
    assert (change.old_value, change.new_value) == ("sales.one", "sales.two")


def test_archive_restore_purge(staff):
    customer = customers.create_customer(staff["sales"], CustomerData(name="张伟"))
    with pytest.raises(DomainError):
        customers.purge(staff["admin"], customer, "张伟")  # not archived
    customers.archive(staff["manager"], customer)
    assert customer.archived
    customers.restore(staff["manager"], customer)
    assert not customer.archived
    customers.archive(staff["manager"], customer)
    with pytest.raises(DomainError) as refused:
        customers.purge(staff["admin"], customer, "张")
    assert refused.value.field == "confirm_name"
    customer_id = customer.id
    customers.purge(staff["admin"], customer, " 张伟 ")
    assert db.session.get(Customer, customer_id) is None
    actions = [e.action for e in db.session.scalars(select(AuditEvent).order_by(AuditEvent.id))]
    assert actions[-4:] == ["customer.archive", "customer.restore", "customer.archive", "customer.purge"]
    purge = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "customer.purge")).one()
    assert "张伟" not in str(purge.details) and purge.target_id == customer_id


def test_list_visibility_and_filters(staff):
    customers.create_customer(staff["sales"], CustomerData(name="我的客户", stage="intent"))
    customers.create_customer(staff["sales2"], CustomerData(name="别人的客户", stage="intent"))
    customers.create_customer(staff["frontdesk"], CustomerData(name="公海客户", stage="deal"))
    archived = customers.create_customer(staff["sales"], CustomerData(name="归档客户"))
    customers.archive(staff["manager"], archived)

    def names(user, **kw):
        return {c.name for c in customers.list_customers(user, CustomerFilter(**kw)).items}

    assert names(staff["sales"]) == {"我的客户", "公海客户"}
    assert names(staff["manager"]) == {"我的客户", "别人的客户", "公海客户"}
    assert names(staff["frontdesk"]) == {"我的客户", "别人的客户", "公海客户"}
    # The archive is for those who archive; for sales the toggle is ignored.
    assert names(staff["manager"], archived=True) == {"归档客户"}
    assert names(staff["sales"], archived=True) == {"我的客户", "公海客户"}
    assert names(staff["manager"], stage="intent") == {"我的客户", "别人的客户"}
    assert names(staff["manager"], owner="pool") == {"公海客户"}
    assert names(staff["sales"], owner="mine") == {"我的客户"}
    assert names(staff["manager"], q="别人") == {"别人的客户"}


def test_tag_filter_all_must_match_with_counts(staff):
    a, b = _tag("制造业"), _tag("软件", "需求")
    both = customers.create_customer(staff["sales"], CustomerData(name="两者都有"))
    only_a = customers.create_customer(staff["sales"], CustomerData(name="只有甲"))
    customers.set_tags(staff["sales"], both, [a.id, b.id])
    customers.set_tags(staff["sales"], only_a, [a.id])
    result = customers.list_customers(staff["sales"], CustomerFilter(tag_ids=[a.id, b.id]))
    assert [c.name for c in result.items] == ["两者都有"]
    result = customers.list_customers(staff["sales"], CustomerFilter(tag_ids=[a.id]))
    assert result.total == 2 and result.tag_counts == {a.id: 2, b.id: 1}


def test_phone_suffix_in_quick_filter(staff):
    customers.create_customer(staff["sales"], CustomerData(name="张伟", phones=[("mobile", "13800138000")]))
    result = customers.list_customers(staff["sales"], CustomerFilter(q="８０００"))
    assert [c.name for c in result.items] == ["张伟"]


def test_paging(staff):
    for n in range(30):
        customers.create_customer(staff["sales"], CustomerData(name=f"客户{n:02d}"))
    first = customers.list_customers(staff["sales"], CustomerFilter(sort="name", page=1))
    second = customers.list_customers(staff["sales"], CustomerFilter(sort="name", page=2))
    assert (first.total, first.pages, len(first.items), len(second.items)) == (30, 2, 25, 5)
    assert {c.id for c in first.items}.isdisjoint({c.id for c in second.items})
    assert customers.list_customers(staff["sales"], CustomerFilter(page=99)).page == 2


def test_unfiltered_tag_counts_fast_path_matches_the_general_query(staff):
    a, b = _tag("制造业"), _tag("软件", "需求")
    for n in range(4):
        customer = customers.create_customer(staff["sales"], CustomerData(name=f"客户{n}"))
        customers.set_tags(staff["sales"], customer, [a.id] + ([b.id] if n % 2 else []))
        if n == 3:
            customers.archive(staff["manager"], customer)
    page = customers.list_customers(staff["manager"], CustomerFilter())
    general = customers.tag_counts(customers.filtered_query(staff["manager"], CustomerFilter()))
    assert page.tag_counts == general == {a.id: 3, b.id: 1}


def test_front_desk_filters_and_sorts_only_on_the_basic_card(staff):
    intent = customers.create_customer(staff["sales"], CustomerData(name="意向客户", stage="intent", importance="A"))
    customers.create_customer(staff["sales2"], CustomerData(name="成交客户", stage="deal", region="北京"))
    tag = _tag("制造业")
    customers.set_tags(staff["sales"], intent, [tag.id])

    def names(user, **kw):
        return {c.name for c in customers.list_customers(user, CustomerFilter(**kw)).items}

    for hidden in ({"stage": "intent"}, {"importance": "A"}, {"region": "北京"}, {"source": "call"},
                   {"type": "individual"}, {"tag_ids": [tag.id]}):
        assert names(staff["frontdesk"], **hidden) == {"意向客户", "成交客户"}, hidden
    assert names(staff["manager"], stage="intent") == names(staff["manager"], tag_ids=[tag.id]) == {"意向客户"}
    assert names(staff["frontdesk"], owner="pool") == set()
    front = customers.allowed_filter(staff["frontdesk"], CustomerFilter(stage="deal", sort="created",
                                                                        owner="pool", q="客户"))
    assert (front.stage, front.sort, front.owner, front.q) == ("", "updated", "pool", "客户")
    # The last contact is on the basic card: the front desk sorts by it.
    assert customers.allowed_filter(staff["frontdesk"], CustomerFilter(sort="last_contact")).sort == "last_contact"
    page = customers.list_customers(staff["frontdesk"], CustomerFilter())
    assert page.tag_counts == {}
    assert customers.list_customers(staff["manager"], CustomerFilter()).tag_counts == {tag.id: 1}
