"""Export columns in words: each column's header in the user's language, and stored
codes (stage "intent", note kind "call", pool event "claim") as the labels the pages
show."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

from blueprints.customers.forms import IMPORTANCE_LABELS, SOURCE_LABELS, STAGE_LABELS, TYPE_LABELS
from blueprints.notes.forms import KIND_LABELS, SECTION_LABELS
from blueprints.pool_admin import EVENT_LABELS

HEADERS = {
    "id": _l("No."), "name": _l("Name"), "company": _l("Company"), "phones": _l("Phone"),
    "email": _l("Email"), "address": _l("Address"), "region": _l("Region"), "type": _l("Type"),
    "stage": _l("Stage"), "importance": _l("Importance"), "source": _l("Source"), "birthday": _l("Birthday"),
    "owner": _l("Owner"), "tags": _l("Tags"), "last_contact": _l("Last contact"), "created": _l("Created"),
    "contacted": _l("Contact time"), "customer_id": _l("Customer no."), "customer": _l("Customer"),
    "kind": _l("Kind"), "author": _l("Author"), "body": _l("Note"), **SECTION_LABELS,
    "note_id": _l("Note no."), "title": _l("Follow-up"), "due": _l("Due"), "assignee": _l("Assignee"),
    "done": _l("Done"), "at": _l("Time"), "event": _l("Event"), "actor": _l("By"), "from_user": _l("From"),
    "to_user": _l("To"), "reason": _l("Reason"), "user": _l("Changed by"), "field": _l("Field"),
    "old": _l("Before"), "new": _l("After"), "who": _l("Who"), "action": _l("Event"), "object": _l("Object"),
    "ip": _l("IP address"), "details": _l("Details"),
}


def _by_value(labels: dict) -> dict:
    return {getattr(key, "value", key): label for key, label in labels.items()}


VALUE_LABELS = {
    "type": _by_value(TYPE_LABELS), "stage": _by_value(STAGE_LABELS), "source": _by_value(SOURCE_LABELS),
    "importance": _by_value(IMPORTANCE_LABELS), "kind": _by_value(KIND_LABELS), "event": _by_value(EVENT_LABELS),
    # The field history (C5) keeps field names and stored values.
    "field": {**HEADERS, "owner_id": _l("Owner"), "archived": _l("Archived"), "merged": _l("Merged")},
    "old": _by_value({**STAGE_LABELS, **TYPE_LABELS, **SOURCE_LABELS}),
    "new": _by_value({**STAGE_LABELS, **TYPE_LABELS, **SOURCE_LABELS}),
}


def header(columns: list[str]) -> list[str]:
    return [str(HEADERS.get(column, column)) for column in columns]


def in_words(columns: list[str], rows):
    """``rows`` (dicts keyed by column) as lists of cells, codes put into words. The
    labels are translated once per export, not once per cell."""
    words = {column: {code: str(label) for code, label in VALUE_LABELS[column].items()}
             for column in columns if column in VALUE_LABELS}
    plain = [(column, words.get(column)) for column in columns]
    for row in rows:
        yield [row[column] if labels is None or row[column] is None else labels.get(row[column], row[column])
               for column, labels in plain]
