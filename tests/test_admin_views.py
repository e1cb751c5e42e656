import pytest
from sqlalchemy import select

from extensions import db
from models import AuditEvent, User
from tests.conftest import TEST_PASSWORD, login

HX = {"HX-Request": "true"}
ADMIN_PAGES = [
    ("get", "/admin/users"),
    ("get", "/admin/users/new"),
    ("post", "/admin/users/new"),
    ("get", "/admin/users/{id}/edit"),
    ("post", "/admin/users/{id}/edit"),
    ("post", "/admin/users/{id}/active"),
    ("post", "/admin/users/{id}/reset-password"),
    ("get", "/admin/audit"),
]


@pytest.mark.parametrize("role", ["manager", "sales", "frontdesk"])
@pytest.mark.parametrize("method, path", ADMIN_PAGES)
def test_non_admins_get_403_on_every_admin_page(client, login_as, make_user, role, method, path):
    target = make_user("sales")
    login_as(role)
    url = path.format(id=target.id)
    response = getattr(client, method)(url, data={"active": "0", "role": "admin"})
    assert response.status_code == 403
    fragment = getattr(client, method)(url, headers=HX, data={"active": "0"})
    assert fragment.status_code == 403 and b"<html" not in fragment.data


@pytest.mark.parametrize("method, path", ADMIN_PAGES)
def test_anonymous_is_sent_to_login(client, method, path):
    response = getattr(client, method)(path.format(id=1))
    assert response.status_code == 303 and response.headers["Location"].startswith("/login")


def test_unknown_user_is_404(client, login_as):
    login_as("admin")
    assert client.get("/admin/users/999999/edit").status_code == 404
    assert client.post("/admin/users/999999/active", headers=HX).status_code == 404


def test_admin_cannot_manage_themself_here(client, login_as):
    admin = login_as("admin")
    assert client.post(f"/admin/users/{admin.id}/active", data={"active": "0"}).status_code == 403
    assert client.post(f"/admin/users/{admin.id}/edit", data={"role": "sales"}).status_code == 403


def test_user_list_full_page(client, login_as, make_user):
    login_as("admin")
    make_user("frontdesk", display_name="前台小李")
    response = client.get("/admin/users")
    assert response.status_code == 200
    assert "前台小李".encode() in response.data and b"<html" in response.data


def test_create_user_shows_the_one_time_password_once(app, client, login_as):
    login_as("admin")
    response = client.post("/admin/users/new", headers=HX, data={
        "username": "Li.Na", "display_name": "李娜", "role": "sales", "language": "zh",
        "claim_limit": "60"})
    assert response.status_code == 200
    assert b'data-testid="password-issued"' in response.data and b"<html" not in response.data
    assert "HX-Trigger" in response.headers
    password = response.data.split(b'one-time-password">')[1].split(b"<")[0].decode()
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "li.na"))
        assert (user.role, user.language, user.claim_limit) == ("sales", "zh", 60)
        assert user.must_change_password
        assert password not in str(db.session.scalars(select(AuditEvent.details)).all())
    newcomer = app.test_client()
    assert login(newcomer, "li.na", password).status_code == 303
    assert newcomer.get("/").headers["Location"] == "/account/password"


@pytest.mark.parametrize("data, field_error", [
    ({"username": "", "role": "sales"}, b"Enter a username."),
    ({"username": "a b!", "role": "sales"}, b"lowercase letters"),
    ({"username": "ok.name", "role": "owner"}, b"Not a valid choice"),
    ({"username": "ok.name", "role": "sales", "claim_limit": "-3"}, b"Enter a whole number from 0 to 100000"),
    ({"username": "ok.name", "role": "sales", "claim_limit": "lots"}, b"Enter a whole number from 0 to 100000"),
    ({"username": "x" * 200, "role": "sales"}, b"Use 2 to 32 characters (this has 200)."),
])
def test_create_user_bad_input_keeps_typing(client, login_as, data, field_error):
    login_as("admin")
    data = {"display_name": "<script>alert(1)</script>", "language": "", **data}
    response = client.post("/admin/users/new", headers=HX, data=data)
    assert response.status_code == 422
    assert field_error in response.data
    assert b'id="user-form"' in response.data and b"<html" not in response.data
    # The typed text comes back, inert.
    assert b"&lt;script&gt;alert(1)&lt;/script&gt;" in response.data
    assert b"<script>alert" not in response.data


