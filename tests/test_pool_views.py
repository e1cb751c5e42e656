import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from extensions import db
from models import AuditEvent, Customer, PoolEvent
from services import accounts, customers, pool, settings
from services.customers import CustomerData
from tests.conftest import TEST_PASSWORD, login

HX = {"HX-Request": "true"}


@pytest.fixture
def world(app):
    with app.app_context():
        people = {n: accounts.create_user(n, TEST_PASSWORD, r) for n, r in
                  [("wang", "sales"), ("li", "sales"), ("boss", "manager"), ("desk", "frontdesk")]}
        in_pool = customers.create_customer(people["desk"], CustomerData(name="公海客户"))
        owned_by_li = customers.create_customer(people["li"], CustomerData(name="李的客户"))
        db.session.commit()
        return {"pool": in_pool.id, "li": owned_by_li.id}


def _login(client, name):
    assert login(client, name).status_code == 303


def test_pool_page_lists_only_pool_customers(client, world):
    _login(client, "wang")
    page = client.get("/pool").data.decode()
    assert "公海客户" in page and "李的客户" not in page
    fragment = client.get("/pool?reason=new", headers=HX)
    assert b"<html" not in fragment.data and "公海客户".encode() in fragment.data
    assert "公海客户" not in client.get("/pool?reason=recycled", headers=HX).data.decode()


@pytest.mark.parametrize("role_user, expected", [("desk", 403)])
def test_front_desk_has_no_pool_page(client, world, role_user, expected):
    _login(client, role_user)
    assert client.get("/pool").status_code == expected
    assert client.post(f"/pool/{world['pool']}/claim", headers=HX).status_code == 403


def test_claim_from_the_list_updates_the_row(app, client, world):
    _login(client, "wang")
    response = client.post(f"/pool/{world['pool']}/claim", headers=HX, data={"from": "list"})
    assert response.status_code == 200
    assert response.data.lstrip().startswith(f'<td id="pool-claim-{world["pool"]}"'.encode())
    assert b"Owner: wang" in response.data and "HX-Trigger" in response.headers
    # The counts above the list follow, out of band.
    assert b'id="claim-standing"' in response.data and b'hx-swap-oob="true"' in response.data
    assert b"Owned 1 / 50" in response.data and b"Claimed today 1 / 20" in response.data
    other = app.test_client()
    other.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    _login(other, "li")
    lost = other.post(f"/pool/{world['pool']}/claim", headers=HX, data={"from": "list"})
    assert lost.status_code == 422
    assert b"Already claimed by wang" in lost.data and '"error"' in lost.headers["HX-Trigger"]
    assert "公海客户" not in lost.data.decode()  # the loser learns who won, nothing more
    assert b'data-testid="claim-row"' not in lost.data
    assert b'id="claim-standing"' not in lost.data  # a lost race changed none of li's counts
    assert other.post("/pool/999999/claim", headers=HX).status_code == 404


def test_a_lost_race_is_answered_without_the_write_lock(app, client, world):
    """Most of a race's losers find the customer taken already: they are answered
    from what they read, in transactions that only read, so they never queue behind
    the writers (SQLite: BEGIN DEFERRED only); the winner's claim takes the lock."""
    from tests.conftest import statements_run

    _login(client, "wang")
    other = app.test_client()
    other.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    _login(other, "li")
    with app.app_context(), statements_run(db.engine) as won_statements:
        assert client.post(f"/pool/{world['pool']}/claim", headers=HX, data={"from": "list"}).status_code == 200
    with app.app_context(), statements_run(db.engine) as lost_statements:
        lost = other.post(f"/pool/{world['pool']}/claim", headers=HX, data={"from": "list"})
    assert lost.status_code == 422 and b"Already claimed by wang" in lost.data
    assert not any(s.startswith(("UPDATE", "INSERT", "DELETE")) for s in lost_statements)
    assert not any("FROM customer_phones" in s for s in lost_statements)  # the row is enough
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):  # PostgreSQL has no BEGIN modes
        begins = [s for s in lost_statements if s.startswith("BEGIN")]
        assert begins and set(begins) == {"BEGIN DEFERRED"}
        assert "BEGIN IMMEDIATE" in won_statements


