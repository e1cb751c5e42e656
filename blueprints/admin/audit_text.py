"""The audit log in words (D1): each kind's label, and its details as short sentences
("Role: Sales → Manager", "Claim limit: not set → 500") instead of stored codes.

``KINDS`` is the one mapping of kind → label and the detail fields that kind writes,
in the order shown; a field it does not list, or a kind written by another version,
still reads as "label: value" (tests/test_audit_page.py checks every kind written
in the code has an entry here).
"""

from __future__ import annotations

from collections.abc import Iterable

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from blueprints.access import ROLE_LABELS
from blueprints.customers.forms import SOURCE_LABELS, STAGE_LABELS, TYPE_LABELS
from blueprints.notes.forms import KIND_LABELS as NOTE_KIND_LABELS
from extensions import db
from models import Role, User
from services.ids import parse_id
from services.settings import SPECS

KINDS: dict[str, tuple] = {
    "login.success": (_l("Signed in"), ()),
    "login.failure": (_l("Sign-in failed"), ("failures", "locked", "address_failures")),
    "login.locked": (_l("Sign-in refused: account locked"), ("address_failures",)),
    "login.address_wait": (_l("Sign-in refused: address must wait"), ("until",)),
    "logout": (_l("Signed out"), ()),
    "password.change": (_l("Password changed"), ()),
    "password.change_failure": (_l("Password change failed"), ("failures", "locked")),
    "password.reset": (_l("Password reset"), ("username",)),
    "user.create": (_l("Account created"), ("username", "role")),
    "user.update": (_l("Account changed"), ("username", "role", "display_name", "claim_limit")),
    "user.deactivate": (_l("Account deactivated"), ("username",)),
    "user.reactivate": (_l("Account reactivated"), ("username",)),
    "user.handover": (_l("Customers handed over"), ("customers", "to_user_id", "tasks")),
    "settings.change": (_l("Settings changed"), tuple(SPECS)),
    "customer.view": (_l("Customer of a colleague opened"), ("owner_id",)),
    "customer.create_despite_duplicate": (_l("Customer created despite a duplicate"), ("duplicates",)),
    "customer.update_despite_duplicate": (_l("Customer saved despite a duplicate"), ("duplicates",)),
    "customer.archive": (_l("Customer archived"), ()),
    "customer.restore": (_l("Customer restored"), ()),
    "customer.purge": (_l("Customer deleted for good"), ()),
    "customer.merge": (_l("Customers merged"), ("keep_id", "note_ids", "task_ids", "change_ids",
                                                 "pool_event_ids", "tag_ids", "phone_ids", "filled")),
    "customer.unmerge": (_l("Merge undone"), ("keep_id", "merge_event")),
    "note.edit": (_l("Note edited"), ("customer_id",)),
    "note.delete": (_l("Note deleted"), ("customer_id",)),
    "note_template.create": (_l("Note template created"), ("name",)),
    "note_template.update": (_l("Note template changed"), ("name", "active")),
    "tag.create": (_l("Tag created"), ("name", "group")),
    "tag.rename": (_l("Tag renamed"), ("old", "new")),
    "tag.merge": (_l("Tags merged"), ("source_name", "target_name", "customers", "notes")),
    "tag.delete": (_l("Tag deleted"), ("name", "group", "customers", "notes")),
    "tag_group.create": (_l("Tag group created"), ("name",)),
    "tag_group.rename": (_l("Tag group renamed"), ("old", "new")),
    "tag_group.delete": (_l("Tag group deleted"), ("name",)),
    "task.reassign": (_l("Follow-up reassigned"), ("customer_id", "from_user", "to_user")),
    "backup.create": (_l("Backup made"), ("file", "size", "database", "schema_revision")),
    "backup.restore": (_l("Backup restored"), ("file", "backup_created_at", "schema_revision", "forced")),
    "backup.requested": (_l("Backup requested"), ()),
    "backup.download": (_l("Backup downloaded"), ("file", "size")),
    "pool.release_undone": (_l("Release undone"), ("owner_id",)),
    "customer.import": (_l("Customers imported"), ("file", "counts", "owner", "duplicates", "tags", "override_limit")),
    "customer.dry_run_import": (_l("Import checked (dry run)"), ("file", "counts")),
    "customer.import_resume": (_l("Import resumed"), ("file", "rows_done", "rows")),
    "customer.import_undo": (_l("Import undone"), ("file", "archived", "restored")),
    "export.customers": (_l("Customers exported"), ("format", "rows", "filter")),
    "export.notes": (_l("Notes exported"), ("format", "rows", "filter")),
    "export.customer_record": (_l("Customer record exported"), ("format", "rows")),
    "export.audit": (_l("Audit log exported"), ("format", "rows", "filter")),
}

