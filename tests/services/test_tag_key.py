"""Customer.tag_key: each customer's tag ids in one column, kept by the database's
triggers on customer_tags whatever changes the tags (the list's tag counts group by
it). Every test of the suite also checks it at teardown (tests/conftest.py)."""

import threading

from sqlalchemy import delete, insert, select, update

from extensions import db
from models import Customer, customer_tags
from services import customers, merge, tags
from tests.conftest import tag_keys_that_disagree
from tests.factories import make_customer, make_tag


def _key(customer) -> str:
    return db.session.scalar(select(Customer.tag_key).where(Customer.id == customer.id))


def test_the_key_follows_every_way_tags_change(app, staff):
    admin = staff["admin"]
    vip, fair, school = make_tag("VIP", "级别"), make_tag("展会", "来源"), make_tag("学校", "行业")
    first = make_customer(admin, "甲", tag_ids=[fair.id, vip.id], commit=True)
    second = make_customer(admin, "乙", commit=True)
    assert (_key(first), _key(second)) == (f"{vip.id},{fair.id}", "")

    customers.set_tags(admin, second, [school.id, vip.id])  # the form
    db.session.commit()
    assert _key(second) == f"{vip.id},{school.id}"
    customers.set_tags(admin, second, [school.id])
    db.session.commit()
    assert _key(second) == str(school.id)

    tags.merge_tags(admin, fair, school)  # 展会 becomes 学校 on 甲
    db.session.commit()
    assert _key(first) == f"{vip.id},{school.id}"

    merge.merge_customers(admin, second, first)  # 乙 keeps, 甲's tags come along
    db.session.commit()
    assert _key(second) == f"{vip.id},{school.id}"
    merge.undo_merge(admin, db.session.get(Customer, first.id))
    db.session.commit()
    assert _key(second) == str(school.id)

    tags.delete_tag(admin, db.session.get(type(vip), vip.id))
    db.session.commit()
    assert _key(first) == str(school.id)

    db.session.execute(delete(customer_tags).where(customer_tags.c.customer_id == first.id))  # raw SQL
    db.session.commit()
    assert _key(first) == ""
    db.session.execute(insert(customer_tags), [{"customer_id": first.id, "tag_id": school.id}])
    db.session.commit()
    assert _key(first) == str(school.id)
    assert tag_keys_that_disagree() == []


def test_a_link_moved_to_another_customer_leaves_both_keys_right(app, staff):
    admin = staff["admin"]
    vip, fair = make_tag("VIP", "级别"), make_tag("展会", "来源")
    first = make_customer(admin, "甲", tag_ids=[vip.id, fair.id], commit=True)
    second = make_customer(admin, "乙", commit=True)
    db.session.execute(update(customer_tags).where(customer_tags.c.customer_id == first.id,
                                                   customer_tags.c.tag_id == fair.id).values(customer_id=second.id))
    db.session.commit()
    assert (_key(first), _key(second)) == (str(vip.id), str(fair.id))


def test_a_purged_customer_takes_its_links_and_nothing_else_changes(app, staff):
    admin = staff["admin"]
    vip = make_tag("VIP", "级别")
    gone = make_customer(admin, "丙", tag_ids=[vip.id], commit=True)
    kept = make_customer(admin, "丁", tag_ids=[vip.id], commit=True)
    customers.archive(admin, gone)
    db.session.commit()
    customers.purge(admin, gone, "丙")
    db.session.commit()
    assert _key(kept) == str(vip.id)
    assert db.session.scalar(select(customer_tags.c.customer_id).where(customer_tags.c.customer_id == gone.id)) is None


def test_two_transactions_tagging_one_customer_at_once_both_count(app, staff):
    """The second to commit must see the first's tag: on PostgreSQL the trigger locks
    the customer's row before it reads the customer's tags (SQLite has one writer)."""
    admin = staff["admin"]
    vip, fair = make_tag("VIP", "级别"), make_tag("展会", "来源")
    customer = make_customer(admin, "戊", commit=True)
    customer_id, vip_id, fair_id = customer.id, vip.id, fair.id
    db.session.close()  # no transaction of this thread's in the way
    first_inserted, second_started = threading.Event(), threading.Event()
    errors, engine = [], db.engine

    def first():
        try:
            with app.app_context(), engine.connect() as connection, connection.begin():
                connection.execute(insert(customer_tags), [{"customer_id": customer_id, "tag_id": vip_id}])
                first_inserted.set()
                second_started.wait(10)
                threading.Event().wait(0.5)  # the second waits for this transaction meanwhile
        except Exception as error:  # reported below
            errors.append(error)

    def second():
        try:
            first_inserted.wait(10)
            with app.app_context(), engine.connect() as connection:
                second_started.set()
                with connection.begin():
                    connection.execute(insert(customer_tags), [{"customer_id": customer_id, "tag_id": fair_id}])
        except Exception as error:
            errors.append(error)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors and not any(thread.is_alive() for thread in threads)
    assert db.session.get(Customer, customer_id).tag_key == f"{vip_id},{fair_id}"
