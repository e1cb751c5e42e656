"""Every cell of the permission table, and the README's copy of it."""

import re
from pathlib import Path

import pytest

from models import Role, User
from blueprints import access
from services import policy

README = Path(__file__).resolve().parent.parent / "README.md"
MARK = {"yes": True, "—": False}


def _user(role, active=True, user_id=1):
    user = User(username=f"u{user_id}", display_name="U", role=role, active=active,
                password_hash="x", session_token=f"t{user_id}")
    user.id = user_id
    return user


@pytest.mark.parametrize("action", sorted(policy.PERMISSIONS))
@pytest.mark.parametrize("role", list(Role))
def test_each_cell(action, role):
    expected = role in policy.PERMISSIONS[action][1]
    assert policy.may(_user(role), action) is expected


@pytest.mark.parametrize("action", sorted(policy.PERMISSIONS))
def test_inactive_and_anonymous_users_may_nothing(action):
    assert policy.may(_user(Role.ADMIN, active=False), action) is False
    assert policy.may(None, action) is False


def test_unknown_action_is_an_error_not_a_silent_no():
    with pytest.raises(policy.UnknownAction):
        policy.may(_user(Role.ADMIN), "users.mange")
    with pytest.raises(policy.UnknownAction):
        access.permission_required("no.such.action")


def test_admin_may_not_manage_own_account_through_the_admin_pages():
    admin = _user(Role.ADMIN, user_id=1)
    assert policy.may(admin, "users.manage", _user(Role.SALES, user_id=2))
    assert not policy.may(admin, "users.manage", admin)


def _readme_table() -> dict[str, dict[str, bool]]:
    text = README.read_text(encoding="utf-8")
    section = text.split("<!-- permissions:start -->")[1].split("<!-- permissions:end -->")[0]
    rows = [line for line in section.strip().splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in rows[0].strip("|").split("|")]
    roles = header[2:]
    table = {}
    for row in rows[2:]:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        action = re.fullmatch(r"`([^`]+)`", cells[0]).group(1)
        table[action] = {role: MARK[cell] for role, cell in zip(roles, cells[2:], strict=True)}
    return table


def test_readme_table_matches_the_policy_cell_by_cell():
    table = _readme_table()
    assert set(table) == set(policy.PERMISSIONS)
    for action, (_, allowed) in policy.PERMISSIONS.items():
        assert set(table[action]) == {role.value for role in Role}, action
        for role in Role:
            assert table[action][role.value] is (role in allowed), (action, role)