def test_pool_page_shows_the_claim_counts_to_those_who_claim(app, client, world):
    with app.app_context():
        wang = accounts.get_by_username("wang")
        pool.claim_customer(wang, world["pool"])
        db.session.commit()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "zh-CN"
    _login(client, "wang")
    page = client.get("/pool").data.decode()
    assert 'data-testid="claim-standing"' in page
    assert "已拥有 1 / 50" in page and "今日已领取 1 / 20" in page
    manager = app.test_client()
    _login(manager, "boss")
    assert b'data-testid="claim-standing"' not in manager.get("/pool").data


@pytest.mark.parametrize("rule", ["limit", "daily_limit"])
def test_a_refused_claim_keeps_the_row_and_says_the_real_numbers(app, client, world, rule):
    """The row stays with its Claim button and the refusal beside it; the message
    counts what the user has (3), not the limit (1 or 2)."""
    with app.app_context():
        admin = accounts.create_user("root", TEST_PASSWORD, "admin")
        boss, desk, wang = (accounts.get_by_username(n) for n in ("boss", "desk", "wang"))
        extra = [customers.create_customer(desk, CustomerData(name=f"公海{n}")).id for n in range(3)]
        if rule == "limit":
            pool.assign_customers(boss, extra, wang.id)
            settings.update(admin, {"pool.max_owned": 1})
        else:
            for customer_id in extra:
                pool.claim_customer(wang, customer_id)
            settings.update(admin, {"pool.max_daily_claims": 2})
        db.session.commit()
    _login(client, "wang")
    refused = client.post(f"/pool/{world['pool']}/claim", headers=HX, data={"from": "list"})
    assert refused.status_code == 422
    text = refused.data.decode()
    assert text.lstrip().startswith(f'<td id="pool-claim-{world["pool"]}"')
    assert 'data-testid="claim-row"' in text and 'data-testid="claim-refusal"' in text
    expected = ("You own 3 customers; the limit is 1." if rule == "limit"
                else "You have claimed 3 customers today; the most per day is 2.")
    assert expected in text and expected in refused.headers["HX-Trigger"]
    assert 'id="claim-standing"' in text
    with app.app_context():
        assert db.session.get(Customer, world["pool"]).owner_id is None


def test_release_other_without_text_keeps_the_form_open(client, world):
    _login(client, "li")
    refused = client.post(f"/customers/{world['li']}/release", headers=HX,
                          data={"reason": "other", "reason_text": "   "})
    assert refused.status_code == 422 and "HX-Trigger" not in refused.headers
    text = refused.data.decode()
    assert '<details class="release-box" open>' in text
    assert '<option value="other" selected>' in text
    assert 'id="release-text-error"' in text and "Say why." in text
    assert 'aria-describedby="release-text-error"' in text
    missing = client.post(f"/customers/{world['li']}/release", headers=HX,
                          data={"reason": "", "reason_text": "见面再谈"})
    assert missing.status_code == 422
    assert 'id="release-reason-error"' in missing.data.decode() and 'value="见面再谈"' in missing.data.decode()


def _release(client, customer_id):
    response = client.post(f"/customers/{customer_id}/release", headers=HX, data={"reason": "no_need"})
    assert response.status_code == 200
    return response


