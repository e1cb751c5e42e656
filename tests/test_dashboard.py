"""The home page per role (F2, U3): follow-ups due, recent customers, mentions,
the manager's overview and the front desk's lookup-first page."""

import re
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import select

from extensions import db
from models import Customer, CustomerNote, Mention, User
from services import customers, dashboard, office_time, tasks
from services.customers import CustomerData
from services.notes import delete_note
from tests.factories import make_account as person
from tests.factories import make_customer as new_customer
from tests.factories import make_note as note

HX = {"HX-Request": "true"}
ZONE = "Asia/Shanghai"


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield


@pytest.fixture
def today(app):
    return office_time.office_today(app.config["OFFICE_TIMEZONE"])


# ---- the service ------------------------------------------------------------------------------

def test_day_bounds_in_the_office_time_zone():
    assert dashboard.day_bounds(date(2026, 3, 2), ZONE) == (datetime(2026, 3, 1, 16), datetime(2026, 3, 2, 16))


def test_todays_contacts_at_the_day_boundary(ctx):
    desk, colleague = person("frontdesk"), person("frontdesk")
    customer = new_customer(desk)
    just_after = note(desk, customer, "刚过零点")
    just_before = note(desk, customer, "昨天深夜", kind="visit")
    visit = note(desk, customer, "到访", kind="visit")
    note(colleague, customer, "别人的")
    deleted = note(desk, customer, "删掉的")
    delete_note(desk, deleted)
    just_after.created_at = datetime(2026, 3, 1, 16, 30)  # 00:30 on 2 March in the office
    just_before.created_at = datetime(2026, 3, 1, 15, 59)  # 23:59 on 1 March
    visit.created_at = datetime(2026, 3, 2, 9, 0)
    deleted.created_at = datetime(2026, 3, 2, 1, 0)
    db.session.query(CustomerNote).filter(CustomerNote.author_id == colleague.id).update(
        {CustomerNote.created_at: datetime(2026, 3, 2, 2, 0)})
    db.session.commit()
    shown = dashboard.todays_contacts(desk, date(2026, 3, 2), ZONE)
    assert [n.body for n in shown] == ["到访", "刚过零点"]  # newest first
    assert [n.body for n in dashboard.todays_contacts(desk, date(2026, 3, 1), ZONE)] == ["昨天深夜"]


def test_todays_contacts_read_only_the_users_own_notes_of_the_day(ctx, today):
    """On a busy day colleagues write hundreds of notes: the front desk's list reads
    its own along ix_customer_notes_author_kind_created, not everybody's of the day."""
    from tests.conftest import sqlite_plan

    desk, sales = person("frontdesk"), person("sales")
    customer = new_customer(sales)
    for n in range(60):
        note(sales, customer, f"忙碌的一天 {n}")
    note(desk, customer, "前台来电")
    db.session.commit()
    assert [n.body for n in dashboard.todays_contacts(desk, today, ZONE)] == ["前台来电"]
    if db.engine.dialect.name != "sqlite":
        return  # PostgreSQL's plan depends on its statistics
    query = dashboard.todays_contacts_query(desk, today, ZONE, 50)
    plan = sqlite_plan(query)
    expected = "ix_customer_notes_author_kind_created (author_id=? AND kind=? AND created_at>? AND created_at<?)"
    assert f"USING INDEX {expected}" in plan, plan


def test_recent_customers_are_my_own_most_recently_contacted(ctx):
    li, wang, manager = person(), person(), person("manager")
    old = new_customer(li, "很久以前")
    fresh = new_customer(li, "刚联系")
    untouched = new_customer(li, "没联系")
    archived = new_customer(li, "归档了")
    new_customer(wang, "别人的")
    old.last_contact_at = datetime(2020, 1, 1)
    fresh.last_contact_at = datetime(2030, 1, 1)
    untouched.updated_at = datetime(2025, 1, 1)
    db.session.commit()
    customers.archive(manager, archived)
    db.session.commit()
    assert [c.name for c in dashboard.recent_customers(li)] == ["刚联系", "没联系", "很久以前"]
    for index in range(12):
        new_customer(li, f"客户{index}")
    assert len(dashboard.recent_customers(li)) == 10


