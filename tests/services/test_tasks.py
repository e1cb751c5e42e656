"""Follow-up tasks: the office day, lists per person, done / reopen / snooze /
reassign and their refusals."""

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from extensions import db
from models import AuditEvent, Customer, FollowUpTask, User, utcnow
from services import customers, office_time, tasks
from services.errors import DomainError
from tests.factories import make_account as user
from tests.factories import make_customer as customer

TODAY = date(2026, 3, 2)


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield


def task(actor: User, on: Customer, due: date = TODAY, title="回电话", **kwargs) -> FollowUpTask:
    return tasks.create_task(actor, on, due_date=due, title=title, **kwargs)


def titles(page) -> list[str]:
    return [t.title for t in page.items]


# ---- the office day --------------------------------------------------------------------

def test_today_and_overdue_at_the_day_boundary(ctx):
    sales = user()
    on = customer(sales)
    task(sales, on, date(2026, 3, 1), "昨天")
    task(sales, on, date(2026, 3, 2), "今天")
    task(sales, on, date(2026, 3, 3), "明天")
    # 16:30 UTC on 1 March is already 2 March in the office.
    today = office_time.office_today("Asia/Shanghai", datetime(2026, 3, 1, 16, 30, tzinfo=UTC))
    assert titles(tasks.list_tasks(sales, today=today, due="today")) == ["今天"]
    assert titles(tasks.list_tasks(sales, today=today, due="overdue")) == ["昨天"]
    groups = tasks.group_by_due(tasks.list_tasks(sales, today=today).items, today)
    assert {key: [t.title for t in group] for key, group in groups.items()} == {
        "overdue": ["昨天"], "today": ["今天"], "upcoming": ["明天"]}
    # A minute earlier it is still 1 March there.
    earlier = office_time.office_today("Asia/Shanghai", datetime(2026, 3, 1, 15, 59, tzinfo=UTC))
    assert titles(tasks.list_tasks(sales, today=earlier, due="today")) == ["昨天"]
    assert titles(tasks.list_tasks(sales, today=earlier, due="overdue")) == []


# ---- lists ------------------------------------------------------------------------------

def test_sales_see_only_their_own_tasks(ctx):
    li, wang, manager = user(username="li"), user(username="wang"), user("manager", username="boss")
    pool = customer(manager, "公海客户")
    task(li, customer(li, "李的客户"), title="李的任务")
    task(wang, customer(wang, "王的客户"), title="王的任务")
    task(li, pool, title="公海任务", assignee_id=wang.id)
    assert titles(tasks.list_tasks(li, today=TODAY)) == ["李的任务"]
    # Asking for a colleague's tasks does not widen what a salesperson sees.
    assert titles(tasks.list_tasks(li, today=TODAY, assignee_id=wang.id)) == []
    assert sorted(titles(tasks.list_tasks(wang, today=TODAY))) == sorted(["王的任务", "公海任务"])
    assert len(tasks.list_tasks(manager, today=TODAY).items) == 3
    listed = tasks.list_tasks(manager, today=TODAY, assignee_id=wang.id)
    assert sorted(titles(listed)) == sorted(["王的任务", "公海任务"])


def test_tasks_on_customers_one_no_longer_sees_or_archived_are_hidden(ctx):
    li, wang, manager = user(username="li"), user(username="wang"), user("manager")
    moved = customer(li, "转走的")
    task(li, moved, title="转走")
    archived = customer(li, "归档的")
    task(li, archived, title="归档")
    moved.owner_id = wang.id
    db.session.commit()
    customers.archive(manager, archived)
    assert titles(tasks.list_tasks(li, today=TODAY)) == []
    assert titles(tasks.list_tasks(manager, today=TODAY)) == ["转走"]
    # The archived customer's page still lists its open follow-ups.
    assert [t.title for t in tasks.customer_open_tasks(manager, archived)] == ["归档"]


