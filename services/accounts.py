"""Staff accounts: creating, signing in, passwords, roles, deactivation.

Every function that changes something adds and flushes its change and its audit line
to the caller's transaction; the caller commits (a refused sign-in too: see
:func:`authenticate`).
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from extensions import db
from models import LoginThrottle, Role, User, utcnow
from services import audit, login_throttle, passwords
from services.errors import DomainError
from services.login_throttle import LoginPolicy, policy_from_config  # noqa: F401 (callers sign in here)

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,31}$")


class LoginRefused(DomainError):
    """Wrong username or password, inactive account, or too many failures. The
    message never tells which."""


def normalise_username(username: str) -> str:
    return username.strip().lower()


def get_by_username(username: str) -> User | None:
    return db.session.scalar(select(User).where(User.username == normalise_username(username)))


def get_by_session_token(token: str) -> User | None:
    """The active user whose current session token is ``token``."""
    if not token:
        return None
    return db.session.scalar(
        select(User).where(User.session_token == token, User.active.is_(True))
    )


def admin_exists() -> bool:
    return bool(db.session.scalar(select(func.count()).where(User.role == Role.ADMIN)))


def generate_password() -> str:
    """A random one-time password, easy to read aloud (no 0/O, 1/l)."""
    alphabet = "abcdefghijkmnpqrstuvwxyz23456789"
    groups = ("".join(secrets.choice(alphabet) for _ in range(4)) for _ in range(4))
    return "-".join(groups)


def create_user(
    username: str,
    password: str,
    role: str,
    *,
    display_name: str = "",
    language: str | None = None,
    claim_limit: int | None = None,
    must_change_password: bool = False,
    actor: User | None = None,
    ip: str | None = None,
) -> User:
    """Create an account. Raises DomainError (with the field) for a malformed or
    taken username, an unknown role or a refused password."""
    username = normalise_username(username)
    if not USERNAME_RE.match(username):
        raise DomainError(
            _l("2–32 characters: lowercase letters, digits, dot, dash, underscore."),
            "username",
        )
    if get_by_username(username) is not None:
        raise DomainError(_l("This username is taken."), "username")
    if role not in set(Role):
        raise DomainError(_l("Unknown role."), "role")
    if problem := passwords.password_problem(password, username):
        raise DomainError(problem, "password")
    user = User(
        username=username,
        display_name=display_name.strip() or username,
        role=role,
        language=language or None,
        claim_limit=claim_limit,
        password_hash=passwords.hash_password(password),
        must_change_password=must_change_password,
    )
    db.session.add(user)
    db.session.flush()
    audit.record("user.create", actor, ip=ip, target=user, username=username, role=role)
    db.session.flush()
    return user


def authenticate(
    username: str,
    password: str,
    *,
    ip: str | None = None,
    policy: LoginPolicy = LoginPolicy(),
    now: datetime | None = None,
) -> User:
    """Check a sign-in. Returns the user, or raises LoginRefused. An address that
    must wait (see LoginPolicy) is refused before anything is checked. Failures are
    counted per typed username and per address in the database; after
    ``policy.max_failures`` within ``policy.window`` the name is refused for
    ``policy.lockout``. Every counted outcome is audited; an address's refusals while
    it waits give one line per wait. The caller commits after a refusal too, so the
    failures count. Ends the caller's transaction before hashing (no lock held
    meanwhile): call it first."""
    now = now or utcnow()
    key = normalise_username(username)[:64]
    if blocked_until := login_throttle.address_blocked_until(ip, now):
        return _refuse_address(ip, key, blocked_until, now)
    if login_throttle.name_locked(key, now):
        return _refuse_locked(key, ip, policy, now)
    user = get_by_username(key)
    user_id, stored_hash = (user.id, user.password_hash) if user else (None, None)
    # End the read transaction before the deliberately slow hash, so no lock is held.
    db.session.rollback()
    valid = passwords.verify_password(stored_hash, password)

    throttle = login_throttle.name_row(key, now)
    if throttle.locked_until is not None and throttle.locked_until > now:
        return _refuse_locked(key, ip, policy, now)
    user = db.session.get(User, user_id) if user_id else None
    if valid and user is not None and user.active:
        return _accept(user, throttle, password, ip, now)
    throttle = login_throttle.count_name_failure(key, now, policy)
    locked = throttle.locked_until is not None and throttle.locked_until > now
    address_failures = login_throttle.count_address_failure(ip, now, policy)
    audit.record("login.failure", user, actor_name=key, ip=ip, failures=throttle.failures,
                 locked=locked, address_failures=address_failures)
    db.session.flush()
    raise LoginRefused(
        login_throttle.locked_message(policy) if locked else _l("Wrong username or password.")
    )


def _accept(user: User, throttle: LoginThrottle, password: str, ip, now) -> User:
    db.session.delete(throttle)
    user.last_login_at = now
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
    audit.record("login.success", user, ip=ip)
    db.session.flush()
    return user


def _refuse_locked(key: str, ip: str | None, policy: LoginPolicy, now: datetime):
    """A locked name: the attempt counts against the address too, so hammering a
    locked account soon makes the address wait (and the audit lines stop growing)."""
    db.session.rollback()
    address_failures = login_throttle.count_address_failure(ip, now, policy)
    audit.record("login.locked", get_by_username(key), actor_name=key, ip=ip,
                 address_failures=address_failures)
    db.session.flush()
    raise LoginRefused(login_throttle.locked_message(policy))


def _refuse_address(ip: str, key: str, blocked_until: datetime, now: datetime):
    """An address that must wait: refused unchecked, one audit line per wait."""
    db.session.rollback()
    audit.record_once(f"login.address_wait:{ip}:{blocked_until.isoformat()}", "login.address_wait",
                      actor_name=key, ip=ip, until=blocked_until.isoformat())
    db.session.flush()
    raise LoginRefused(login_throttle.wait_message(blocked_until - now))


def logout(user: User, *, ip: str | None = None) -> None:
    """End every session of ``user``: the token in their cookies is no longer valid."""
    user.rotate_session_token()
    audit.record("logout", user, ip=ip)
    db.session.flush()


def change_password(
    user: User,
    current: str,
    new: str,
    *,
    ip: str | None = None,
    policy: LoginPolicy = LoginPolicy(),
    now: datetime | None = None,
) -> None:
    """Change one's own password. Raises DomainError for a wrong current password or
    a refused new one, and while the account is locked. A wrong current password
    counts as a failed sign-in of the account (same lock) and is audited (saved
    although the change is refused). Ends the user's other sessions (the caller logs
    the user in again with the new token)."""
    now = now or utcnow()
    if login_throttle.name_locked(user.username, now):
        audit.record("password.change_failure", user, ip=ip, target=user, locked=True)
        db.session.flush()
        raise DomainError(login_throttle.locked_message(policy), "current_password")
    if not passwords.verify_password(user.password_hash, current):
        throttle = login_throttle.count_name_failure(user.username, now, policy)
        locked = throttle.locked_until is not None and throttle.locked_until > now
        audit.record("password.change_failure", user, ip=ip, target=user,
                     failures=throttle.failures, locked=locked)
        db.session.flush()
        raise DomainError(
            login_throttle.locked_message(policy) if locked else _l("The current password is not right."),
            "current_password",
        )
    if new == current:
        raise DomainError(_l("Choose a password different from the current one."), "new_password")
    if problem := passwords.password_problem(new, user.username):
        raise DomainError(problem, "new_password")
    user.password_hash = passwords.hash_password(new)
    user.password_changed_at = utcnow()
    user.must_change_password = False
    user.rotate_session_token()
    audit.record("password.change", user, ip=ip, target=user)
    db.session.flush()


def reset_password(actor: User, user: User, *, ip: str | None = None) -> str:
    """An administrator resets ``user``'s password: returns a one-time password the
    user must change at next sign-in; ends the user's sessions."""
    temporary = generate_password()
    user.password_hash = passwords.hash_password(temporary)
    user.password_changed_at = utcnow()
    user.must_change_password = True
    user.rotate_session_token()
    db.session.execute(
        LoginThrottle.__table__.delete().where(LoginThrottle.username == user.username)
    )
    audit.record("password.reset", actor, ip=ip, target=user, username=user.username)
    db.session.flush()
    return temporary


