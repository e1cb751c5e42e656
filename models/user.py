"""Staff accounts and the login throttle."""

from __future__ import annotations

import secrets
from datetime import datetime
from enum import StrEnum

from flask_login import UserMixin
from sqlalchemy import CheckConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from extensions import Model
from models.base import utcnow


class Role(StrEnum):
    ADMIN = "admin"
    MANAGER = "manager"
    SALES = "sales"
    FRONTDESK = "frontdesk"


def new_session_token() -> str:
    return secrets.token_urlsafe(32)


class User(UserMixin, Model):
    """A member of staff. ``session_token`` is what the login cookie carries: replacing
    it ends every session the user has."""

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(
            "role IN ('admin', 'manager', 'sales', 'frontdesk')", name="role_known"
        ),
        CheckConstraint("language IS NULL OR language IN ('zh', 'en')", name="language_known"),
        CheckConstraint("claim_limit IS NULL OR claim_limit >= 0", name="claim_limit_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(32), unique=True)
    display_name: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(default=True)
    # None: follow the browser's language.
    language: Mapped[str | None] = mapped_column(String(5))
    # None: the office-wide claim limit of the public pool applies.
    claim_limit: Mapped[int | None]
    password_hash: Mapped[str] = mapped_column(String(255))
    must_change_password: Mapped[bool] = mapped_column(default=False)
    session_token: Mapped[str] = mapped_column(
        String(64), unique=True, default=new_session_token
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    password_changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]

    def get_id(self) -> str:
        """Flask-Login stores this in the session cookie: the token, never the id."""
        return self.session_token

    @property
    def is_active(self) -> bool:
        return self.active

    def rotate_session_token(self) -> None:
        """End every existing session of this user."""
        self.session_token = new_session_token()

    def __repr__(self) -> str:
        return f"<User {self.username} {self.role}>"


class LoginThrottle(Model):
    """Failed logins per typed username (existing or not, so that a lockout says
    nothing about which usernames exist). Kept in the database so that every worker
    process sees the same count."""

    __tablename__ = "login_throttle"

    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(default=0)
    window_started_at: Mapped[datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[datetime | None]


class LoginAddressThrottle(Model):
    """Failed sign-ins per client address, whatever username was typed: after a few,
    the address waits before its next attempt, twice as long after each further
    failure. Slows down guessing and keeps one address from locking accounts."""

    __tablename__ = "login_address_throttle"

    address: Mapped[str] = mapped_column(String(45), primary_key=True)
    failures: Mapped[int] = mapped_column(default=0)
    last_failure_at: Mapped[datetime] = mapped_column(default=utcnow)
    blocked_until: Mapped[datetime | None]