def test_scope_due_week_order_and_pages(ctx):
    sales = user()
    on = customer(sales)
    for offset in (8, 6, 0, -1):
        task(sales, on, TODAY + timedelta(days=offset), f"d{offset}")
    done = task(sales, on, TODAY, "done")
    tasks.complete(sales, done)
    assert titles(tasks.list_tasks(sales, today=TODAY)) == ["d-1", "d0", "d6", "d8"]
    assert titles(tasks.list_tasks(sales, today=TODAY, due="week")) == ["d0", "d6"]
    assert titles(tasks.list_tasks(sales, today=TODAY, scope="done")) == ["done"]
    assert len(tasks.list_tasks(sales, today=TODAY, scope="all").items) == 5
    first = tasks.list_tasks(sales, today=TODAY, per_page=3)
    assert (first.total, first.pages, titles(first)) == (4, 2, ["d-1", "d0", "d6"])
    assert titles(tasks.list_tasks(sales, today=TODAY, per_page=3, page=2)) == ["d8"]
    assert tasks.list_tasks(sales, today=TODAY, per_page=3, page=99).page == 2


def test_due_now_and_overdue_count(ctx):
    li, wang, manager = user(username="li"), user(username="wang"), user("manager")
    task(li, customer(li, "甲"), TODAY - timedelta(days=2), "li overdue")
    task(li, customer(li, "乙"), TODAY, "li today")
    task(li, customer(li, "丙"), TODAY + timedelta(days=1), "li tomorrow")
    task(wang, customer(wang, "丁"), TODAY - timedelta(days=1), "wang overdue")
    assert [t.title for t in tasks.due_now(li, TODAY)] == ["li overdue", "li today"]
    assert tasks.count_overdue(li, TODAY) == 1
    assert tasks.count_overdue(manager, TODAY) == 2
    assert tasks.due_now(manager, TODAY) == []


def test_customer_open_tasks(ctx):
    li, manager = user(username="li"), user("manager")
    on = customer(li)
    mine = task(li, on, title="mine")
    task(manager, on, title="boss", assignee_id=manager.id)
    tasks.complete(li, task(li, on, title="finished"))
    assert [t.title for t in tasks.customer_open_tasks(li, on)] == [mine.title]
    assert sorted(t.title for t in tasks.customer_open_tasks(manager, on)) == ["boss", "mine"]


# ---- changing a task ---------------------------------------------------------------------

def test_complete_and_reopen(ctx):
    sales, manager = user(), user("manager")
    item = task(sales, customer(sales))
    tasks.complete(manager, item)
    assert item.done and item.done_by_id == manager.id
    first_done_at = item.done_at
    tasks.complete(sales, item)  # twice changes nothing
    assert (item.done_at, item.done_by_id) == (first_done_at, manager.id)
    tasks.reopen(sales, item)
    assert not item.done and item.done_by_id is None


def test_snooze_moves_the_due_date(ctx):
    sales = user()
    item = task(sales, customer(sales), TODAY - timedelta(days=3))
    tasks.snooze(sales, item, TODAY + timedelta(days=1), today=TODAY)
    assert db.session.get(FollowUpTask, item.id).due_date == TODAY + timedelta(days=1)


@pytest.mark.parametrize("until", [TODAY, TODAY - timedelta(days=1), date(2000, 1, 1)])
def test_snooze_must_go_after_today(ctx, until):
    sales = user()
    item = task(sales, customer(sales))
    with pytest.raises(DomainError) as refused:
        tasks.snooze(sales, item, until, today=TODAY)
    assert refused.value.field == "until"
    assert db.session.get(FollowUpTask, item.id).due_date == TODAY


def test_done_tasks_are_neither_snoozed_nor_reassigned(ctx):
    sales, other = user(), user()
    item = task(sales, customer(sales, owner_id=None))
    tasks.complete(sales, item)
    with pytest.raises(DomainError):
        tasks.snooze(sales, item, TODAY + timedelta(days=1), today=TODAY)
    with pytest.raises(DomainError):
        tasks.reassign(sales, item, other.id)


def test_reassign_is_audited(ctx):
    manager, li, wang = user("manager"), user(username="li"), user(username="wang")
    pool = customer(manager, "公海")
    item = task(manager, pool, assignee_id=li.id)
    tasks.reassign(manager, item, wang.id, ip="10.0.0.9")
    assert db.session.get(FollowUpTask, item.id).assignee_id == wang.id
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "task.reassign")).one()
    assert (event.actor_id, event.target_type, event.target_id, event.ip) == (
        manager.id, "follow_up_tasks", item.id, "10.0.0.9")
    assert event.details == {"customer_id": pool.id, "from_user": li.id, "to_user": wang.id}
    tasks.reassign(manager, item, wang.id)  # to the same colleague: nothing to record
    assert db.session.scalar(select(db.func.count(AuditEvent.id)).where(AuditEvent.action == "task.reassign")) == 1


