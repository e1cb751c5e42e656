from datetime import timedelta

import pytest
from sqlalchemy import select

from extensions import db
from models import AuditEvent, LoginThrottle, Role, User, utcnow
from services import accounts, login_throttle
from services.errors import DomainError
from tests.conftest import TEST_PASSWORD

POLICY = accounts.LoginPolicy()


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield


def _create(username="wang.fang", role=Role.SALES, **kwargs):
    user = accounts.create_user(username, TEST_PASSWORD, role, **kwargs)
    db.session.commit()
    return user


def authenticate(*args, **kwargs):
    """accounts.authenticate, committed as the sign-in view does: a refusal too."""
    try:
        return accounts.authenticate(*args, **kwargs)
    finally:
        db.session.commit()


def change_password(*args, **kwargs):
    """accounts.change_password, committed as the account page does: a refusal too."""
    try:
        return accounts.change_password(*args, **kwargs)
    finally:
        db.session.commit()


def _actions():
    return [e.action for e in db.session.scalars(select(AuditEvent).order_by(AuditEvent.id))]


def test_create_user_normalises_and_audits(ctx):
    user = _create("  Wang.Fang ", display_name="王芳")
    assert user.username == "wang.fang"
    assert user.display_name == "王芳"
    assert user.password_hash.startswith("$argon2id$")
    assert len(user.session_token) >= 40
    assert _actions() == ["user.create"]


@pytest.mark.parametrize(
    "username, role, password, field",
    [
        ("a b", Role.SALES, TEST_PASSWORD, "username"),
        ("x", Role.SALES, TEST_PASSWORD, "username"),
        ("<script>", Role.SALES, TEST_PASSWORD, "username"),
        ("ok.name", "owner", TEST_PASSWORD, "role"),
        ("ok.name", Role.SALES, "12345678", "password"),
        ("ok.name", Role.SALES, "short", "password"),
    ],
)
def test_create_user_refusals_name_the_field(ctx, username, role, password, field):
    with pytest.raises(DomainError) as refused:
        accounts.create_user(username, password, role)
    assert refused.value.field == field
    assert db.session.scalar(select(User).where(User.username == username)) is None


def test_username_taken_whatever_the_case(ctx):
    _create("li.lei")
    with pytest.raises(DomainError) as refused:
        _create("LI.LEI")
    assert refused.value.field == "username"


def test_authenticate_success_records_and_resets_failures(ctx):
    user = _create()
    with pytest.raises(accounts.LoginRefused):
        authenticate("wang.fang", "wrong password!", ip="10.0.0.1")
    assert authenticate("WANG.FANG", TEST_PASSWORD, ip="10.0.0.1").id == user.id
    assert db.session.get(LoginThrottle, "wang.fang") is None
    assert _actions() == ["user.create", "login.failure", "login.success"]
    success = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "login.success")).one()
    assert (success.actor_id, success.ip) == (user.id, "10.0.0.1")
    assert abs(success.at - utcnow()) < timedelta(minutes=1)


def test_wrong_password_and_unknown_user_get_the_same_message(ctx):
    _create()
    with pytest.raises(accounts.LoginRefused) as wrong:
        authenticate("wang.fang", "not the password")
    with pytest.raises(accounts.LoginRefused) as unknown:
        authenticate("nobody.here", "not the password")
    assert str(wrong.value.message) == str(unknown.value.message)


def test_inactive_user_cannot_sign_in(ctx):
    admin = _create("boss", Role.ADMIN)
    user = _create()
    accounts.set_active(admin, user, False)
    db.session.commit()
    with pytest.raises(accounts.LoginRefused):
        authenticate("wang.fang", TEST_PASSWORD)


def test_lockout_after_ten_failures_refuses_even_the_right_password(ctx):
    _create()
    other = _create("zhang.wei")
    now = utcnow()
    for attempt in range(10):
        with pytest.raises(accounts.LoginRefused):
            authenticate("wang.fang", f"wrong-{attempt}xx", now=now)
    with pytest.raises(accounts.LoginRefused) as refused:
        authenticate("wang.fang", TEST_PASSWORD, now=now + timedelta(minutes=1))
    assert "15" in str(refused.value.message)
    assert "login.locked" in _actions()
    # Other accounts are unaffected.
    assert authenticate("zhang.wei", TEST_PASSWORD, now=now).id == other.id
    # The lock lifts after 15 minutes.
    later = now + timedelta(minutes=15, seconds=1)
    assert authenticate("wang.fang", TEST_PASSWORD, now=later).username == "wang.fang"