FIELD_LABELS = {
    "failures": _l("Failures in a row"), "locked": _l("Locked"), "address_failures": _l("Failures from this address"),
    "until": _l("Until"), "username": _l("Username"), "role": _l("Role"), "display_name": _l("Display name"),
    "claim_limit": _l("Claim limit"), "customers": _l("Customers"), "to_user_id": _l("To"),
    "tasks": _l("Follow-ups"), "owner_id": _l("Owner"), "duplicates": _l("Possible duplicates"),
    "keep_id": _l("Kept customer"), "note_ids": _l("Notes moved"), "task_ids": _l("Follow-ups moved"),
    "change_ids": _l("History entries moved"), "pool_event_ids": _l("Pool events moved"),
    "tag_ids": _l("Tags added"), "phone_ids": _l("Phones added"), "filled": _l("Fields filled in"),
    "merge_event": _l("Merge"), "customer_id": _l("Customer"), "name": _l("Name"), "active": _l("Active"),
    "group": _l("Group"), "old": _l("Before"), "new": _l("After"), "source_name": _l("Merged tag"),
    "target_name": _l("Into"), "notes": _l("Notes"), "from_user": _l("From"), "to_user": _l("To"),
    "file": _l("File"), "size": _l("Size"), "database": _l("Database"), "schema_revision": _l("Schema"),
    "backup_created_at": _l("Backup made at"), "forced": _l("Forced"), "format": _l("Format"),
    "rows": _l("Rows"), "filter": _l("Filter"), "rows_done": _l("Rows done before"),
    **{key: spec.label for key, spec in SPECS.items()},
}
# Details that name a user by id, and that hold a list of ids (shown as a count).
USER_FIELDS = frozenset({"to_user_id", "owner_id", "from_user", "to_user"})
COUNTED_FIELDS = frozenset({"duplicates", "note_ids", "task_ids", "change_ids", "pool_event_ids", "tag_ids",
                            "phone_ids", "tasks"})
CUSTOMER_FIELDS = frozenset({"customer_id", "keep_id"})
FORMAT_LABELS = {"csv": "CSV", "xlsx": "Excel"}
FILTER_LABELS = {
    "kind": _l("Kind"), "user": _l("Who"), "customer": _l("Customer"), "date_from": _l("From"),
    "date_to": _l("To"), "from": _l("From"), "to": _l("To"), "q": _l("Words"), "tag": _l("Tags"),
    "stage": _l("Stage"), "type": _l("Type"), "importance": _l("Importance"), "source": _l("Source"),
    "region": _l("Region"), "owner": _l("Owner"), "archived": _l("Archived"), "author": _l("Author"),
}
FILTER_VALUES = {
    "stage": {k.value: v for k, v in STAGE_LABELS.items()}, "kind": {k.value: v for k, v in NOTE_KIND_LABELS.items()},
    "type": {k.value: v for k, v in TYPE_LABELS.items()}, "source": {k.value: v for k, v in SOURCE_LABELS.items()},
    "owner": {"mine": _l("Mine"), "pool": _l("Public pool")}, "archived": {"1": _l("yes")},
}
TARGET_LABELS = {
    "customers": _l("Customer"), "users": _l("Account"), "customer_notes": _l("Note"),
    "follow_up_tasks": _l("Follow-up"), "tags": _l("Tag"), "tag_groups": _l("Tag group"),
    "note_templates": _l("Note template"), "import_batches": _l("Import batch"),
}


def kind_label(kind: str) -> str:
    """The kind in words; an unknown kind as it is stored."""
    entry = KINDS.get(kind)
    return str(entry[0]) if entry else kind


def kind_choices(in_use: Iterable[str] = ()) -> list[tuple[str, str]]:
    """(kind, label) of every kind, related kinds together (sign-ins, accounts,
    customers …, as KINDS lists them), then any other kind found in the log."""
    others = sorted(set(in_use) - set(KINDS))
    return [(kind, kind_label(kind)) for kind in [*KINDS, *others]]