def test_release_offers_undo_which_restores_owner_and_clock(app, client, world):
    with app.app_context():
        li = accounts.get_by_username("li")
        customer = db.session.get(Customer, world["li"])
        pool.set_recycle_lock(li, customer, True)
        db.session.commit()
        owned_since = customer.owned_since
    _login(client, "li")
    released = _release(client, world["li"])
    toast = json.loads(released.headers["HX-Trigger"])["toast"]
    assert toast["undo"] == f"/customers/{world['li']}/release/undo"
    undone = client.post(toast["undo"], headers=HX)
    assert undone.status_code == 204 and undone.headers.get("HX-Refresh") == "true"
    with app.app_context():
        customer = db.session.get(Customer, world["li"])
        assert customer.owner.username == "li" and customer.owned_since == owned_since
        assert customer.recycle_locked is True and customer.pool_reason == ""
        kinds = [e.kind for e in db.session.scalars(select(PoolEvent).where(PoolEvent.customer_id == world["li"])
                                                    .order_by(PoolEvent.id))]
        assert kinds[-2:] == ["release", "release_undone"]
        assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "pool.release_undone")) is not None
    assert client.post(toast["undo"], headers=HX).status_code == 204  # nothing left to undo: refused
    with app.app_context():
        assert db.session.get(Customer, world["li"]).owner.username == "li"


def test_undo_release_refusals(app, client, world):
    """Someone else, a claim in between, or too late: refused with a message, nothing changes."""
    _login(client, "li")
    undo = f"/customers/{world['li']}/release/undo"
    _release(client, world["li"])
    other = app.test_client()
    other.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    _login(other, "wang")
    wrong_user = other.post(undo, headers=HX)
    assert wrong_user.status_code == 204 and "Only the one who released" in wrong_user.headers["HX-Trigger"]
    with app.app_context():
        assert db.session.get(Customer, world["li"]).owner_id is None
        event = db.session.scalars(select(PoolEvent).where(PoolEvent.customer_id == world["li"])
                                   .order_by(PoolEvent.id.desc())).first()
        event.at = event.at - timedelta(seconds=pool.RELEASE_UNDO_SECONDS + 1)
        db.session.commit()
    too_late = client.post(undo, headers=HX)
    assert "Too late to undo" in too_late.headers["HX-Trigger"]
    with app.app_context():
        assert db.session.get(Customer, world["li"]).owner_id is None
        customer = customers.create_customer(accounts.get_by_username("li"), CustomerData(name="又一个"))
        db.session.commit()
        second = customer.id
    _release(client, second)
    assert other.post(f"/pool/{second}/claim", headers=HX).status_code == 200
    # Claimed meanwhile by a colleague: li may no longer see the customer at all.
    assert client.post(f"/customers/{second}/release/undo", headers=HX).status_code == 404
    with app.app_context():
        assert db.session.get(Customer, second).owner.username == "wang"
        with pytest.raises(pool.PoolRefusal) as refused:  # and the rule itself, for a manager's view
            pool.undo_release(accounts.get_by_username("li"), db.session.get(Customer, second))
        assert refused.value.code == "changed"


def test_customer_page_shows_countdown_and_release(app, client, world):
    _login(client, "li")
    page = client.get(f"/customers/{world['li']}").data.decode()
    assert 'data-testid="recycle-clock"' in page and "Returns to the pool in 30 days" in page
    refused = client.post(f"/customers/{world['li']}/release", headers=HX, data={"reason": ""})
    assert refused.status_code == 422
    released = client.post(f"/customers/{world['li']}/release", headers=HX, data={"reason": "no_need"})
    assert released.status_code == 200 and b'data-testid="claim"' in released.data
    with app.app_context():
        assert db.session.get(Customer, world["li"]).owner_id is None