def test_unread_mentions_newest_first_on_notes_i_may_read(ctx):
    author, me, manager = person(username="li.na"), person(username="wang.wu"), person("manager")
    pool = new_customer(manager, "公海客户")
    first = note(author, pool, "@wang.wu 看一下")
    second = note(manager, pool, "@wang.wu 第二条")
    read = note(author, pool, "@wang.wu 已读")
    gone = note(author, pool, "@wang.wu 删除")
    note(author, pool, "@li.na 自己")  # nobody mentions themself
    for mention in db.session.scalars(select(Mention).where(Mention.note_id == read.id)):
        mention.read_at = datetime(2026, 1, 1)
    db.session.query(Mention).filter(Mention.note_id == first.id).update({Mention.created_at: datetime(2026, 1, 1)})
    db.session.commit()
    delete_note(manager, gone)
    shown = dashboard.unread_mentions(me)
    assert [m.note_id for m in shown] == [second.id, first.id]
    assert shown[0].author.display_name == manager.display_name and shown[0].note.customer.name == "公海客户"
    # The customer went to a colleague: the mention is no longer readable for me.
    db.session.get(Customer, pool.id).owner_id = author.id
    db.session.commit()
    assert dashboard.unread_mentions(me) == []


def test_build_per_role(ctx, app):
    today = date(2026, 3, 2)
    sales, manager, desk, admin = person(), person("manager"), person("frontdesk"), person("admin")
    customer = new_customer(sales)
    tasks.create_task(sales, customer, due_date=today - timedelta(days=1), title="逾期")
    tasks.create_task(sales, customer, due_date=today, title="今天")
    tasks.create_task(sales, customer, due_date=today + timedelta(days=1), title="明天")
    db.session.commit()
    board = dashboard.build(sales, today=today, timezone=ZONE)
    assert not board.lookup_first and board.overdue_everybody is None
    assert [t.title for t in board.due_tasks] == ["逾期", "今天"]
    assert [c.name for c in board.recent_customers] == ["王小明"]
    for boss in (manager, admin):
        board = dashboard.build(boss, today=today, timezone=ZONE)
        assert board.overdue_everybody == 1 and board.due_tasks == []
    board = dashboard.build(desk, today=today, timezone=ZONE)
    assert board.lookup_first and board.recent_customers == [] and board.overdue_everybody is None


# ---- the page ------------------------------------------------------------------------------------

def test_sales_home(app, client, login_as, make_user, today):
    sales = login_as("sales", display_name="李娜")
    colleague = make_user("sales", username="zhao.lei", display_name="赵雷")
    manager = make_user("manager")
    with app.app_context():
        me = db.session.get(User, sales.id)
        customer = new_customer(me, "王小明")
        tasks.create_task(me, customer, due_date=today - timedelta(days=1), title="逾期回电")
        tasks.create_task(me, customer, due_date=today, title="今天报价")
        tasks.create_task(me, customer, due_date=today + timedelta(days=2), title="后天拜访")
        db.session.commit()
        pool = new_customer(db.session.get(User, manager.id), "公海客户")
        mentioned = note(db.session.get(User, colleague.id), pool, f"@{sales.username} 请跟进")
        db.session.commit()
        customer_id, pool_id, note_id = customer.id, pool.id, mentioned.id
    page = client.get("/")
    assert page.status_code == 200 and b"<html" in page.data
    html = page.data.decode()
    assert '<h1 data-testid="welcome">Welcome, 李娜</h1>' in html
    assert "逾期回电" in html and "今天报价" in html and "后天拜访" not in html
    assert "task-row task-overdue" in html and ">Overdue<" in html
    assert 'hx-post="/tasks/' in html and "/done" in html and "/snooze" in html  # done and snooze inline
    assert f'href="/customers/{customer_id}"' in html  # recent customers
    assert f'href="/customers/{pool_id}#note-{note_id}"' in html
    assert "赵雷 mentioned you on 公海客户" in html
    assert 'action="/mentions/' in html and "Open and mark read" in html  # notes.mention_read
    assert 'id="dash-team"' not in html and 'data-testid="lookup"' not in html


def test_empty_states_say_what_to_do(client, login_as):
    login_as("sales")
    html = client.get("/").data.decode()
    assert "No follow-ups today. Set a next follow-up date on a note to plan one." in html
    assert "No unread mentions." in html
    assert "Claim one from the public pool, or create a new customer." in html


