"""The public pool's admin side: settings (P8), pool events and weekly flows (P6, R1),
tonight's recycling batch and the missing-cron banner (P5)."""

from datetime import date, datetime, timedelta

import pytest
from flask import render_template
from flask_login import login_user
from sqlalchemy import select

from extensions import db
from models import AuditEvent, Customer, PoolEvent, User, utcnow
from services import pool, pool_stats, settings
from services.settings import SPECS
from tests.factories import make_customer

HX = {"HX-Request": "true"}
PAGES = ["/admin/settings", "/pool/events", "/pool/recycling"]


def _user(user) -> User:
    return db.session.get(User, user.id)


def _customer(actor, name, **fields) -> Customer:
    return make_customer(_user(actor), name, **fields)


def _make_due(customer: Customer, days: int = 40) -> None:
    customer.owned_since = utcnow() - timedelta(days=days)
    db.session.commit()


def _settings_form(**overrides) -> dict:
    """The settings form as a browser posts it: defaults, unchecked boxes absent."""
    form = {}
    for key, spec in SPECS.items():
        name = key.replace(".", "__")
        value = overrides.get(name, spec.default)
        if isinstance(value, bool):
            if value:
                form[name] = "y"
        elif value is not None:
            form[name] = value if isinstance(value, list) else str(value)
    return form


# ---- who may open what --------------------------------------------------------------

@pytest.mark.parametrize("headers", [{}, HX], ids=["page", "fragment"])
@pytest.mark.parametrize("role", ["sales", "frontdesk"])
def test_sales_and_front_desk_are_refused_everything(client, login_as, role, headers):
    login_as(role)
    for url in PAGES:
        assert client.get(url, headers=headers).status_code == 403, url
    assert client.post("/admin/settings", data=_settings_form(), headers=headers).status_code == 403


@pytest.mark.parametrize("headers", [{}, HX], ids=["page", "fragment"])
def test_managers_see_history_and_batch_but_not_settings(client, login_as, headers):
    login_as("manager")
    assert client.get("/pool/events", headers=headers).status_code == 200
    assert client.get("/pool/recycling", headers=headers).status_code == 200
    assert client.get("/admin/settings", headers=headers).status_code == 403
    assert client.post("/admin/settings", data=_settings_form(), headers=headers).status_code == 403


def test_anonymous_is_sent_to_sign_in(client):
    for url in PAGES:
        response = client.get(url)
        assert response.status_code in (302, 303) and "/login" in response.headers["Location"]


# ---- settings -------------------------------------------------------------------------

def test_settings_page_shows_every_setting_with_words(client, login_as):
    login_as("admin")
    html = client.get("/admin/settings").data.decode()
    for key, spec in SPECS.items():
        assert f'data-setting="{key}"' in html and str(spec.label) in html
    assert 'name="pool__max_owned"' in html and 'value="50"' in html and 'min="0"' in html and 'max="100000"' in html
    assert 'type="checkbox"' in html and ">WeChat<" not in html  # labels follow the box
    assert "WeChat" in html and "Deal" in html and "Potential" in html
    fragment = client.get("/admin/settings", headers=HX)
    assert fragment.status_code == 200 and "<html" not in fragment.data.decode()
    assert 'id="settings-form"' in fragment.data.decode() and "HX-Request" in fragment.headers["Vary"]


@pytest.mark.parametrize("headers", [{}, HX], ids=["page", "fragment"])
@pytest.mark.parametrize("overrides, field, message, kept", [
    ({"pool__max_owned": "999999"}, "pool__max_owned", "Enter a whole number from 0 to 100000.", 'value="999999"'),
    ({"pool__recycle_days": "0"}, "pool__recycle_days", "Enter a whole number from 1 to 3650.", 'value="0"'),
    ({"pool__recycle_days": "三十"}, "pool__recycle_days", "Not a valid integer value.", 'value="三十"'),
    ({"pool__warn_days": ""}, "pool__warn_days", "Enter a number.", ""),
    ({"pool__effective_kinds": ["call", "telepathy"]}, "pool__effective_kinds", "not a valid choice", ""),
])
def test_bad_settings_are_refused_next_to_the_field(app, client, login_as, headers, overrides, field, message, kept):
    login_as("admin")
    response = client.post("/admin/settings", data=_settings_form(pool__max_daily_claims="7", **overrides),
                           headers=headers)
    html = response.data.decode()
    assert response.status_code == 422
    error = html.split(f'id="{field}-error"', 1)[1].split("</small>", 1)[0]
    assert message in error
    assert kept in html and 'value="7"' in html  # the typed values are kept
    assert "Nothing was saved" in html
    with app.app_context():
        assert settings.get("pool.max_daily_claims") == 20  # all or nothing
        assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "settings.change")) is None


