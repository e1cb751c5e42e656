"""Office-wide settings an admin edits in the app (P8), with their defaults.

Each setting has a type and bounds; reads fall back to the default when nothing is
stored. Changes are audited with old and new value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import g
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from extensions import db
from models import NoteKind, Setting, Stage, User
from services import audit
from services.errors import DomainError


@dataclass(frozen=True)
class SettingSpec:
    default: Any
    label: Any
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[str, ...] = ()  # for list settings: allowed members


SPECS: dict[str, SettingSpec] = {
    "pool.max_owned": SettingSpec(50, _l("Maximum owned customers per salesperson"), 0, 100000),
    "pool.count_deals": SettingSpec(False, _l("Customers in the deal stage count towards the limit")),
    "pool.max_daily_claims": SettingSpec(20, _l("Maximum claims per person per day"), 0, 10000),
    "pool.reclaim_lock_days": SettingSpec(
        7, _l("Days before someone may claim back a customer they released or lost"), 0, 365),
    "pool.recycle_enabled": SettingSpec(True, _l("Return neglected customers to the pool automatically")),
    "pool.recycle_days": SettingSpec(30, _l("Days without an effective follow-up before recycling"), 1, 3650),
    "pool.effective_kinds": SettingSpec(
        ["call", "visit", "meeting", "wechat", "email"], _l("Note kinds that count as a follow-up"),
        choices=tuple(kind.value for kind in NoteKind)),
    "pool.protected_stages": SettingSpec(
        ["deal"], _l("Stages that are never recycled"), choices=tuple(stage.value for stage in Stage)),
    "pool.max_locked": SettingSpec(5, _l("Customers an owner may lock against recycling"), 0, 1000),
    "pool.warn_days": SettingSpec(5, _l("Warn owners this many days before recycling"), 0, 365),
    "jobs.nightly_hour": SettingSpec(
        2, _l("Hour of the night when the nightly jobs run (sweep, backup), office time"), 0, 23),
    # A3: exporting is for managers and admins; this lets sales export their own customers.
    "export.sales_own": SettingSpec(False, _l("Sales staff may export their own customers")),
}


def get(key: str) -> Any:
    """The stored value of setting ``key``, or its default."""
    return get_all()[key]


def get_all() -> dict[str, Any]:
    """Every setting, read with one query per app context (a request, a CLI run) and
    kept on ``g`` until :func:`update` changes them."""
    if "deskbook_settings" not in g:
        stored = {row.key: row.value for row in db.session.scalars(
            select(Setting).where(Setting.key.in_(SPECS)))}
        g.deskbook_settings = {key: stored.get(key, spec.default) for key, spec in SPECS.items()}
    return g.deskbook_settings


def validate(key: str, value: Any) -> Any:
    """``value`` checked against the setting's type and bounds. Raises DomainError
    (field = the key)."""
    spec = SPECS[key]
    if isinstance(spec.default, bool):
        if not isinstance(value, bool):
            raise DomainError(_l("Choose yes or no."), key)
        return value
    if isinstance(spec.default, int):
        if not isinstance(value, int) or isinstance(value, bool) or not spec.minimum <= value <= spec.maximum:
            raise DomainError(_l("Enter a whole number from %(min)d to %(max)d.",
                                 min=spec.minimum, max=spec.maximum), key)
        return value
    if not isinstance(value, list) or any(item not in spec.choices for item in value):
        raise DomainError(_l("Choose from the list."), key)
    return sorted(set(value), key=spec.choices.index)


def update(actor: User, values: dict[str, Any], *, ip: str | None = None) -> dict[str, list]:
    """Store the given settings after validating every one (all or nothing).
    Returns {key: [old, new]} for what changed; audited as ``settings.change``."""
    checked = {key: validate(key, value) for key, value in values.items()}
    current = get_all()
    changes = {key: [current[key], value] for key, value in checked.items() if current[key] != value}
    for key, (_, value) in changes.items():
        row = db.session.get(Setting, key) or Setting(key=key)
        row.value = value
        row.updated_by_id = actor.id
        db.session.add(row)
    if changes:
        audit.record("settings.change", actor, ip=ip, **changes)
    db.session.flush()
    g.pop("deskbook_settings", None)
    return changes
