"""Malformed and out-of-range ids never reach the database (issue 15 item 10).

Every route with an id in its path answers 404 for an id that cannot exist, to every
role; every id, id list, paging cursor and page number in a query string or form is
ignored or refused (400/404/422), never a 500. The routes come from the URL map, so a
new route is swept without editing this file. The columns are 32-bit integers on
PostgreSQL, so an id past 2**31 - 1 used to be an "integer out of range" error there.
"""

from __future__ import annotations

import re
import urllib.parse
from datetime import date, timedelta

import pytest

from blueprints.converters import up_to
from extensions import db
from models import Mention, User
from services import customers, ids, note_templates, notes, tags, tasks
from services.customers import CustomerData
from services.note_templates import TemplateData
from services.notes import NoteData
from tests.conftest import login

# Zero, negative, past 64 bits, past any integer column, a superscript two (which
# str.isdigit() accepts and int() refuses), words, an Arabic-Indic three (which both
# str.isdigit() and int() accept), and 2**31, one past PostgreSQL's INTEGER.
BAD_IDS = ["0", "-1", str(2**63), "9" * 20, "²", "abc", "٣", str(2**31)]
ROLES = ("admin", "sales")
HX = {"HX-Request": "true"}

# <converter(args):name> or <name> in a rule's pattern.
PLACEHOLDER = re.compile(r"<(?:(?P<converter>\w+)(?:\([^>]*\))?:)?(?P<name>\w+)>")


def _rules_with_arguments(app):
    return [rule for rule in app.url_map.iter_rules() if rule.arguments and rule.endpoint != "static"]


def _methods(rule) -> list[str]:
    return sorted(rule.methods & {"GET", "POST"})


def _path(rule, values: dict[str, str]) -> str:
    """The rule's path with each placeholder replaced by its (URL-quoted) value."""
    return PLACEHOLDER.sub(lambda m: urllib.parse.quote(values[m["name"]], safe=""), rule.rule)


@pytest.fixture
def world(app, make_user):
    """One of everything an id can name, owned by a salesperson: customer, note,
    task, tag group, tag, template, mention; plus an admin and the salesperson.
    A 500 is collected as a status (its traceback logged), not raised, so one sweep
    reports every failing case at once."""
    app.config["PROPAGATE_EXCEPTIONS"] = False
    people = {"admin": make_user("admin"), "sales": make_user("sales")}
    with app.app_context():
        admin = db.session.get(User, people["admin"].id)
        sales = db.session.get(User, people["sales"].id)
        customer = customers.create_customer(sales, CustomerData(name="王小明"))
        other = customers.create_customer(sales, CustomerData(name="赵四"))
        note = notes.create_note(
            sales, customer, NoteData(kind="call", body=f"@{people['admin'].username} 回电")
        ).note
        task = tasks.create_task(sales, customer, due_date=date.today() + timedelta(days=1), title="回访")
        group = tags.create_group(admin, "行业")
        tag = tags.create_tag(admin, group.id, "制造")
        template = note_templates.create_template(admin, TemplateData(name="首次拜访"))
        db.session.commit()
        mention = db.session.scalar(db.select(Mention))
        ids = {"customer_id": customer.id, "other_id": other.id, "note_id": note.id,
               "task_id": task.id, "group_id": group.id, "tag_id": tag.id,
               "template_id": template.id, "user_id": people["sales"].id, "mention_id": mention.id}
    return {**people, "ids": {name: str(value) for name, value in ids.items()}}


def _sign_in(client, user) -> None:
    assert login(client, user.username).status_code == 303


# ---- ids in paths -------------------------------------------------------------------------

def test_the_sweep_sees_the_routes_it_must(app):
    """A guard on the sweep itself: it finds the id routes of every blueprint."""
    endpoints = {rule.endpoint for rule in _rules_with_arguments(app)}
    assert {"customers.detail", "notes.show", "tasks.show", "tags.tag_row", "tags.group_head",
            "admin.edit_user", "notes.edit_template", "notes.mention_read", "pool.claim"} <= endpoints


