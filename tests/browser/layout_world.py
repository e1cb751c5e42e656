"""A small office for the layout, accessibility and print tests: one user of each
role, a pool with long company names and tags, a salesperson with a dozen customers
about to be recycled and a few overdue follow-ups, a customer with notes, and the
main pages each role may open."""

from __future__ import annotations

import secrets
from datetime import timedelta
from types import SimpleNamespace

from extensions import db
from models import Customer, User, utcnow
from services import accounts, customers, notes, pool, tags, tasks
from services.customers import CustomerData
from services.notes import NoteData
from tests.conftest import TEST_PASSWORD

ROLES = ("sales", "manager", "frontdesk", "admin")
COMPANIES = ["北京新格林耐特信息技术有限公司", "Gonzalez, Pratt and Richardson International Holdings Ltd",
             "上海联软世纪传媒集团股份有限公司", ""]


def build_office(app) -> SimpleNamespace:
    run = secrets.token_hex(2)
    with app.app_context():
        people = {role: accounts.create_user(f"layout-{role}-{run}", TEST_PASSWORD, role,
                                             display_name=f"{role.title()} 王小明{run}")
                  for role in ROLES}
        admin, desk, sales = people["admin"], people["frontdesk"], people["sales"]
        group = tags.create_group(admin, f"行业{run}", "blue")
        tag_ids = [tags.create_tag(admin, group.id, f"{word}{run}").id for word in ("制造业", "互联网", "定制开发")]
        made = []
        for n in range(30):
            customer = customers.create_customer(desk, CustomerData(
                name=f"版面客户{run}{n:02d}", company=COMPANIES[n % len(COMPANIES)], region="深圳市南山区",
                phones=[("mobile", f"138{n:04d}{int(run, 16) % 10000:04d}")]), acknowledge_duplicates=True)
            customers.set_tags(admin, customer, tag_ids[: n % 4])
            made.append(customer)
        owned = made[:12]
        pool.assign_customers(people["manager"], [c.id for c in owned], sales.id)
        db.session.flush()
        for n, customer in enumerate(owned):
            # Three are due at the next sweep (tonight's batch has rows), the rest soon.
            customer.owned_since = utcnow() - timedelta(days=31 if n >= 9 else 28)
            tasks.create_task(sales, customer, due_date=(utcnow() - timedelta(days=2)).date(),
                              title="回访客户，确认报价与交付时间")
        card = owned[0]
        bodies = ("客户来电咨询CRM系统的价格，已发送报价单。", "Discussed the renewal; the customer wants a discount.")
        for body in bodies:
            notes.create_note(sales, card, NoteData(kind="call", body=body))
        db.session.commit()
        users = {role: SimpleNamespace(id=u.id, username=u.username, display_name=u.display_name)
                 for role, u in people.items()}
        return SimpleNamespace(users=users, card_id=card.id, pool_name=made[20].name, run=run)


def main_pages(office) -> dict[str, list[str]]:
    """The main pages of each role (what its navigation leads to)."""
    common = ["/", "/customers", f"/customers/{office.card_id}", f"/search?q={office.pool_name[:4]}"]
    return {
        "sales": common + ["/pool", "/tasks", "/notes"],
        "manager": common + ["/pool", "/tasks", "/notes", "/notes/quality", "/tags", "/pool/events", "/pool/recycling"],
        "frontdesk": common,
        "admin": common + ["/pool", "/notes", "/tags", "/admin/users", "/admin/audit", "/admin/settings",
                           "/note-templates", "/pool/events", "/pool/recycling"],
    }


def sign_in_context(browser, base_url: str, username: str, **options):
    """A guarded context signed in as ``username``; returns (context, guard)."""
    from tests.browser.conftest import guarded_context

    context, guard = guarded_context(browser, base_url, **options)
    context.set_default_timeout(10000)
    page = context.new_page()
    page.goto("/login")
    form = page.locator("main form")
    form.locator("[name=username]").fill(username)
    form.locator("[name=password]").fill(TEST_PASSWORD)
    form.locator("button[type=submit]").click()
    page.wait_for_url(base_url + "/")
    page.close()
    return context, guard


def owner_of(app, customer_id: int) -> int | None:
    with app.app_context():
        return db.session.get(Customer, customer_id).owner_id


def user(app, user_id: int) -> User:
    return db.session.get(User, user_id)