def test_failures_outside_the_window_do_not_add_up(ctx):
    _create()
    start = utcnow()
    for _attempt in range(9):
        with pytest.raises(accounts.LoginRefused):
            authenticate("wang.fang", "wrong one!", now=start)
    # 16 minutes later the count starts again: nine more failures do not lock.
    for _attempt in range(9):
        with pytest.raises(accounts.LoginRefused):
            authenticate("wang.fang", "wrong one!", now=start + timedelta(minutes=16))
    assert authenticate("wang.fang", TEST_PASSWORD, now=start + timedelta(minutes=16))


def test_unknown_usernames_lock_the_same_way(ctx):
    now = utcnow()
    messages = set()
    for _ in range(11):
        with pytest.raises(accounts.LoginRefused) as refused:
            authenticate("ghost", "whatever123", now=now)
        messages.add(str(refused.value.message))
    assert any("15" in message for message in messages)


def test_logout_rotates_the_token(ctx):
    user = _create()
    before = user.session_token
    accounts.logout(user)
    assert user.session_token != before
    assert accounts.get_by_session_token(before) is None
    assert accounts.get_by_session_token(user.session_token).id == user.id


def test_change_password(ctx):
    user = _create()
    token = user.session_token
    with pytest.raises(DomainError) as refused:
        accounts.change_password(user, "not it at all", "a brand new passphrase")
    assert refused.value.field == "current_password"
    with pytest.raises(DomainError) as refused:
        accounts.change_password(user, TEST_PASSWORD, "password1")
    assert refused.value.field == "new_password"
    accounts.change_password(user, TEST_PASSWORD, "a brand new passphrase")
    assert user.session_token != token
    assert authenticate("wang.fang", "a brand new passphrase").id == user.id


def test_reset_password_forces_a_change_and_ends_sessions(ctx):
    admin = _create("boss", Role.ADMIN)
    user = _create()
    token = user.session_token
    temporary = accounts.reset_password(admin, user)
    db.session.commit()
    assert user.must_change_password and user.session_token != token
    assert authenticate("wang.fang", temporary).must_change_password
    assert "password.reset" in _actions()


def test_role_change_rotates_token_and_is_audited(ctx):
    admin = _create("boss", Role.ADMIN)
    user = _create()
    token = user.session_token
    accounts.update_user(admin, user, display_name="王芳", role=Role.MANAGER, language="en",
                         claim_limit=80)
    assert (user.role, user.language, user.claim_limit) == ("manager", "en", 80)
    assert user.session_token != token
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "user.update")).one()
    assert event.details["role"] == ["sales", "manager"]
    assert event.details["claim_limit"] == [None, 80]


def test_same_role_keeps_sessions(ctx):
    admin = _create("boss", Role.ADMIN)
    user = _create()
    token = user.session_token
    accounts.update_user(admin, user, display_name="王芳", role=Role.SALES, language=None,
                         claim_limit=None)
    assert user.session_token == token


def test_deactivate_and_reactivate(ctx):
    admin = _create("boss", Role.ADMIN)
    user = _create()
    token = user.session_token
    accounts.set_active(admin, user, False)
    assert accounts.get_by_session_token(user.session_token) is None
    assert user.session_token != token
    accounts.set_active(admin, user, True)
    assert accounts.get_by_session_token(user.session_token).id == user.id
    assert _actions()[-2:] == ["user.deactivate", "user.reactivate"]


def test_admin_exists(ctx):
    assert not accounts.admin_exists()
    _create("boss", Role.ADMIN)
    assert accounts.admin_exists()


# ---- the per-address backoff (issue 15, item 7) ---------------------------------------------------

@pytest.fixture
def english(app):
    """A sign-in request of an English browser: messages in English."""
    with app.test_request_context("/login", method="POST", headers={"Accept-Language": "en"}):
        yield


def _fail(username="ghost", *, ip="10.0.0.9", now, password="wrong guess!"):
    with pytest.raises(accounts.LoginRefused) as refused:
        authenticate(username, password, ip=ip, now=now)
    return refused.value.message


def _blocked_until(ip="10.0.0.9"):
    from models import LoginAddressThrottle

    db.session.expire_all()
    return db.session.get(LoginAddressThrottle, ip).blocked_until