def test_every_id_in_a_path_uses_the_id_converter(app):
    """One converter decides what an id in a URL may be; ``<int:…>`` would let
    '٣' and 20-digit numbers through to the database."""
    offenders = [
        (rule.rule, match["converter"])
        for rule in _rules_with_arguments(app)
        for match in PLACEHOLDER.finditer(rule.rule)
        if match["converter"] != "id"
    ]
    assert offenders == []


@pytest.mark.parametrize("role", ROLES)
def test_a_malformed_id_in_any_path_is_not_found(app, client, world, role):
    """Every rule × every id argument × every bad value × GET/POST (the rule's own
    methods): 404, whatever the role (routing refuses it before any view runs, so
    plain and htmx requests are alike here)."""
    _sign_in(client, world[role])
    failures = []
    for rule in _rules_with_arguments(app):
        good = {name: world["ids"].get(name, "1") for name in rule.arguments}
        for name in rule.arguments:
            for bad in BAD_IDS:
                path = _path(rule, {**good, name: bad})
                for method in _methods(rule):
                    status = client.open(path, method=method).status_code
                    if status != 404:
                        failures.append((method, path, status))
    assert failures == []


@pytest.mark.parametrize("maximum", [1, 7, 9, 10, 99, 100, 305, 1000, 2024])
def test_the_id_pattern_admits_exactly_one_to_the_maximum(maximum):
    pattern = re.compile(rf"{up_to(maximum)}\Z")
    assert [n for n in range(maximum * 11) if pattern.match(str(n))] == list(range(1, maximum + 1))
    assert not pattern.match("0" + str(maximum))  # no leading zeros: one URL per id


def test_the_id_pattern_at_the_column_bound():
    pattern = re.compile(rf"{up_to(ids.MAX_ID)}\Z")
    for text in ("1", "999999999", "1000000000", "2147483646", "2147483647"):
        assert pattern.match(text), text
    for text in ("0", "2147483648", "2199999999", "9999999999", "21474836470", "٣", "²"):
        assert not pattern.match(text), text


def test_the_converter_accepts_real_ids_and_builds_their_urls(app, client, world):
    """The other side: a valid id still finds its object, and url_for builds the path."""
    _sign_in(client, world["admin"])
    customer_id = world["ids"]["customer_id"]
    assert client.get(f"/customers/{customer_id}").status_code == 200
    assert client.get(f"/tags/{world['ids']['tag_id']}").status_code == 200
    with app.test_request_context():
        from flask import url_for

        assert url_for("customers.detail", customer_id=int(customer_id)) == f"/customers/{customer_id}"


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("headers", [{}, HX], ids=["plain", "htmx"])
def test_every_route_with_real_ids_answers_without_a_server_error(app, client, world, role, headers):
    """The same rules with ids that exist and an empty form, plain and htmx: a plain
    form post must not render a page without its context (archive and a refused
    purge used to, a 500 after saving)."""
    _sign_in(client, world[role])
    failures = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in ("static", "auth.logout"):
            continue
        path = _path(rule, {name: world["ids"].get(name, "1") for name in rule.arguments})
        for method in _methods(rule):
            status = client.open(path, method=method, headers=headers).status_code
            if status >= 500:
                failures.append((method, path, status))
    assert failures == []


# ---- ids, id lists, cursors and pages in query strings and forms -------------------------

# Every name under which a view reads an id, a list of ids, a cursor or a page number.
ID_ARGUMENTS = (
    "tag", "owner", "exclude", "before", "page", "author", "assignee", "user", "customer",
    "template_id", "customer_id", "to_user_id", "drop_id", "handover_to", "tags", "tag_ids",
    "assignee_id", "target_id", "days",
)