@pytest.mark.parametrize("role", ["manager", "admin"])
def test_manager_home_counts_everybodys_overdue(app, client, login_as, make_user, today, role):
    login_as(role)
    seller = make_user("sales")
    with app.app_context():
        owner = db.session.get(User, seller.id)
        customer = new_customer(owner)
        for offset in (1, 2):
            tasks.create_task(owner, customer, due_date=today - timedelta(days=offset), title=f"逾期{offset}")
            db.session.commit()
        tasks.create_task(owner, customer, due_date=today, title="今天的")
        db.session.commit()
    html = client.get("/").data.decode()
    assert 'id="dash-team"' in html
    assert "2 overdue follow-ups in the office" in html
    assert 'href="/tasks?assignee=all&amp;due=overdue"' in html
    assert "逾期1" not in html  # their list shows their own follow-ups only
    assert 'data-testid="quality-link"' in html and 'href="/notes/quality"' in html


def test_manager_home_without_overdue(client, login_as):
    login_as("manager")
    assert "No overdue follow-ups in the office." in client.get("/").data.decode()


def test_front_desk_home_is_lookup_first(app, client, login_as, make_user, today):
    desk = login_as("frontdesk", display_name="前台小王")
    colleague = make_user("frontdesk")
    with app.app_context():
        me = db.session.get(User, desk.id)
        customer = new_customer(me, "来访客户")
        visit = note(me, customer, "到访登记", kind="visit")
        note(db.session.get(User, colleague.id), customer, "别人接的")
        db.session.commit()
        customer_id, visit_id = customer.id, visit.id
    html = client.get("/").data.decode()
    assert '<h1 data-testid="welcome">Welcome, 前台小王</h1>' in html
    # The header's search box, once more: the same search (the index's), the same keys.
    form = re.search(r'<form[^>]*class="search-box-form lookup-search-form".*?</form>', html, re.S).group(0)
    assert 'action="/search"' in form and 'name="q"' in form and "autofocus" in form
    assert 'hx-get="/search/suggest"' in form and "data-search-primary" in form
    assert 'hx-vals=\'{"box": "lookup"}\'' in form
    assert 'href="/customers/new"' in html
    assert f'href="/customers/{customer_id}#note-{visit_id}"' in html and "来访客户" in html
    assert html.count('data-testid="contact"') == 1
    assert 'id="dash-recent"' not in html and 'id="dash-team"' not in html


def test_front_desk_empty_day(client, login_as):
    login_as("frontdesk")
    html = client.get("/").data.decode()
    assert "No calls or visits recorded today." in html
    assert 'id="dash-follow-ups"' not in html  # the front desk plans no follow-ups


def test_done_from_the_dashboard_returns_the_row(app, client, login_as, today):
    sales = login_as("sales")
    with app.app_context():
        me = db.session.get(User, sales.id)
        task_id = tasks.create_task(me, new_customer(me), due_date=today, title="仪表盘上完成").id
        db.session.commit()
    response = client.post(f"/tasks/{task_id}/done", headers=HX)
    assert response.status_code == 200 and "task-row task-done" in response.data.decode()
    assert "仪表盘上完成" not in client.get("/").data.decode()


def test_home_fragment_and_chinese(client, login_as):
    login_as("sales", language="zh")
    page = client.get("/", headers=HX)
    assert page.status_code == 200 and "HX-Request" in page.headers["Vary"]
    assert "欢迎" in page.data.decode()


# ---- recycling soon (P5) ------------------------------------------------------------------

def _owned_for(customer: Customer, days: int) -> None:
    from models import utcnow

    customer.owned_since = utcnow() - timedelta(days=days)
    db.session.commit()


def test_recycling_soon_lists_my_customers_soonest_first(ctx):
    li, wang = person(), person()
    later, sooner, safe, theirs = (new_customer(li, n) for n in ("三天后", "明天", "还早", "别人的"))
    deal = customers.create_customer(li, CustomerData(name="成交了", stage="deal"), acknowledge_duplicates=True)
    db.session.commit()
    theirs.owner_id = wang.id
    for customer, days in ((later, 27), (sooner, 29), (safe, 10), (theirs, 29), (deal, 29)):
        _owned_for(customer, days)
    board = dashboard.build(li, today=date.today(), timezone=ZONE)
    assert [(c.name, clock.days_left) for c, clock in board.recycling_soon] == [("明天", 1), ("三天后", 3)]
    desk = person("frontdesk")
    assert dashboard.build(desk, today=date.today(), timezone=ZONE).recycling_soon == []