def test_address_wait_doubles_after_the_free_failures_up_to_a_cap():
    assert [POLICY.address_wait(n).total_seconds() for n in range(1, 12)] == [
        0, 0, 0, 0, 30, 60, 120, 240, 480, 900, 900]


def test_an_address_waits_longer_after_each_failure(english):
    now = utcnow()
    for _ in range(4):
        _fail(now=now)
        assert _blocked_until() is None
    waits = []
    for _ in range(4):
        _fail(now=now)  # the failure that starts a wait
        waits.append((_blocked_until() - now).total_seconds())
        # while it waits, even the right password is refused unchecked
        assert "Try again" in _fail(now=now + timedelta(seconds=1))
        now = _blocked_until()
    assert waits == [30, 60, 120, 240]


def test_one_address_cannot_lock_an_account_with_the_defaults(ctx):
    """Trying as fast as the backoff lets it, the tenth failure from one address
    falls after the account's fifteen-minute window: the name never locks."""
    _create()
    now = utcnow()
    for _ in range(10):
        _fail("wang.fang", now=now)
        now = _blocked_until() or now
    assert authenticate("wang.fang", TEST_PASSWORD, ip="10.0.0.8", now=now).username == "wang.fang"


def test_waiting_addresses_leave_one_audit_line_per_wait(ctx):
    now = utcnow()
    for _ in range(5):
        _fail(now=now)
    for _ in range(50):
        _fail(now=now + timedelta(seconds=5))
    assert _actions() == ["login.failure"] * 5 + ["login.address_wait"]


def test_the_address_backoff_holds_across_worker_processes(app, make_app):
    """Two app instances (two workers) on one database see the same wait."""
    second = make_app()
    now = utcnow()
    with app.app_context():
        for _ in range(5):
            _fail(now=now)
    with second.test_request_context("/login", method="POST", headers={"Accept-Language": "en"}):
        assert "Try again" in _fail(now=now + timedelta(seconds=10))
        assert _actions()[-1] == "login.address_wait"


def test_prune_login_throttle_keeps_only_rows_that_still_hold_back(ctx):
    from models import LoginAddressThrottle

    now = utcnow()
    _fail("old.name", ip="10.0.0.1", now=now - timedelta(hours=2))
    for _ in range(5):
        _fail("fresh.name", ip="10.0.0.2", now=now)
    assert login_throttle.prune_login_throttle(now + timedelta(minutes=1)) == 2
    db.session.commit()
    assert db.session.scalars(select(LoginThrottle.username)).all() == ["fresh.name"]
    assert db.session.scalars(select(LoginAddressThrottle.address)).all() == ["10.0.0.2"]


# ---- password change failures (issue 15, items 6 and 15) ------------------------------------------

def test_wrong_current_passwords_are_audited_and_lock_like_sign_in(english):
    user = _create()
    now = utcnow()
    for attempt in range(POLICY.max_failures):
        with pytest.raises(DomainError) as refused:
            change_password(user, f"guess number {attempt}", "a brand new passphrase",
                                     ip="10.0.0.3", now=now)
        assert refused.value.field == "current_password"
    assert "Too many failed sign-in attempts" in refused.value.message
    # locked: the right password is refused too, and sign-in is locked as well
    with pytest.raises(DomainError) as locked:
        change_password(user, TEST_PASSWORD, "a brand new passphrase", now=now)
    assert "Too many failed sign-in attempts" in locked.value.message
    with pytest.raises(accounts.LoginRefused):
        authenticate("wang.fang", TEST_PASSWORD, ip="10.0.0.4", now=now)
    failures = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "password.change_failure")
                                  .order_by(AuditEvent.id)).all()
    assert len(failures) == POLICY.max_failures + 1
    assert failures[0].ip == "10.0.0.3" and failures[0].target_id == user.id
    assert [e.details["locked"] for e in failures][-2:] == [True, True]
    assert authenticate("wang.fang", TEST_PASSWORD, now=now + POLICY.lockout + timedelta(seconds=1))


def test_display_name_change_is_audited_with_old_and_new(ctx):
    admin = _create("boss", Role.ADMIN)
    user = _create(display_name="王芳")
    accounts.update_user(admin, user, display_name="王芳芳", role=Role.SALES, language=None, claim_limit=None)
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "user.update")).one()
    assert event.details["display_name"] == ["王芳", "王芳芳"]
    assert event.actor_id == admin.id and event.target_id == user.id