def user_names(events) -> dict[int, str]:
    """Display names of the users the details of ``events`` name by id (one query)."""
    ids: set[int] = set()
    for event in events:
        details = event.details or {}
        ids |= {value for key, value in details.items() if key in USER_FIELDS and isinstance(value, int)}
        flt = details.get("filter")
        if isinstance(flt, dict):
            ids |= {one for key, value in flt.items() if key in ("user", "author", "owner")
                    if (one := parse_id(str(value))) is not None}
    if not ids:
        return {}
    return dict(db.session.execute(select(User.id, User.display_name).where(User.id.in_(ids))).all())


def _pair(label, value) -> str:
    return _("%(label)s: %(value)s", label=label, value=value)


def _field_label(key: str) -> str:
    return str(FIELD_LABELS.get(key, key.replace("_", " ")))


def _filter_text(flt: dict, names: dict[int, str], action: str) -> str:
    """An export's filter: "Stage = Intent; Tags = #3, #5"."""
    parts = []
    for name, item in flt.items():
        label = FILTER_LABELS.get(name, name)
        if name == "kind" and action == "export.audit":
            label, text = _l("Event"), kind_label(item)
        elif name in ("user", "author") or (name == "owner" and parse_id(str(item))):
            text = names.get(parse_id(str(item)) or 0, f"#{item}")
        elif name in ("tag", "customer"):
            text = ", ".join(f"#{one}" for one in (item if isinstance(item, list) else [item]))
        else:
            text = str(FILTER_VALUES.get(name, {}).get(item, item))
        parts.append(_("%(label)s = %(value)s", label=label, value=text))
    return _("; ").join(parts)


def _value(key: str, value, names: dict[int, str], action: str = "") -> str:
    if value is None:
        return _("not set") if key == "claim_limit" else _("none") if key in USER_FIELDS else "—"
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if key == "role" and value in set(Role):
        return str(ROLE_LABELS[Role(value)])
    if key in USER_FIELDS:
        return names.get(value, f"#{value}")
    if key in CUSTOMER_FIELDS:
        return f"#{value}"
    if key in COUNTED_FIELDS and isinstance(value, list):
        return str(len(value))
    if key == "format":
        return FORMAT_LABELS.get(value, str(value))
    if key == "filter" and isinstance(value, dict):
        return _filter_text(value, names, action) or _("none")
    if isinstance(value, dict):
        return _("; ").join(_pair(_field_label(name), item) for name, item in value.items())
    if isinstance(value, list):
        return _list(value, key)
    return str(value)


def _list(value, key: str = "") -> str:
    if not isinstance(value, list):
        return str(value)
    labels = {**{k.value: v for k, v in NOTE_KIND_LABELS.items()}, **{k.value: v for k, v in STAGE_LABELS.items()}}
    words = [str(labels.get(item, item)) if key in SPECS else str(item) for item in value]
    return ", ".join(words) if words else _("none")


def _change(key: str, pair, names) -> str:
    old, new = pair
    if key in SPECS:
        old, new = (_list(v, key) if isinstance(v, list) else _value(key, v, names) for v in (old, new))
    else:
        old, new = _value(key, old, names), _value(key, new, names)
    return f"{old} → {new}"


def describe(event, names: dict[int, str] | None = None) -> list[str]:
    """The details of ``event`` as sentences, "label: value", its kind's fields first;
    old → new pairs of account and settings changes as "label: old → new"."""
    details = dict(event.details or {})
    names = names or {}
    known = KINDS.get(event.action, (None, ()))[1]
    keys = [key for key in known if key in details] + [key for key in details if key not in known]
    changes = event.action in ("user.update", "settings.change")
    sentences = []
    for key in keys:
        value = details[key]
        if changes and isinstance(value, list) and len(value) == 2 and key != "username":
            text = _change(key, value, names)
        else:
            text = _value(key, value, names, event.action)
        sentences.append(_pair(_field_label(key), text))
    return sentences


def describe_target(event) -> str:
    """The object of a line in words: "Customer #12", "Account #3"."""
    if not event.target_type:
        return ""
    label = TARGET_LABELS.get(event.target_type)
    return f"{label} #{event.target_id}" if label else f"{event.target_type} #{event.target_id}"