@pytest.mark.parametrize("role", ["sales", "manager"])
def test_home_shows_recycling_countdown(app, client, login_as, role):
    me = login_as(role)
    with app.app_context():
        customer = customers.create_customer(db.session.get(User, me.id), CustomerData(name="快回收了", owner_id=me.id),
                                             acknowledge_duplicates=True)
        db.session.commit()
        _owned_for(customer, 27)
        customer_id = customer.id
    html = client.get("/").data.decode()
    section = html.split('id="dash-recycling"')[1].split("</section>")[0]
    assert f'href="/customers/{customer_id}"' in section and "快回收了" in section
    assert "Recycled in 3 days" in section


def test_home_recycling_empty_state_and_front_desk(client, login_as):
    login_as("sales")
    html = client.get("/").data.decode()
    assert 'data-testid="no-recycling-soon"' in html
    assert "None of your customers is about to return to the public pool." in html
    assert 'data-testid="recycling-link"' not in html  # sales do not see tonight's batch


def test_front_desk_home_has_no_recycling_section(client, login_as):
    login_as("frontdesk")
    assert 'id="dash-recycling"' not in client.get("/").data.decode()


def test_manager_home_links_the_batch_and_warns_of_a_missing_sweep_once(app, client, login_as):
    from services import nightly
    from tests.nightly_helpers import make_overdue

    login_as("manager")
    html = client.get("/").data.decode()
    assert 'href="/pool/recycling"' in html.split('data-testid="recycling-link"')[1].split("</p>")[0]
    assert 'data-testid="sweep-banner"' not in html  # a fresh install has missed no night
    with app.app_context():
        make_overdue("pool_sweep")
    html = client.get("/").data.decode()
    assert html.count('data-testid="sweep-banner"') == 1 and html.count("sweep of the public pool is overdue") == 1
    with app.app_context():
        assert nightly.run("pool_sweep").ok
    assert 'data-testid="sweep-banner"' not in client.get("/").data.decode()


def test_home_lists_are_capped_with_a_link_to_the_whole_list(app, client, login_as):
    """108 customers about to be recycled made a 5,500 px wall: the home page shows
    the first ten and links to the full list."""
    me = login_as("sales")
    with app.app_context():
        owner = db.session.get(User, me.id)
        made = [customers.create_customer(owner, CustomerData(name=f"回收{n:02d}", owner_id=me.id),
                                          acknowledge_duplicates=True) for n in range(12)]
        db.session.commit()
        for customer in made:
            _owned_for(customer, 28)
    html = client.get("/").data.decode()
    section = html.split('id="dash-recycling"')[1].split("</section>")[0]
    assert section.count('data-testid="recycling-soon"') == 10
    assert 'data-testid="recycling-show-all"' in section and "Show all 12" in section
    assert 'href="/customers?owner=mine&amp;sort=stale"' in section


def test_home_reads_the_rows_of_a_salespersons_customers_only(app, client, login_as):
    """The home page shows the names of recent customers and of those about to be
    recycled: it reads no customer's phones, tags or owner (reading them for each of
    fifty candidates was two thirds of a salesperson's home page)."""
    from tests.conftest import statements_run
    from tests.factories import make_tag

    me = login_as("sales")
    with app.app_context():
        owner = db.session.get(User, me.id)
        made = [customers.create_customer(owner, CustomerData(name=f"客户{n}", owner_id=me.id,
                                                              phones=[("mobile", f"1380000{n:04d}")]),
                                          acknowledge_duplicates=True) for n in range(3)]
        customers.set_tags(owner, made[0], [make_tag("展会", "来源").id])
        db.session.commit()
        for customer in made:
            _owned_for(customer, 28)
        with statements_run(db.engine) as statements:
            html = client.get("/").data.decode()
    assert html.count('data-testid="recycling-soon"') == 3 and "客户0" in html.split('id="dash-recent"')[1]
    read = " ".join(statements)
    assert "customer_phones" not in read and "customer_tags" not in read
