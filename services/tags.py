"""Tags (标签) and their groups (T1): create, rename, recolour, merge, delete, and the
per-tag counts that the tag filters show (T2).

Customers and notes refer to tags by id, so a rename or a merge shows everywhere at
once (T3). The search index holds tag names: every change that alters which name a
customer or note carries sends :data:`tags_changed` with their ids, inside the
transaction (before the commit), so that the index's to-do list commits with it.

Every function that changes something flushes it, with its audit line, into the
caller's transaction; the caller commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from blinker import Namespace
from flask_babel import lazy_gettext as _l
from sqlalchemy import Integer, delete, exists, func, insert, literal, select
from sqlalchemy.orm import joinedload

from extensions import db
from models import COLOURS, CustomerNote, Tag, TagGroup, User, customer_tags, note_tags
from services import audit
from services.errors import DomainError, refused_if_taken
from services.ids import parse_ids

NAME_MAX = 32

_signals = Namespace()
#: Sent, inside the transaction, by a change to the tag names some customers or notes carry
#: (rename, merge, delete). Keyword arguments: ``customer_ids``, ``note_ids``.
tags_changed = _signals.signal("tags-changed")


@dataclass(frozen=True)
class Usage:
    """How many customers and (not deleted) notes carry a tag."""

    customers: int = 0
    notes: int = 0


# ---- reading ---------------------------------------------------------------------------

def all_groups() -> list[TagGroup]:
    """Every group in display order, each with its ``tags`` loaded (sorted by name):
    one query, the ORM objects, for the pages that manage tags. Pages that only
    show or offer them take :func:`shown_groups`."""
    return list(db.session.scalars(
        select(TagGroup).options(joinedload(TagGroup.tags)).order_by(TagGroup.position, TagGroup.id)
    ).unique())


class ShownGroup:
    """A tag group as the pickers and filters show it (:func:`shown_groups`): the
    group's columns and its ``tags`` (ShownTag, by name). Read-only: one process's
    requests share it."""

    __slots__ = ("id", "name", "colour", "position", "tags")

    def __init__(self, id: int, name: str, colour: str, position: int) -> None:
        self.id, self.name, self.colour, self.position = id, name, colour, position
        self.tags: tuple[ShownTag, ...] = ()


class ShownTag:
    """A tag of a :class:`ShownGroup`, with the attributes the tag macros read (as a
    ``Tag``'s): ``id``, ``name``, ``colour``, ``shown_colour`` and ``group``."""

    __slots__ = ("id", "group_id", "name", "colour", "group", "shown_colour")

    def __init__(self, id: int, name: str, colour: str, group: ShownGroup) -> None:
        self.id, self.group_id, self.name, self.colour, self.group = id, group.id, name, colour, group
        self.shown_colour = colour or group.colour


# The last rows shown_groups() read in this process, the groups made of them, and
# their tags by id.
_shown: tuple[tuple, list[ShownGroup], dict[int, ShownTag]] = ((), [], {})


def shown_groups() -> list[ShownGroup]:
    """Every group in display order with its tags by name, as :func:`all_groups`,
    for the pages that show or offer tags (pickers, filters) and change none. The
    rows are read in the caller's transaction every time (one small statement);
    while they are the same as the last ones this process read, the same objects are
    returned. Making ORM objects of them cost 0.7-1.5 ms a request; any change,
    by any process, is a different set of rows."""
    return list(_current_snapshot()[1])


def _current_snapshot() -> tuple[tuple, list[ShownGroup], dict[int, ShownTag]]:
    """The snapshot of :func:`shown_groups`, checked against the rows now."""
    global _shown
    rows: tuple[tuple[Any, ...], ...] = tuple(map(tuple, db.session.execute(
        select(TagGroup.id, TagGroup.name, TagGroup.colour, TagGroup.position, Tag.id, Tag.name, Tag.colour)
        .outerjoin(Tag, Tag.group_id == TagGroup.id)
        .order_by(TagGroup.position, TagGroup.id, Tag.name, Tag.id))))
    if rows == _shown[0]:
        return _shown
    groups: list[ShownGroup] = []
    tags_of: dict[int, list[ShownTag]] = {}
    for group_id, group_name, group_colour, position, tag_id, tag_name, tag_colour in rows:
        if group_id not in tags_of:
            groups.append(ShownGroup(group_id, group_name, group_colour, position))
            tags_of[group_id] = []
        if tag_id is not None:
            tags_of[group_id].append(ShownTag(tag_id, tag_name, tag_colour, groups[-1]))
    for group in groups:
        group.tags = tuple(tags_of[group.id])
    _shown = (rows, groups, {tag.id: tag for group in groups for tag in group.tags})
    return _shown


def shown_tags_by_key(tag_keys) -> dict[str, tuple[ShownTag, ...]]:
    """For each of ``tag_keys`` (``Customer.tag_key``: a customer's tag ids), those
    tags from the :func:`shown_groups` snapshot, by name: a list page's rows show
    their customers' tags without loading Tag objects for them (1-3 ms a page)."""
    keys = set(tag_keys)
    if not keys:
        return {}
    by_id = _current_snapshot()[2]
    shown = {}
    for key in keys:
        found = (by_id.get(tag_id) for tag_id in ids_in_key(key))
        shown[key] = tuple(sorted((tag for tag in found if tag is not None), key=_by_name))
    return shown


@lru_cache(maxsize=8192)
def ids_in_key(key: str | None) -> tuple[int, ...]:
    """The tag ids a ``Customer.tag_key`` names ("3,7,12"). A stage filter's counts
    read some 1,600 keys, the same ones request after request: parsed once per process."""
    return tuple(int(tag_id) for tag_id in key.split(",")) if key else ()


def _by_name(tag: ShownTag) -> tuple[str, int]:
    return tag.name, tag.id


def get_group(group_id: int) -> TagGroup | None:
    return db.session.get(TagGroup, group_id)


def get_tag(tag_id: int) -> Tag | None:
    return db.session.get(Tag, tag_id)


def tags_by_ids(ids) -> list[Tag]:
    """The tags with these ids (ints or digit strings; anything else and unknown ids
    are ignored), in display order: by group, then name."""
    wanted = parse_ids(ids)
    if not wanted:
        return []
    return list(db.session.scalars(
        select(Tag).join(TagGroup).where(Tag.id.in_(wanted))
        .order_by(TagGroup.position, TagGroup.id, Tag.name)
    ))


def toggled(selected_ids, tag_id: int) -> list[int]:
    """``selected_ids`` with ``tag_id`` added, or removed if it was there: the ids a
    tag filter chip links to."""
    ids = [i for i in selected_ids if i != tag_id]
    return ids if len(ids) != len(list(selected_ids)) else [*ids, tag_id]


def usage_counts(tag_ids=None) -> dict[int, Usage]:
    """Per tag id, how many customers and not-deleted notes carry it; only
    ``tag_ids`` when given. Tags nobody uses are absent (read as ``Usage()``)."""
    customer_rows = select(customer_tags.c.tag_id, func.count()).group_by(customer_tags.c.tag_id)
    note_rows = (
        select(note_tags.c.tag_id, func.count())
        .join(CustomerNote, CustomerNote.id == note_tags.c.note_id)
        .where(CustomerNote.deleted_at.is_(None))
        .group_by(note_tags.c.tag_id)
    )
    if tag_ids is not None:
        customer_rows = customer_rows.where(customer_tags.c.tag_id.in_(list(tag_ids)))
        note_rows = note_rows.where(note_tags.c.tag_id.in_(list(tag_ids)))
    customers = dict(db.session.execute(customer_rows).all())
    notes = dict(db.session.execute(note_rows).all())
    return {
        tag_id: Usage(customers.get(tag_id, 0), notes.get(tag_id, 0))
        for tag_id in customers.keys() | notes.keys()
    }


def note_tag_counts(note_query) -> dict[int, int]:
    """Per tag id, how many notes of ``note_query`` (a ``select(CustomerNote)``, not
    paged) carry it: the counts beside the notes list's tag filter."""
    ids = note_query.with_only_columns(CustomerNote.id).order_by(None)
    rows = db.session.execute(
        select(note_tags.c.tag_id, func.count())
        .where(note_tags.c.note_id.in_(ids))
        .group_by(note_tags.c.tag_id)
    )
    return {tag_id: count for tag_id, count in rows}


# ---- checks ----------------------------------------------------------------------------

def _clean_name(name: str | None, field: str = "name") -> str:
    """The trimmed name. Raises DomainError(field) when empty or too long."""
    name = " ".join((name or "").split())
    if not name:
        raise DomainError(_l("Enter a name."), field)
    if len(name) > NAME_MAX:
        raise DomainError(_l("At most %(max)d characters.", max=NAME_MAX), field)
    return name


def _check_colour(colour: str, *, allow_empty: bool = False, field: str = "colour") -> str:
    """Raises DomainError(field) for a colour that is not in models.COLOURS."""
    if colour == "" and allow_empty:
        return colour
    if colour not in COLOURS:
        raise DomainError(_l("Choose one of the colours offered."), field)
    return colour


def _check_tag_name_free(group_id: int, name: str, *, exclude_id: int | None = None) -> None:
    # Compared in Python: SQLite's lower() only folds ASCII, and a group holds a few
    # dozen tags at most.
    taken = db.session.execute(
        select(Tag.id, Tag.name).where(Tag.group_id == group_id)
    ).all()
    if any(n.casefold() == name.casefold() and i != exclude_id for i, n in taken):
        raise DomainError(_l("This group already has a tag of that name."), "name")


def _check_group_name_free(name: str, *, exclude_id: int | None = None) -> None:
    taken = db.session.execute(select(TagGroup.id, TagGroup.name)).all()
    if any(n.casefold() == name.casefold() and i != exclude_id for i, n in taken):
        raise DomainError(_l("A group of that name exists already."), "name")


def _carriers(tag_id: int) -> tuple[list[int], list[int]]:
    """Ids of the customers and the notes carrying ``tag_id``."""
    customers = db.session.scalars(
        select(customer_tags.c.customer_id).where(customer_tags.c.tag_id == tag_id)
    ).all()
    notes = db.session.scalars(select(note_tags.c.note_id).where(note_tags.c.tag_id == tag_id)).all()
    return list(customers), list(notes)


def _announce(customer_ids, note_ids) -> None:
    if customer_ids or note_ids:
        tags_changed.send(None, customer_ids=list(customer_ids), note_ids=list(note_ids))


# ---- groups ----------------------------------------------------------------------------

def create_group(actor: User, name: str, colour: str = "grey", *, ip: str | None = None) -> TagGroup:
    """Add a group at the end. Raises DomainError("name") for an empty, too long or
    taken name, DomainError("colour") for an unknown colour."""
    name = _clean_name(name)
    colour = _check_colour(colour)
    _check_group_name_free(name)
    last = db.session.scalar(select(func.max(TagGroup.position))) or 0
    group = TagGroup(name=name, colour=colour, position=last + 1)
    with refused_if_taken(_l("A group of that name exists already.")):
        db.session.add(group)
    audit.record("tag_group.create", actor, ip=ip, target=group, name=name)
    db.session.flush()
    return group


def rename_group(actor: User, group: TagGroup, name: str, *, ip: str | None = None) -> None:
    """Rename a group. Raises DomainError("name") like :func:`create_group`."""
    update_group(actor, group, name=name, colour=group.colour, ip=ip)


def update_group(actor: User, group: TagGroup, *, name: str, colour: str, ip: str | None = None) -> None:
    """Rename and/or recolour a group (its tags without a colour of their own follow).
    Raises DomainError("name") or DomainError("colour"); nothing is saved then."""
    name = _clean_name(name)
    colour = _check_colour(colour)
    _check_group_name_free(name, exclude_id=group.id)
    old_name = group.name
    with refused_if_taken(_l("A group of that name exists already.")):
        group.name, group.colour = name, colour
    if name != old_name:
        audit.record("tag_group.rename", actor, ip=ip, target=group, old=old_name, new=name)
    db.session.flush()


def delete_group(actor: User, group: TagGroup, *, ip: str | None = None) -> None:
    """Delete an empty group. Raises DomainError when it still holds tags (merge or
    delete them first)."""
    if db.session.scalar(select(func.count()).select_from(Tag).where(Tag.group_id == group.id)):
        raise DomainError(_l("Only an empty group can be deleted: merge or delete its tags first."))
    audit.record("tag_group.delete", actor, ip=ip, target_type="tag_groups", target_id=group.id,
                 name=group.name)
    db.session.delete(group)
    db.session.flush()


# ---- tags ------------------------------------------------------------------------------

def create_tag(actor: User, group_id: int, name: str, colour: str = "", *, ip: str | None = None) -> Tag:
    """Add a tag to a group; an empty colour means the group's. Raises
    DomainError("group_id") for an unknown group, DomainError("name") for an empty,
    too long or taken name, DomainError("colour") for an unknown colour."""
    group = db.session.get(TagGroup, group_id) if group_id else None
    if group is None:
        raise DomainError(_l("Choose a group."), "group_id")
    name = _clean_name(name)
    colour = _check_colour(colour, allow_empty=True)
    _check_tag_name_free(group.id, name)
    with refused_if_taken(_l("This group already has a tag of that name.")):
        tag = Tag(group=group, name=name, colour=colour)
        db.session.add(tag)
    audit.record("tag.create", actor, ip=ip, target=tag, name=name, group=group.name)
    db.session.flush()
    return tag


def rename_tag(actor: User, tag: Tag, name: str, *, ip: str | None = None) -> None:
    """Rename a tag; every customer and note shows the new name at once. Raises
    DomainError("name") for an empty, too long or taken name."""
    update_tag(actor, tag, name=name, colour=tag.colour, ip=ip)


def set_tag_colour(actor: User, tag: Tag, colour: str) -> None:
    """Give a tag its own colour, or ``""`` for its group's. Raises
    DomainError("colour") for an unknown colour."""
    tag.colour = _check_colour(colour, allow_empty=True)
    db.session.flush()


def update_tag(actor: User, tag: Tag, *, name: str, colour: str, ip: str | None = None) -> None:
    """Rename and/or recolour a tag in one save. Raises DomainError("name") or
    DomainError("colour"); nothing is saved then."""
    name = _clean_name(name)
    colour = _check_colour(colour, allow_empty=True)
    _check_tag_name_free(tag.group_id, name, exclude_id=tag.id)
    old_name = tag.name
    with refused_if_taken(_l("This group already has a tag of that name.")):
        tag.name, tag.colour = name, colour
    renamed = name != old_name
    if renamed:
        audit.record("tag.rename", actor, ip=ip, target=tag, old=old_name, new=name)
    if renamed:
        _announce(*_carriers(tag.id))
    db.session.flush()


def merge_tags(actor: User, source: Tag, target: Tag, *, ip: str | None = None) -> Usage:
    """Give every customer and note that carries ``source`` the tag ``target``
    (once: an item carrying both keeps one row), then delete ``source``. Returns
    how many customers and notes carried ``source``. Raises DomainError("target_id")
    when both are the same tag."""
    if source.id == target.id:
        raise DomainError(_l("Choose another tag to merge into."), "target_id")
    customer_ids, note_ids = _carriers(source.id)
    _copy_links(customer_tags, "customer_id", source.id, target.id)
    _copy_links(note_tags, "note_id", source.id, target.id)
    moved = Usage(len(customer_ids), len(note_ids))
    audit.record("tag.merge", actor, ip=ip, target=target, source_id=source.id,
                 source_name=source.name, target_name=target.name,
                 customers=moved.customers, notes=moved.notes)
    _announce(customer_ids, note_ids)
    _delete_tag_row(source)
    db.session.flush()
    return moved


def _copy_links(table, item_column: str, source_id: int, target_id: int) -> None:
    """INSERT … SELECT the (item, target) pairs that do not exist yet: portable to
    SQLite and PostgreSQL, and never a duplicate of a composite primary key."""
    item = table.c[item_column]
    already = table.alias("already")
    pairs = select(item, literal(target_id, Integer)).where(
        table.c.tag_id == source_id,
        ~exists().where(already.c[item_column] == item, already.c.tag_id == target_id),
    )
    statement = insert(table)
    if db.session.get_bind().dialect.name == "postgresql":
        # Under READ COMMITTED someone may tag an item with ``target`` meanwhile.
        # (SQLite's writers queue behind BEGIN IMMEDIATE, so there it cannot happen.)
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        statement = pg_insert(table).on_conflict_do_nothing()
    db.session.execute(statement.from_select([item_column, "tag_id"], pairs))


def _delete_tag_row(tag: Tag) -> None:
    db.session.execute(delete(customer_tags).where(customer_tags.c.tag_id == tag.id))
    db.session.execute(delete(note_tags).where(note_tags.c.tag_id == tag.id))
    db.session.delete(tag)


def delete_tag(actor: User, tag: Tag, *, ip: str | None = None) -> Usage:
    """Delete a tag and take it off every customer and note. Returns how many
    carried it."""
    customer_ids, note_ids = _carriers(tag.id)
    removed = Usage(len(customer_ids), len(note_ids))
    audit.record("tag.delete", actor, ip=ip, target_type="tags", target_id=tag.id, name=tag.name,
                 group=tag.group.name, customers=removed.customers, notes=removed.notes)
    _announce(customer_ids, note_ids)
    _delete_tag_row(tag)
    db.session.flush()
    return removed
