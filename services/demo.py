"""Realistic generated data for trying Deskbook out and for benchmarks."""

from __future__ import annotations

import random
import re

from faker import Faker
from sqlalchemy import select

from extensions import db
from models import Role, User
from services import passwords

# A small office: mostly sales, a couple of front-desk staff, one manager.
ROLE_MIX = [Role.MANAGER] + [Role.SALES] * 6 + [Role.FRONTDESK] * 2


def _faker(seed: int) -> Faker:
    fake = Faker(["zh_CN", "en_US"], use_weighting=True)
    fake.seed_instance(seed)
    return fake


def generate_users(count: int, password: str, *, seed: int = 1) -> list[User]:
    """Create ``count`` staff accounts (Chinese names, some English ones) sharing
    ``password``. Existing usernames are skipped, so running twice adds no
    duplicates. Returns the users created."""
    rng = random.Random(seed)
    fake = _faker(seed)
    taken = set(db.session.scalars(select(User.username)))
    password_hash = passwords.hash_password(password)
    created = []
    for index in range(count):
        locale = fake["en_US"] if rng.random() < 0.15 else fake["zh_CN"]
        username = re.sub(r"[^a-z0-9._-]", "", fake["en_US"].user_name().lower())[:24] or "user"
        while username in taken:
            username = f"{username[:24]}{rng.randint(10, 99)}"
        taken.add(username)
        user = User(
            username=username,
            display_name=locale.name(),
            role=ROLE_MIX[index % len(ROLE_MIX)],
            language=rng.choice([None, None, "zh", "en"]),
            password_hash=password_hash,
        )
        db.session.add(user)
        created.append(user)
    db.session.commit()
    return created
