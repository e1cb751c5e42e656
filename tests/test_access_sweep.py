"""Acceptance sweep: every route that names a customer, note or task (read from the
URL map, so new routes are covered), each method, plain and htmx, given an id the
user may not know — another salesperson's customer (or its note or task), an
archived customer's — answers 404, or 403 where the refusal says nothing of the
object (the same answer as for an id that does not exist); never 200 with content,
never 500."""

import re
from datetime import date, timedelta

import pytest

from extensions import db
from services import accounts, customers, notes, tasks
from services.customers import CustomerData
from services.notes import NoteData
from tests.conftest import TEST_PASSWORD, login

HX = {"HX-Request": "true"}
ID_ARGS = {"customer_id": "customer", "note_id": "note", "task_id": "task"}
MISSING = {"customer": 2_000_000_000, "note": 2_000_000_000, "task": 2_000_000_000}
SECRETS = ("secret@example.com", "机密地址", "机密备注", "机密跟进")


def _sheet(owner, manager, *, archived=False):
    """A customer of ``owner`` with a note and a task; archived by ``manager``."""
    customer = customers.create_customer(owner, CustomerData(
        name="被查客户", phones=[("mobile", "13700137000")], email="secret@example.com", address="机密地址"),
        acknowledge_duplicates=True)
    note = notes.create_note(owner, customer, NoteData(kind="call", body="机密备注")).note
    task = tasks.create_task(owner, customer, due_date=date.today() + timedelta(days=3), title="机密跟进")
    if archived:
        customers.archive(manager, customer)
    return {"customer": customer.id, "note": note.id, "task": task.id}


@pytest.fixture
def office(app):
    with app.app_context():
        people = {name: accounts.create_user(name, TEST_PASSWORD, role) for name, role in
                  [("s1", "sales"), ("s2", "sales"), ("desk", "frontdesk"), ("boss", "manager")]}
        sheets = {"foreign": _sheet(people["s2"], people["boss"]),
                  "archived": _sheet(people["s1"], people["boss"], archived=True)}
        db.session.commit()
        return sheets


def _routes(app):
    """(rule, method, kind of id) for every rule with exactly one customer, note or
    task id among its arguments."""
    found = []
    for rule in app.url_map.iter_rules():
        args = rule.arguments & set(ID_ARGS)
        if len(args) != 1 or rule.arguments - args:
            continue
        (arg,) = args
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            found.append((rule, method, ID_ARGS[arg]))
    return found


def _url(rule, value) -> str:
    return re.sub(r"<(?:[^:<>]+:)?[a-z_]+>", str(value), rule.rule)


def _call(client, method, url, headers):
    return client.open(url, method=method, headers=headers, data={})


def _sweep(app, client, user, ids, kinds, headers):
    assert login(client, user).status_code == 303
    routes = [route for route in _routes(app) if route[2] in kinds]
    assert len(routes) >= 20 if "customer" in kinds else len(routes) >= 5  # the map was read
    wrong = []
    for rule, method, kind in routes:
        response = _call(client, method, _url(rule, ids[kind]), headers)
        missing = _call(client, method, _url(rule, MISSING[kind]), headers)
        text = response.get_data(as_text=True)
        if response.status_code not in (403, 404) or response.status_code != missing.status_code:
            wrong.append((method, rule.rule, response.status_code, missing.status_code))
        elif any(secret in text for secret in SECRETS):
            wrong.append((method, rule.rule, "shows a secret"))
    return wrong


@pytest.mark.parametrize("headers", [{}, HX], ids=["plain", "htmx"])
@pytest.mark.parametrize("sheet", ["foreign", "archived"])
def test_sales_gets_nothing_of_another_salespersons_or_an_archived_customer(app, client, office, sheet, headers):
    assert _sweep(app, client, "s1", office[sheet], {"customer", "note", "task"}, headers) == []


@pytest.mark.parametrize("headers", [{}, HX], ids=["plain", "htmx"])
def test_front_desk_gets_nothing_of_others_notes_and_tasks_or_archived_customers(app, client, office, headers):
    assert _sweep(app, client, "desk", office["foreign"], {"note", "task"}, headers) == []
    assert _sweep(app, client, "desk", office["archived"], {"customer", "note", "task"}, headers) == []


@pytest.mark.parametrize("headers", [{}, HX], ids=["plain", "htmx"])
def test_front_desk_sees_only_the_basic_card_of_any_customer(app, client, office, headers):
    """Front desk looks up every customer's card: some routes answer, none with a
    hidden field, a note or a task, and none with a 500."""
    assert login(client, "desk").status_code == 303
    wrong = []
    for rule, method, kind in _routes(app):
        if kind != "customer":
            continue
        response = _call(client, method, _url(rule, office["foreign"]["customer"]), headers)
        text = response.get_data(as_text=True)
        if response.status_code >= 500 or any(secret in text for secret in SECRETS):
            wrong.append((method, rule.rule, response.status_code))
    assert wrong == []