def test_settings_saved_and_audited_plain_post(app, client, login_as):
    admin = login_as("admin")
    data = _settings_form(pool__max_owned="80", pool__recycle_enabled=False,
                          pool__effective_kinds=["visit", "call"], pool__protected_stages=["deal", "intent"])
    response = client.post("/admin/settings", data=data)
    assert response.status_code == 303 and response.headers["Location"].endswith("/admin/settings")
    page = client.get("/admin/settings").data.decode()
    assert "Settings saved." in page and 'value="80"' in page
    with app.app_context():
        assert settings.get("pool.max_owned") == 80 and settings.get("pool.recycle_enabled") is False
        assert settings.get("pool.effective_kinds") == ["call", "visit"]
        assert settings.get("pool.protected_stages") == ["intent", "deal"]
        line = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "settings.change"))
        assert line.actor_id == admin.id and line.details["pool.max_owned"] == [50, 80]
        assert line.details["pool.recycle_enabled"] == [True, False]


def test_settings_saved_over_htmx_with_a_toast(app, client, login_as):
    login_as("admin")
    response = client.post("/admin/settings", data=_settings_form(pool__warn_days="9"), headers=HX)
    assert response.status_code == 200 and "Settings saved." in response.headers["HX-Trigger"]
    assert 'id="settings-form"' in response.data.decode() and "<html" not in response.data.decode()
    again = client.post("/admin/settings", data=_settings_form(pool__warn_days="9"), headers=HX)
    assert "Nothing changed." in again.headers["HX-Trigger"]
    with app.app_context():
        assert settings.get("pool.warn_days") == 9
        assert len(db.session.scalars(select(AuditEvent).where(AuditEvent.action == "settings.change")).all()) == 1


def test_script_in_a_setting_is_refused_and_shown_inert(client, login_as):
    login_as("admin")
    response = client.post("/admin/settings", data=_settings_form(pool__max_owned='<script>x</script>'))
    assert response.status_code == 422
    assert "<script>x</script>" not in response.data.decode() and "&lt;script&gt;" in response.data.decode()


# ---- pool events ----------------------------------------------------------------------

@pytest.fixture
def history(app, make_user):
    """desk creates A and B in the pool; wang claims A and releases it; li claims B."""
    desk, wang, li = make_user("frontdesk"), make_user("sales", display_name="小王"), make_user("sales")
    with app.app_context():
        a, b = _customer(desk, "客户甲"), _customer(desk, "客户乙")
        pool.claim_customer(_user(wang), a.id)
        pool.release_to_pool(_user(wang), db.session.get(Customer, a.id), "no_need")
        pool.claim_customer(_user(li), b.id)
        db.session.commit()
        return {"wang": wang.id, "li": li.id, "a": a.id, "b": b.id}


def _rows(html: str) -> int:
    return html.count('data-testid="pool-event"')


def test_events_newest_first_and_filters(client, login_as, history):
    login_as("manager")
    html = client.get("/pool/events").data.decode()
    assert _rows(html) == 5 and html.index("客户乙") < html.index("客户甲")
    assert "Pool flows per week" in html and html.count('data-testid="week-') == 12
    assert _rows(client.get("/pool/events?kind=claim").data.decode()) == 2
    mine = client.get(f"/pool/events?user={history['wang']}").data.decode()
    assert _rows(mine) == 2 and "客户乙" not in mine  # claimed (to) and released (from)
    only_b = client.get(f"/pool/events?customer={history['b']}").data.decode()
    assert _rows(only_b) == 2 and "客户甲" not in only_b
    assert _rows(client.get("/pool/events?kind=nonsense&user=x&customer=-1&from=bad").data.decode()) == 5


def test_events_date_range_in_office_days(app, client, login_as, history):
    login_as("manager")
    with app.app_context():
        old = db.session.scalar(select(PoolEvent).where(PoolEvent.kind == "release"))
        old.at = utcnow() - timedelta(days=10)
        db.session.commit()
        day = (old.at + timedelta(hours=8)).date()  # Asia/Shanghai
    assert _rows(client.get(f"/pool/events?from={day}&to={day}").data.decode()) == 1
    assert _rows(client.get(f"/pool/events?from={day + timedelta(days=1)}").data.decode()) == 4
    assert _rows(client.get(f"/pool/events?to={day - timedelta(days=1)}").data.decode()) == 0


def test_events_fragment_swaps_results_only(client, login_as, history):
    login_as("admin")
    response = client.get("/pool/events?kind=release", headers=HX)
    html = response.data.decode()
    assert response.status_code == 200 and "HX-Request" in response.headers["Vary"]
    assert "<html" not in html and "Pool flows per week" not in html and _rows(html) == 1
    assert "No need at the moment" in html
    page = client.get("/pool/events?kind=release").data.decode()
    assert 'hx-target="#pool-event-results"' in page and 'hx-push-url="true"' in page
    assert '<option value="release" selected>' in page
    empty = client.get("/pool/events?kind=recycle", headers=HX).data.decode()
    assert 'data-testid="no-pool-events"' in empty


def test_event_paging_keeps_the_filter(app, history):
    with app.app_context():
        flt = pool_stats.EventFilter(kind="claim")
        first = pool_stats.find_events(flt, page=1, page_size=1)
        second = pool_stats.find_events(flt, page=2, page_size=1)
        assert first.has_more and not second.has_more
        assert first.events[0].customer_id == history["b"] and second.events[0].customer_id == history["a"]
        with app.test_request_context():
            html = render_template("pool_admin/_events.html", found=first, filter_args={"kind": "claim"},
                                   event_labels={})
        assert 'href="/pool/events?page=2&amp;kind=claim"' in html