def _query(bad: str) -> str:
    # ?tag=bad&tag=bad: lists see the value twice; the cursor form "stamp,id" too.
    pairs = [(name, bad) for name in ID_ARGUMENTS] + [("tag", bad), ("before", f"2026-01-01T00:00:00,{bad}")]
    return urllib.parse.urlencode(pairs)


@pytest.mark.parametrize("role", ROLES)
def test_malformed_id_arguments_of_every_page_are_ignored_or_refused(app, client, world, role):
    """Every GET rule (path ids filled with real ones) × every bad value in every
    id-like argument at once, as a page and as an htmx fragment by turns: never a
    server error."""
    _sign_in(client, world[role])
    failures = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or "GET" not in rule.methods:
            continue
        path = _path(rule, {name: world["ids"].get(name, "1") for name in rule.arguments})
        for turn, bad in enumerate(BAD_IDS):
            headers = HX if turn % 2 else {}
            status = client.get(f"{path}?{_query(bad)}", headers=headers).status_code
            if status >= 500:
                failures.append((path, bad, bool(headers), status))
    assert failures == []


# Forms that carry ids besides the path's: (path template, fixed fields, the id field).
FORM_IDS = [
    ("/pool/assign", {"to_user_id": "{user_id}"}, "customer_id"),
    ("/pool/assign", {"customer_id": "{customer_id}"}, "to_user_id"),
    ("/customers/{customer_id}/assign", {}, "to_user_id"),
    ("/customers/{customer_id}/merge", {}, "drop_id"),
    ("/admin/users/{user_id}/active", {"active": "0"}, "handover_to"),
    ("/customers/{customer_id}/notes", {"kind": "call", "body": "回电"}, "tags"),
    ("/customers/{customer_id}/notes", {"kind": "call", "body": "回电"}, "template_id"),
    ("/notes/{note_id}/edit", {"kind": "call", "body": "回电"}, "tags"),
    ("/customers/{customer_id}/tasks", {"title": "回访", "due_date": "2099-01-01"}, "assignee_id"),
    ("/tasks/{task_id}/reassign", {}, "assignee_id"),
    ("/customers/new", {"name": "新客户", "mobile": "13800138000"}, "owner_id"),
    ("/customers/new", {"name": "新客户", "mobile": "13800138001"}, "tag_ids"),
    ("/customers/{customer_id}/edit", {"name": "王小明"}, "tag_ids"),
    ("/tags/{tag_id}/merge", {}, "target_id"),
]


def test_malformed_ids_in_forms_are_refused(app, client, world):
    """Each id field of a form × every bad value (once, and twice as a list), as the
    admin, who may post every form: refused or ignored, never a server error."""
    _sign_in(client, world["admin"])
    failures = []
    for path, fields, name in FORM_IDS:
        data = {key: value.format(**world["ids"]) for key, value in fields.items()}
        for bad in BAD_IDS:
            for values in ([bad], [bad, bad]):
                response = client.post(path.format(**world["ids"]), data={**data, name: values}, headers=HX)
                if response.status_code >= 500:
                    failures.append((path, name, bad, response.status_code))
    assert failures == []


def test_bulk_assign_as_sales_is_refused_whatever_the_ids(app, client, world):
    _sign_in(client, world["sales"])
    for bad in BAD_IDS:
        response = client.post("/pool/assign", data={"customer_id": [bad], "to_user_id": bad})
        assert response.status_code == 403


def test_the_customer_notes_cursor_with_a_bad_id_is_a_bad_request(app, client, world):
    _sign_in(client, world["sales"])
    path = f"/customers/{world['ids']['customer_id']}/notes"
    for bad in BAD_IDS:
        assert client.get(path, query_string={"before": f"2026-01-01T00:00:00,{bad}"}).status_code == 400
    assert client.get(path, query_string={"before": "2026-01-01T00:00:00,5"}).status_code == 200