def test_duplicate_username_is_refused_at_the_field(client, login_as, make_user):
    login_as("admin")
    make_user("sales", username="taken.name")
    response = client.post("/admin/users/new", data={"username": "Taken.Name", "role": "sales", "language": ""})
    assert response.status_code == 422 and b"This username is taken" in response.data


def test_role_change_signs_the_user_out_everywhere(app, client, login_as, make_user):
    login_as("admin")
    user = make_user("sales")
    their_browser = app.test_client()
    login(their_browser, user.username)
    assert their_browser.get("/").status_code == 200
    response = client.post(f"/admin/users/{user.id}/edit", headers=HX, data={
        "display_name": "新名字", "role": "manager", "language": "", "claim_limit": ""})
    assert response.headers["HX-Redirect"] == "/admin/users"
    assert their_browser.get("/").status_code == 303
    with app.app_context():
        changed = db.session.get(User, user.id)
        assert (changed.role, changed.display_name, changed.claim_limit) == ("manager", "新名字", None)


def test_edit_form_prefills(client, login_as, make_user):
    login_as("admin")
    user = make_user("frontdesk", display_name="小王", language="en", claim_limit=7)
    page = client.get(f"/admin/users/{user.id}/edit").data
    assert "小王".encode() in page and b'value="7"' in page
    assert b'<option selected value="en">' in page or b'value="en" selected' in page


def test_deactivate_row_swap_and_sessions_end(app, client, login_as, make_user):
    login_as("admin")
    user = make_user("sales")
    their_browser = app.test_client()
    login(their_browser, user.username)
    response = client.post(f"/admin/users/{user.id}/active", headers=HX, data={"active": "0"})
    assert response.status_code == 200
    assert response.data.lstrip().startswith(f'<tr id="user-{user.id}"'.encode())
    assert b"Deactivated" in response.data and "HX-Trigger" in response.headers
    assert their_browser.get("/").status_code == 303
    assert login(their_browser, user.username).status_code == 422
    response = client.post(f"/admin/users/{user.id}/active", headers=HX, data={"active": "1"})
    assert b"Reactivate" not in response.data
    assert login(their_browser, user.username).status_code == 303


def test_deactivate_without_htmx_renders_the_page(client, login_as, make_user):
    login_as("admin")
    user = make_user("sales")
    response = client.post(f"/admin/users/{user.id}/active", data={"active": "0"})
    assert response.status_code == 200 and b"<html" in response.data


def test_reset_password(app, client, login_as, make_user):
    login_as("admin")
    user = make_user("sales")
    response = client.post(f"/admin/users/{user.id}/reset-password")
    assert response.status_code == 200
    password = response.data.split(b'one-time-password">')[1].split(b"<")[0].decode()
    assert login(app.test_client(), user.username, TEST_PASSWORD).status_code == 422
    other = app.test_client()
    assert login(other, user.username, password).status_code == 303
    assert other.get("/").headers["Location"] == "/account/password"


def test_audit_page_lists_sign_ins_and_filters(client, login_as, make_user):
    user = make_user("sales")
    login(client, user.username, "wrong password!")
    login_as("admin")
    page = client.get("/admin/audit?kind=login.failure").data
    assert b"Sign-in failed" in page and b"Signed in</td>" not in page
    assert b"Account created</td>" not in page
    fragment = client.get("/admin/audit?kind=user.create", headers=HX)
    assert b"Account created</td>" in fragment.data and b"<html" not in fragment.data