@pytest.mark.parametrize("headers", [{}, HX])
def test_claiming_a_customer_outside_the_pool_is_404_like_an_unknown_id(app, client, world, headers):
    """Claiming ids one after another must not map customers to owners: an owned
    customer (unless claimed seconds ago: a real race), an archived pool customer
    and an unknown id all answer the same 404."""
    with app.app_context():
        boss = accounts.get_by_username("boss")
        archived = customers.create_customer(boss, CustomerData(name="归档公海"))
        customers.archive(boss, archived)
        db.session.commit()
        archived_id = archived.id
    _login(client, "wang")
    for customer_id in (world["li"], archived_id, 999999):
        response = client.post(f"/pool/{customer_id}/claim", headers=headers, data={"from": "list"})
        assert response.status_code == 404, customer_id
        assert b"li" not in response.headers.get("HX-Trigger", "").encode()
        assert b"Already claimed" not in response.data and b"not in the public pool" not in response.data
    with app.app_context():
        assert db.session.get(Customer, world["li"]).owner.username == "li"
        assert db.session.get(Customer, archived_id).owner_id is None


def test_foreign_customer_pool_actions_are_404(client, world):
    _login(client, "wang")
    for path in ("release", "lock"):
        response = client.post(f"/customers/{world['li']}/{path}", headers=HX, data={"reason": "no_need"})
        assert response.status_code == 404
    assert client.post(f"/customers/{world['li']}/assign", headers=HX).status_code == 403


def test_lock_and_assign(app, client, world):
    _login(client, "li")
    locked = client.post(f"/customers/{world['li']}/lock", headers=HX, data={"locked": "1"})
    assert b"Locked: never recycled" in locked.data
    manager = app.test_client()
    manager.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    _login(manager, "boss")
    with app.app_context():
        wang_id = accounts.get_by_username("wang").id
    assigned = manager.post(f"/customers/{world['pool']}/assign", headers=HX, data={"to_user_id": wang_id})
    assert assigned.status_code == 200 and b"Assigned to wang" not in assigned.data
    assert "Assigned to wang" in assigned.headers["HX-Trigger"]
    with app.app_context():
        events = [e.kind for e in db.session.scalars(
            select(PoolEvent).where(PoolEvent.customer_id == world["pool"]).order_by(PoolEvent.id))]
        assert events == ["create_in_pool", "assign"]


def test_bulk_assign_respects_limit(app, client, world):
    with app.app_context():
        admin = accounts.create_user("root", TEST_PASSWORD, "admin")
        settings.update(admin, {"pool.max_owned": 1})
        desk = accounts.get_by_username("desk")
        extra = customers.create_customer(desk, CustomerData(name="另一个公海客户")).id
        db.session.commit()
        wang_id = accounts.get_by_username("wang").id
    _login(client, "boss")
    refused = client.post("/pool/assign", headers=HX,
                          data={"customer_id": [world["pool"], extra], "to_user_id": wang_id})
    assert refused.status_code == 204 and "error" in refused.headers["HX-Trigger"]
    done = client.post("/pool/assign", headers=HX, data={"customer_id": [world["pool"], extra],
                                                          "to_user_id": wang_id, "override": "1"})
    assert done.headers["HX-Redirect"] == "/pool"
    with app.app_context():
        assert pool.owned_count(wang_id) == 2


@pytest.mark.parametrize("handover_to", ["pool", "colleague"])
def test_deactivation_hands_customers_over(app, client, world, handover_to):
    with app.app_context():
        accounts.create_user("root", TEST_PASSWORD, "admin")
        db.session.commit()
        li, wang = accounts.get_by_username("li"), accounts.get_by_username("wang")
        li_id, wang_id = li.id, wang.id
    _login(client, "root")
    ask = client.post(f"/admin/users/{li_id}/active", headers=HX, data={"active": "0"})
    assert b'data-testid="handover"' in ask.data
    with app.app_context():
        assert accounts.get_by_username("li").active  # nothing happened yet
    target = "" if handover_to == "pool" else str(wang_id)
    done = client.post(f"/admin/users/{li_id}/active", headers=HX, data={"active": "0", "handover_to": target})
    assert done.status_code == 200 and b"Deactivated" in done.data
    with app.app_context():
        customer = db.session.get(Customer, world["li"])
        assert customer.owner_id == (None if handover_to == "pool" else wang_id)
        kinds = [e.kind for e in db.session.scalars(select(PoolEvent).where(PoolEvent.customer_id == world["li"]))]
        assert kinds[-1] == "handover"
        assert not accounts.get_by_username("li").active


