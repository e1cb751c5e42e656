"""The object rules of the policy module, cell by cell: role × situation → allowed,
straight against ``policy.may`` (no views, no database)."""

import ast
from datetime import timedelta
from pathlib import Path

import pytest

from models import Customer, CustomerNote, FollowUpTask, Role, User, utcnow
from services import policy

ROOT = Path(__file__).resolve().parent.parent
LETTERS = {"A": Role.ADMIN, "M": Role.MANAGER, "S": Role.SALES, "F": Role.FRONTDESK}
# The acting user of each role; the salesperson (3) owns the "own" customers, a second
# salesperson (5) the "foreign" ones.
IDS = {Role.ADMIN: 1, Role.MANAGER: 2, Role.SALES: 3, Role.FRONTDESK: 4}
SALES, OTHER = 3, 5


def _user(role):
    user = User(username=role.value, display_name=role.value, role=role, active=True,
                password_hash="x", session_token=role.value)
    user.id = IDS[role]
    return user


def _customer(owner_id, archived=False):
    customer = Customer(id=10, name="甲", owner_id=owner_id, archived_at=utcnow() if archived else None)
    customer.owner = User(id=owner_id, display_name=f"owner{owner_id}") if owner_id else None
    return customer


CUSTOMERS = {
    "own": lambda: _customer(SALES),
    "foreign": lambda: _customer(OTHER),
    "pool": lambda: _customer(None),
    "own archived": lambda: _customer(SALES, archived=True),
    "foreign archived": lambda: _customer(OTHER, archived=True),
    "pool archived": lambda: _customer(None, archived=True),
}
# action: the roles allowed, per situation in the order of CUSTOMERS.
CUSTOMER_TABLE = {
    "customer.view":         ["AMSF", "AMF", "AMSF", "AM", "AM", "AM"],
    "customer.view_details": ["AMS", "AM", "AMS", "AM", "AM", "AM"],
    "customer.edit":         ["AMS", "AM", "AM", "", "", ""],
    "note.create":           ["AMSF", "AMF", "AMSF", "", "", ""],
    "task.create":           ["AMS", "AM", "AMS", "", "", ""],
    "pool.claim":            ["", "", "S", "", "", ""],
    "pool.release":          ["AMS", "AM", "AM", "", "", ""],
    "pool.lock":             ["AMS", "AM", "AM", "", "", ""],
    "pool.assign":           ["AM", "AM", "AM", "", "", ""],
}


def _cells(table, situations):
    for action, row in table.items():
        for situation, allowed in zip(situations, row, strict=True):
            for letter, role in LETTERS.items():
                yield pytest.param(action, situation, role, letter in allowed,
                                   id=f"{action}-{situation}-{role.value}")


@pytest.mark.parametrize("action,situation,role,expected", list(_cells(CUSTOMER_TABLE, CUSTOMERS)))
def test_customer_rules(action, situation, role, expected):
    assert policy.may(_user(role), action, CUSTOMERS[situation]()) is expected


def _note(user, *, mine=True, owner=SALES, minutes=1, archived=False, deleted=False):
    note = CustomerNote(id=20, author_id=user.id if mine else OTHER, body="x",
                        created_at=utcnow() - timedelta(minutes=minutes),
                        deleted_at=utcnow() if deleted else None)
    note.customer = _customer(owner, archived)
    return note


NOTES = {
    "mine, 1 minute old": {},
    "mine, 20 minutes old": {"minutes": 20},
    "a colleague's, on the salesperson's customer": {"mine": False},
    "a colleague's, on a foreign customer": {"mine": False, "owner": OTHER},
    "mine, on an archived customer": {"archived": True},
    "mine, deleted": {"deleted": True},
}
NOTE_TABLE = {
    "note.read":    ["AMSF", "AMSF", "AMS", "AM", "AM", ""],
    "note.comment": ["AMSF", "AMSF", "AMS", "AM", "", ""],
    "note.edit":    ["AMSF", "AMSF", "AM", "AM", "", ""],
    "note.delete":  ["AMSF", "AM", "AM", "AM", "", ""],
}


@pytest.mark.parametrize("action,situation,role,expected", list(_cells(NOTE_TABLE, NOTES)))
def test_note_rules(action, situation, role, expected):
    user = _user(role)
    assert policy.may(user, action, _note(user, **NOTES[situation])) is expected


def _task(user, *, mine=True, owner=SALES, archived=False):
    task = FollowUpTask(id=30, assignee_id=user.id if mine else OTHER, title="x")
    task.customer = _customer(owner, archived)
    return task