def test_reassign_refusals(ctx):
    manager, li, wang = user("manager"), user(username="li"), user(username="wang")
    desk = user("frontdesk")
    gone = user(username="gone")
    gone.active = False
    db.session.commit()
    item = task(li, customer(li, "李的客户"))
    for assignee_id in (999_999, gone.id, desk.id, wang.id):  # wang may not open li's customer
        with pytest.raises(DomainError) as refused:
            tasks.reassign(manager, item, assignee_id)
        assert refused.value.field == "assignee_id"
    assert db.session.get(FollowUpTask, item.id).assignee_id == li.id
    assert not db.session.scalars(select(AuditEvent).where(AuditEvent.action == "task.reassign")).all()
    tasks.reassign(li, item, manager.id)
    assert db.session.get(FollowUpTask, item.id).assignee_id == manager.id


def test_assignee_options_are_those_who_may_open_the_customer(ctx):
    li, _wang, manager = user(username="li"), user(username="wang"), user("manager", username="boss")
    user("frontdesk", username="desk")
    user("admin", username="root")
    colleagues = tasks.assignable_colleagues()
    assert [u.username for u in colleagues] == ["boss", "li", "wang"]
    assert [u.username for u in tasks.assignee_options(customer(li, "李的"), colleagues)] == ["boss", "li"]
    pool = customer(manager, "公海")
    assert [u.username for u in tasks.assignee_options(pool, colleagues)] == ["boss", "li", "wang"]


# ---- creating ------------------------------------------------------------------------------

def test_add_task_defaults_to_the_owner(ctx):
    li, manager = user(username="li"), user("manager")
    on = customer(li)
    item = tasks.add_task(manager, on, title="  报价 ", due_date=TODAY, today=TODAY)
    assert (item.assignee_id, item.created_by_id, item.title, item.note_id) == (li.id, manager.id, "报价", None)
    pool_task = tasks.add_task(manager, customer(manager, "公海"), title="看看", due_date=TODAY, today=TODAY)
    assert pool_task.assignee_id == manager.id


@pytest.mark.parametrize("change, field", [
    ({"title": "   "}, "title"),
    ({"due_date": TODAY - timedelta(days=1)}, "due_date"),
    ({"assignee": "unknown"}, "assignee_id"),
    ({"assignee": "inactive"}, "assignee_id"),
    ({"assignee": "frontdesk"}, "assignee_id"),
    ({"assignee": "other_sales"}, "assignee_id"),
])
def test_add_task_refusals(ctx, change, field):
    li = user(username="li")
    people = {"unknown": 999_999, "inactive": user(username="old").id, "frontdesk": user("frontdesk").id,
              "other_sales": user(username="wang").id}
    db.session.get(User, people["inactive"]).active = False
    db.session.commit()
    on = customer(li)
    arguments = {"title": "回访", "due_date": TODAY, "today": TODAY}
    arguments.update({k: v for k, v in change.items() if k != "assignee"})
    if "assignee" in change:
        arguments["assignee_id"] = people[change["assignee"]]
    with pytest.raises(DomainError) as refused:
        tasks.add_task(li, on, **arguments)
    assert refused.value.field == field
    assert db.session.scalars(select(FollowUpTask)).all() == []


def test_create_task_from_a_note_keeps_its_rules(ctx):
    """The notes service relies on these: the owner by default, the writer for a
    pool customer, and no commit: the caller's transaction decides."""
    li, desk = user(username="li"), user("frontdesk")
    pool = customer(desk, "前台建的")
    db.session.commit()
    item = tasks.create_task(desk, pool, due_date=TODAY, title="x")
    assert item.assignee_id == desk.id
    db.session.rollback()
    assert db.session.scalars(select(FollowUpTask)).all() == []
    with pytest.raises(DomainError):
        tasks.create_task(li, pool, due_date=TODAY, title="x", assignee_id=desk.id)
    assert utcnow() - task(li, customer(li)).created_at < timedelta(minutes=1)