def update_user(
    actor: User,
    user: User,
    *,
    display_name: str,
    role: str,
    language: str | None,
    claim_limit: int | None,
    ip: str | None = None,
) -> None:
    """An administrator edits an account. A role change ends the user's sessions.
    Role, display name and claim limit changes are audited with old and new value."""
    if role not in set(Role):
        raise DomainError(_l("Unknown role."), "role")
    changes = {}
    if role != user.role:
        changes["role"] = [user.role, role]
        user.role = role
        user.rotate_session_token()
    new_name = display_name.strip() or user.username
    if new_name != user.display_name:
        changes["display_name"] = [user.display_name, new_name]
        user.display_name = new_name
    user.language = language or None
    if claim_limit != user.claim_limit:
        changes["claim_limit"] = [user.claim_limit, claim_limit]
        user.claim_limit = claim_limit
    audit.record("user.update", actor, ip=ip, target=user, username=user.username, **changes)
    db.session.flush()


def set_language(user: User, language: str | None) -> None:
    user.language = language or None
    db.session.flush()


def set_active(actor: User, user: User, active: bool, *, ip: str | None = None) -> None:
    """Deactivate (ends every session at once) or reactivate an account."""
    if user.active == active:
        return
    user.active = active
    user.rotate_session_token()
    audit.record(
        "user.reactivate" if active else "user.deactivate",
        actor,
        ip=ip,
        target=user,
        username=user.username,
    )
    db.session.flush()


def hand_over(actor: User, user: User, to_user_id: int | None, *, ip: str | None = None) -> tuple[int, int]:
    """离职交接 (P7) before deactivating ``user``: their customers go to the colleague
    ``to_user_id`` or to the pool (``None``), and their open follow-ups with them — to
    that colleague, or to ``actor`` (the manager handing over) when the customers go
    to the pool. One audit line says what moved. Raises DomainError for an unsuitable
    colleague, having moved nothing. Returns (customers, follow-ups) moved."""
    from services import pool, tasks

    customers = pool.handover_customers(actor, user, to_user_id)
    moved_tasks = tasks.hand_over_open_tasks(user, to_user_id or actor.id)
    if customers or moved_tasks:
        audit.record("user.handover", actor, ip=ip, target=user, customers=customers, to_user_id=to_user_id,
                     tasks=moved_tasks)
    db.session.flush()
    return customers, len(moved_tasks)


def list_users() -> list[User]:
    return db.session.scalars(
        select(User).order_by(User.active.desc(), User.role, User.username)
    ).all()