TASKS = {
    "mine, on the salesperson's customer": {},
    "a colleague's, on the salesperson's customer": {"mine": False},
    "mine, on a foreign customer": {"owner": OTHER},
    "mine, on an archived customer": {"archived": True},
}
TASK_TABLE = {
    "task.view":   ["AMSF", "AM", "AMF", "AM"],
    "task.update": ["AMSF", "AM", "AMF", ""],
}


@pytest.mark.parametrize("action,situation,role,expected", list(_cells(TASK_TABLE, TASKS)))
def test_task_rules(action, situation, role, expected):
    user = _user(role)
    assert policy.may(user, action, _task(user, **TASKS[situation])) is expected


@pytest.mark.parametrize("role,fields", [
    (Role.ADMIN, policy.CUSTOMER_FIELDS), (Role.MANAGER, policy.CUSTOMER_FIELDS),
    (Role.SALES, policy.CUSTOMER_FIELDS), (Role.FRONTDESK, policy.BASIC_CARD_FIELDS),
])
def test_visible_fields_per_role(role, fields):
    assert policy.visible_fields(_user(role)) == fields
    assert policy.customer_scope(_user(role)).fields == fields


def test_front_desk_basic_card_is_name_company_phone_owner_last_contact():
    assert {"name", "company", "phones", "owner", "last_contact"} == policy.BASIC_CARD_FIELDS


def test_visible_fields_of_a_customer_follow_the_object_rule():
    assert policy.visible_fields(_user(Role.SALES), _customer(OTHER)) == frozenset()
    assert policy.visible_fields(_user(Role.SALES), _customer(SALES, archived=True)) == frozenset()
    assert policy.visible_fields(_user(Role.MANAGER), _customer(OTHER, archived=True)) == policy.CUSTOMER_FIELDS


@pytest.mark.parametrize("situation,shown", [
    ("own", True), ("pool", True), ("foreign", False), ("own archived", False),
])
def test_duplicate_warning_shows_a_hidden_customer_only_as_existing_and_owned(situation, shown):
    view = policy.duplicate_view(_user(Role.SALES), CUSTOMERS[situation]())
    assert (view.customer is not None) is shown
    owner = CUSTOMERS[situation]().owner
    assert view.owner_name == (owner.display_name if owner else None)
    assert view.archived is (shown and "archived" in situation)


@pytest.mark.parametrize("role,archived", [
    (Role.ADMIN, True), (Role.MANAGER, True), (Role.SALES, False), (Role.FRONTDESK, False),
])
def test_scopes_hold_archived_records_only_for_those_who_archive(role, archived):
    assert policy.customer_scope(_user(role)).archived is archived
    assert policy.note_scope(_user(role)).archived is archived


def test_follow_ups_go_to_the_sales_side_and_front_desk_only_to_itself():
    front = _user(Role.FRONTDESK)
    assert policy.may_take_follow_up(front, front)
    assert not policy.may_take_follow_up(front, _user(Role.MANAGER))
    assert policy.may_take_follow_up(_user(Role.SALES), _user(Role.MANAGER))


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_policy_module_knows_nothing_of_flask():
    assert not _imports(ROOT / "services" / "policy.py") & {"flask", "flask_babel", "flask_login", "werkzeug"}


# Where roles may still be named outside the policy module: counting administrators,
# demo data, the role picker's default and labels.
ROLE_NAMING_ALLOWED = {"services/policy.py", "services/accounts.py", "services/demo.py",
                       "blueprints/admin/forms.py", "blueprints/access.py"}


def test_no_role_checks_outside_the_policy_module():
    offenders = []
    for folder in ("services", "blueprints"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            name = path.relative_to(ROOT).as_posix()
            text = path.read_text(encoding="utf-8")
            if name in ROLE_NAMING_ALLOWED:
                continue
            for needle in (".role ==", ".role !=", ".role in", "Role.", "_sees_all", "sees_every_customer"):
                if needle in text:
                    offenders.append((name, needle))
    assert offenders == []


@pytest.mark.parametrize("situation", list(NOTES))
@pytest.mark.parametrize("role", list(LETTERS.values()), ids=lambda role: role.value)
def test_note_actions_are_the_answers_of_may(role, situation):
    """A shown note's buttons come from one note_actions() call: every cell of the
    table above, and nothing for an inactive or anonymous user."""
    user = _user(role)
    note = _note(user, **NOTES[situation])
    expected = {action for action in policy.NOTE_ACTIONS if policy.may(user, action, note)}
    assert policy.note_actions(user, note) == expected
    assert expected == {action for action in policy.NOTE_ACTIONS if role_letter(role) in
                        NOTE_TABLE[action][list(NOTES).index(situation)]}
    user.active = False
    assert policy.note_actions(user, note) == frozenset()
    assert policy.note_actions(None, note) == frozenset()


def role_letter(role):
    return next(letter for letter, known in LETTERS.items() if known == role)