# ---- weekly flows ---------------------------------------------------------------------

def test_weekly_counts_bucket_iso_weeks_in_office_time(app, make_user):
    desk, wang = make_user("frontdesk"), make_user("sales")
    with app.app_context():
        ids = [_customer(desk, f"客户{n}").id for n in range(4)]
        seller = _user(wang)
        pool.claim_customer(seller, ids[0], now=datetime(2026, 3, 8, 17))  # Mon 9 March 01:00 in Shanghai
        pool.claim_customer(seller, ids[1], now=datetime(2026, 3, 8, 15))  # Sun 8 March 23:00
        pool.release_to_pool(seller, db.session.get(Customer, ids[1]), "no_need", now=datetime(2026, 3, 10, 2))
        pool.claim_customer(seller, ids[2], now=datetime(2026, 1, 5, 2))
        pool.claim_customer(seller, ids[3], now=datetime(2025, 12, 1, 2))  # before the 12 weeks
        recycled = pool.recycle_due_customers(now=datetime(2026, 2, 10, 2))
        db.session.commit()
        assert {c.id for c, _ in recycled} == {ids[2], ids[3]}
        weeks = pool_stats.weekly_counts(12, today=date(2026, 3, 11), timezone="Asia/Shanghai")
    assert len(weeks) == 12 and weeks[0].start == date(2025, 12, 22) and weeks[-1].start == date(2026, 3, 9)
    by_week = {w.label: (w.claim, w.release, w.recycle) for w in weeks}
    assert by_week["2026-W11"] == (1, 1, 0)
    assert by_week["2026-W10"] == (1, 0, 0)
    assert by_week["2026-W07"] == (0, 0, 2)
    assert by_week["2026-W02"] == (1, 0, 0)
    assert sum(w.claim for w in weeks) == 3


# ---- tonight's batch and the banner -----------------------------------------------------

@pytest.fixture
def due(app, make_user):
    """wang owns one due customer, one locked and one in the deal stage (both also old)."""
    wang = make_user("sales", display_name="王销售")
    with app.app_context():
        seller = _user(wang)
        overdue = _customer(wang, "该回收客户")
        locked = _customer(wang, "锁定客户")
        deal = _customer(wang, "成交客户", stage="deal")
        fresh = _customer(wang, "新客户")
        for customer in (overdue, locked, deal):
            _make_due(customer)
        _make_due(fresh, days=10)
        pool.set_recycle_lock(seller, db.session.get(Customer, locked.id), True)
        db.session.commit()
        return overdue.id


def test_recycling_preview_lists_the_due_and_why(client, login_as, due):
    login_as("manager")
    html = client.get("/pool/recycling").data.decode()
    assert html.count('data-testid="due-customer"') == 1
    assert "该回收客户" in html and "王销售" in html and f'href="/customers/{due}"' in html
    assert "锁定客户" not in html and "成交客户" not in html and "新客户" not in html
    assert "No effective follow-up since the owner got the customer" in html
    assert "0 2 * * * cd /srv/deskbook &amp;&amp; .venv/bin/flask --app app pool recycle" in html
    assert "not run yet" in html.split('data-testid="last-sweep"')[1].split("</p>")[0]


def test_recycling_preview_after_the_sweep_and_when_off(app, client, login_as, due):
    admin = login_as("admin")
    with app.app_context():
        pool.recycle_due_customers()
        db.session.commit()
    html = client.get("/pool/recycling", headers=HX).data.decode()
    assert 'data-testid="nothing-due"' in html and "never" not in html
    with app.app_context():
        settings.update(_user(admin), {"pool.recycle_enabled": False})
        db.session.commit()
    assert 'data-testid="recycling-off"' in client.get("/pool/recycling").data.decode()


def _banner(app, user) -> str:
    with app.test_request_context(headers={"Accept-Language": "en"}):
        login_user(_user(user))
        return render_template("pool_admin/_sweep_banner.html")


def test_sweep_banner_until_the_sweep_runs(app, make_user):
    from services import nightly
    from tests.nightly_helpers import make_overdue

    manager, seller = make_user("manager"), make_user("sales")
    assert _banner(app, manager).strip() == ""  # fresh install: no night has passed
    with app.app_context():
        make_overdue("pool_sweep")
    assert "sweep of the public pool is overdue" in _banner(app, manager)
    assert 'href="/pool/recycling"' in _banner(app, manager)
    assert _banner(app, seller).strip() == ""
    with app.app_context():
        assert nightly.run("pool_sweep").ok
    assert _banner(app, manager).strip() == ""


def test_sweep_banner_silent_when_recycling_is_off(app, make_user):
    admin = make_user("admin")
    with app.app_context():
        from tests.nightly_helpers import make_overdue

        make_overdue("pool_sweep")
        settings.update(_user(admin), {"pool.recycle_enabled": False})
        db.session.commit()
    assert _banner(app, admin).strip() == ""