def test_handover_to_an_unsuitable_colleague_is_refused(app, client, world):
    with app.app_context():
        accounts.create_user("root", TEST_PASSWORD, "admin")
        db.session.commit()
        li_id, desk_id = accounts.get_by_username("li").id, accounts.get_by_username("desk").id
    _login(client, "root")
    refused = client.post(f"/admin/users/{li_id}/active", headers=HX, data={"active": "0", "handover_to": desk_id})
    assert refused.status_code == 422
    with app.app_context():
        assert accounts.get_by_username("li").active
        assert db.session.get(Customer, world["li"]).owner_id == li_id


def test_customer_list_shows_the_countdown(client, world):
    _login(client, "li")
    page = client.get("/customers?owner=mine", headers=HX).data.decode()
    assert "李的客户" in page and "30 days" in page


def test_manager_sees_bulk_assign_controls_sales_does_not(client, app, world):
    _login(client, "boss")
    page = client.get("/pool").data.decode()
    assert 'id="bulk-assign"' in page and 'form="bulk-assign"' in page
    seller = app.test_client()
    _login(seller, "wang")
    assert 'id="bulk-assign"' not in seller.get("/pool").data.decode()


@pytest.mark.parametrize("handover_to", ["pool", "colleague"])
def test_deactivation_hands_open_follow_ups_over_with_the_customers(app, client, world, handover_to):
    """Open follow-ups go to the colleague who takes the customers, or to the
    manager handing over when the customers go to the pool; done ones stay; the
    hand-over's audit line names them."""
    from datetime import date, timedelta

    from models import AuditEvent, FollowUpTask
    from services import tasks

    with app.app_context():
        boss, li = accounts.create_user("root", TEST_PASSWORD, "admin"), accounts.get_by_username("li")
        customer = db.session.get(Customer, world["li"])
        due = date.today() + timedelta(days=3)
        open_ids = [tasks.create_task(li, customer, due_date=due, title=title).id for title in ("回电", "报价")]
        done = tasks.create_task(li, customer, due_date=due, title="已完成")
        tasks.complete(li, done)
        db.session.commit()
        boss_id, li_id, wang_id, done_id = boss.id, li.id, accounts.get_by_username("wang").id, done.id
    _login(client, "root")
    target = "" if handover_to == "pool" else str(wang_id)
    response = client.post(f"/admin/users/{li_id}/active", headers=HX, data={"active": "0", "handover_to": target})
    assert response.status_code == 200
    with app.app_context():
        new_assignee = boss_id if handover_to == "pool" else wang_id
        assert [db.session.get(FollowUpTask, i).assignee_id for i in open_ids] == [new_assignee] * 2
        assert db.session.get(FollowUpTask, done_id).assignee_id == li_id
        line = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "user.handover")).one()
        assert line.details["tasks"] == open_ids and line.details["customers"] == 1


def test_deactivating_a_user_without_customers_hands_their_follow_ups_to_the_admin(app, client, world):
    from datetime import date

    from models import FollowUpTask
    from services import tasks

    with app.app_context():
        wang = accounts.get_by_username("wang")
        task_id = tasks.create_task(wang, db.session.get(Customer, world["pool"]), due_date=date.today(),
                                    title="公海回访").id
        wang_id, boss_id = wang.id, accounts.create_user("root", TEST_PASSWORD, "admin").id
        db.session.commit()
    _login(client, "root")
    assert client.post(f"/admin/users/{wang_id}/active", headers=HX, data={"active": "0"}).status_code == 200
    with app.app_context():
        assert db.session.get(FollowUpTask, task_id).assignee_id == boss_id
        assert not db.session.get(type(accounts.get_by_username("wang")), wang_id).active
