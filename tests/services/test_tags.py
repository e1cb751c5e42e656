"""services.tags: groups, tags, merge, delete, counts; every refusal."""

import pytest
from sqlalchemy import func, select, text

from extensions import db
from models import COLOURS, AuditEvent, Customer, CustomerNote, Tag, TagGroup, User, customer_tags, note_tags
from services import tags
from services.errors import DomainError
from tests.factories import make_customer as _customer


@pytest.fixture
def manager(app, make_user):
    user = make_user("manager")
    with app.app_context():
        yield db.session.get(User, user.id)


def _note(actor, customer, tag_list=(), **kw):
    note = CustomerNote(customer_id=customer.id, author_id=actor.id, kind="call", body="来电", **kw)
    note.tags.extend(tag_list)
    db.session.add(note)
    db.session.commit()
    return note


def _audit(action):
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def _links(table, tag_id):
    return db.session.scalar(select(func.count()).select_from(table).where(table.c.tag_id == tag_id))


# ---- groups ----------------------------------------------------------------------------

def test_groups_come_in_position_order_with_their_tags(manager):
    industry = tags.create_group(manager, "行业", "blue")
    need = tags.create_group(manager, "需求", "green")
    tags.create_tag(manager, industry.id, "制造业")
    tags.create_tag(manager, industry.id, "教育")
    assert (industry.position, need.position) == (1, 2)
    groups = tags.all_groups()
    assert [g.name for g in groups] == ["行业", "需求"]
    assert sorted(t.name for t in groups[0].tags) == ["制造业", "教育"]
    assert groups[1].tags == []
    assert _audit("tag_group.create")[0].details == {"name": "行业"}


def _as_shown(groups) -> list:
    return [((g.id, g.name, g.colour, g.position),
             [(t.id, t.group_id, t.name, t.colour, t.shown_colour, t.group.name) for t in g.tags]) for g in groups]


def test_shown_groups_are_the_groups_and_tags_as_all_groups_has_them(manager):
    industry = tags.create_group(manager, "行业", "blue")
    tags.create_group(manager, "空组", "grey")
    need = tags.create_group(manager, "需求", "green")
    for group, name, colour in ((industry, "制造业", ""), (industry, "教育", "red"), (need, "报价", ""),
                                (industry, "Alpha", "")):
        tags.create_tag(manager, group.id, name, colour)
    db.session.commit()
    shown = tags.shown_groups()
    assert _as_shown(shown) == _as_shown(tags.all_groups())
    assert {t.name: t.shown_colour for t in shown[0].tags} == {"制造业": "blue", "教育": "red", "Alpha": "blue"}
    assert shown[1].tags == ()


def test_shown_groups_are_kept_while_the_rows_stay_and_remade_after_any_change(manager):
    industry = tags.create_group(manager, "行业", "blue")
    made = tags.create_tag(manager, industry.id, "制造业")
    db.session.commit()
    first = tags.shown_groups()
    again = tags.shown_groups()
    assert again[0] is first[0] and again[0].tags[0] is first[0].tags[0]  # no new objects
    again.append("a caller's own list")
    assert len(tags.shown_groups()) == 1

    tags.update_tag(manager, made, name="制造", colour="red")
    db.session.commit()
    (renamed,) = tags.shown_groups()[0].tags
    assert (renamed.name, renamed.shown_colour) == ("制造", "red") and first[0].tags[0].name == "制造业"

    # Another process's change, committed on a connection of its own.
    group_id, tag_id, manager_id = industry.id, made.id, manager.id
    db.session.close()  # no transaction of this thread's in the way
    with db.engine.connect() as other, other.begin():
        other.execute(text("UPDATE tag_groups SET colour = 'teal' WHERE id = :id"), {"id": group_id})
        other.execute(text("UPDATE tags SET colour = '' WHERE id = :id"), {"id": tag_id})
    (recoloured,) = tags.shown_groups()[0].tags
    assert recoloured.shown_colour == "teal"

    tags.delete_tag(db.session.get(User, manager_id), db.session.get(Tag, tag_id))
    db.session.commit()
    assert tags.shown_groups()[0].tags == ()
    tags.delete_group(db.session.get(User, manager_id), db.session.get(TagGroup, group_id))
    db.session.commit()
    assert tags.shown_groups() == []


@pytest.mark.parametrize("name, colour, field", [
    ("", "grey", "name"),
    ("   ", "grey", "name"),
    ("x" * 33, "grey", "name"),
    ("ok", "magenta", "colour"),
    ("ok", "", "colour"),
])
def test_group_bad_input_is_refused_at_the_field(manager, name, colour, field):
    with pytest.raises(DomainError) as refused:
        tags.create_group(manager, name, colour)
    assert refused.value.field == field
    assert db.session.scalar(select(func.count()).select_from(TagGroup)) == 0


def test_group_names_are_unique_ignoring_case_and_spaces(manager):
    tags.create_group(manager, "Region", "grey")
    with pytest.raises(DomainError) as refused:
        tags.create_group(manager, "  region ", "blue")
    assert refused.value.field == "name"


def test_group_name_of_32_characters_is_fine_and_trimmed(manager):
    group = tags.create_group(manager, "  " + "组" * 32 + " ", "teal")
    assert group.name == "组" * 32


def test_rename_and_recolour_group(manager):
    group = tags.create_group(manager, "地区", "purple")
    other = tags.create_group(manager, "阶段", "orange")
    tags.rename_group(manager, group, "区域")
    assert db.session.get(TagGroup, group.id).name == "区域"
    tags.update_group(manager, group, name="区域", colour="red")
    assert group.colour == "red"
    assert [e.details for e in _audit("tag_group.rename")] == [{"old": "地区", "new": "区域"}]
    with pytest.raises(DomainError) as refused:
        tags.rename_group(manager, group, "阶段")
    assert refused.value.field == "name"
    tags.rename_group(manager, other, "阶段")  # its own name is not "taken"


def test_only_an_empty_group_can_be_deleted(manager):
    group = tags.create_group(manager, "其他", "grey")
    tag = tags.create_tag(manager, group.id, "待定")
    with pytest.raises(DomainError):
        tags.delete_group(manager, group)
    tags.delete_tag(manager, tag)
    group_id = group.id
    tags.delete_group(manager, group)
    assert db.session.get(TagGroup, group_id) is None
    event = _audit("tag_group.delete")[0]
    assert (event.target_type, event.target_id, event.details) == ("tag_groups", group_id, {"name": "其他"})


# ---- tags ------------------------------------------------------------------------------

def test_create_tag_uses_the_group_colour_unless_given(manager):
    group = tags.create_group(manager, "行业", "blue")
    plain = tags.create_tag(manager, group.id, " 金融 ")
    red = tags.create_tag(manager, group.id, "医疗", "red")
    assert (plain.name, plain.colour, plain.shown_colour) == ("金融", "", "blue")
    assert red.shown_colour == "red"
    assert [e.details["name"] for e in _audit("tag.create")] == ["金融", "医疗"]


@pytest.mark.parametrize("name, colour, field", [
    ("", "", "name"),
    ("x" * 33, "", "name"),
    ("VIP", "", "name"),  # taken, other case
    ("ok", "rainbow", "colour"),
])
def test_tag_bad_input_is_refused_at_the_field(manager, name, colour, field):
    group = tags.create_group(manager, "其他", "grey")
    tags.create_tag(manager, group.id, "vip")
    with pytest.raises(DomainError) as refused:
        tags.create_tag(manager, group.id, name, colour)
    assert refused.value.field == field
    assert db.session.scalar(select(func.count()).select_from(Tag)) == 1


def test_same_tag_name_in_another_group_is_fine(manager):
    a = tags.create_group(manager, "需求", "green")
    b = tags.create_group(manager, "阶段", "orange")
    tags.create_tag(manager, a.id, "观望")
    assert tags.create_tag(manager, b.id, "观望").group_id == b.id


def test_create_tag_in_unknown_group(manager):
    with pytest.raises(DomainError) as refused:
        tags.create_tag(manager, 999999, "x")
    assert refused.value.field == "group_id"


def test_every_colour_is_accepted(manager):
    group = tags.create_group(manager, "颜色", "grey")
    for colour in COLOURS:
        tags.create_tag(manager, group.id, colour, colour)
    assert {t.colour for t in tags.all_groups()[0].tags} == set(COLOURS)


def test_rename_tag_shows_on_customers_and_notes_and_is_announced(manager):
    group = tags.create_group(manager, "行业", "blue")
    tag = tags.create_tag(manager, group.id, "互联网")
    customer = _customer(manager, "张三", tag_ids=[tag.id])
    note = _note(manager, customer, [tag])
    heard = []

    def listener(_sender, **kw):
        heard.append(kw)

    tags.tags_changed.connect(listener)
    try:
        tags.rename_tag(manager, tag, "IT")
    finally:
        tags.tags_changed.disconnect(listener)
    assert [t.name for t in db.session.get(Customer, customer.id).tags] == ["IT"]
    assert [t.name for t in db.session.get(CustomerNote, note.id).tags] == ["IT"]
    assert heard == [{"customer_ids": [customer.id], "note_ids": [note.id]}]
    assert _audit("tag.rename")[0].details == {"old": "互联网", "new": "IT"}


def test_rename_refusals(manager):
    group = tags.create_group(manager, "行业", "blue")
    tag = tags.create_tag(manager, group.id, "教育")
    tags.create_tag(manager, group.id, "医疗")
    db.session.commit()
    for bad in ("", "医疗", "y" * 33):
        with pytest.raises(DomainError) as refused:
            tags.rename_tag(manager, tag, bad)
        assert refused.value.field == "name"
    db.session.rollback()
    assert db.session.get(Tag, tag.id).name == "教育"
    tags.rename_tag(manager, tag, "教育")  # unchanged: fine, nothing audited
    assert _audit("tag.rename") == []


def test_set_tag_colour(manager):
    group = tags.create_group(manager, "行业", "blue")
    tag = tags.create_tag(manager, group.id, "教育")
    tags.set_tag_colour(manager, tag, "amber")
    assert tag.shown_colour == "amber"
    tags.set_tag_colour(manager, tag, "")
    assert tag.shown_colour == "blue"
    with pytest.raises(DomainError) as refused:
        tags.set_tag_colour(manager, tag, "#ff0000")
    assert refused.value.field == "colour"


def test_script_in_a_name_is_stored_as_text(manager):
    group = tags.create_group(manager, "<b>g</b>", "grey")
    tag = tags.create_tag(manager, group.id, "<script>x</script>")
    assert db.session.get(Tag, tag.id).name == "<script>x</script>"


# ---- merge and delete ------------------------------------------------------------------

@pytest.fixture
def tagged(manager):
    """Two tags; customers and notes carrying one, the other, or both."""
    group = tags.create_group(manager, "需求", "green")
    source = tags.create_tag(manager, group.id, "报价")
    target = tags.create_tag(manager, group.id, "询价")
    only_source = _customer(manager, "甲", tag_ids=[source.id])
    both = _customer(manager, "乙", tag_ids=[source.id, target.id])
    only_target = _customer(manager, "丙", tag_ids=[target.id])
    notes = [_note(manager, only_source, [source]), _note(manager, both, [source, target]),
             _note(manager, both, [target])]
    return dict(source=source, target=target, customers=[only_source, both, only_target], notes=notes)


def test_merge_moves_customers_and_notes_without_duplicates(manager, tagged):
    source, target = tagged["source"], tagged["target"]
    source_id, target_id = source.id, target.id
    moved = tags.merge_tags(manager, source, target)
    assert moved == tags.Usage(customers=2, notes=2)
    assert db.session.get(Tag, source_id) is None
    assert _links(customer_tags, source_id) == 0 and _links(note_tags, source_id) == 0
    assert _links(customer_tags, target_id) == 3 and _links(note_tags, target_id) == 3
    for customer in tagged["customers"]:
        assert [t.name for t in db.session.get(Customer, customer.id).tags] == ["询价"]
    for note in tagged["notes"]:
        assert [t.id for t in db.session.get(CustomerNote, note.id).tags] == [target_id]
    event = _audit("tag.merge")[0]
    assert event.target_id == target_id
    assert event.details == {"source_id": source_id, "source_name": "报价", "target_name": "询价",
                             "customers": 2, "notes": 2}


def test_merge_across_groups(manager, tagged):
    other = tags.create_group(manager, "阶段", "orange")
    target = tags.create_tag(manager, other.id, "洽谈")
    tags.merge_tags(manager, tagged["source"], target)
    assert _links(customer_tags, target.id) == 2


def test_merge_into_itself_is_refused(manager, tagged):
    with pytest.raises(DomainError) as refused:
        tags.merge_tags(manager, tagged["source"], tagged["source"])
    assert refused.value.field == "target_id"
    assert _audit("tag.merge") == []


def test_merge_announces_the_items_to_reindex(manager, tagged):
    heard = []

    def listener(_sender, **kw):
        heard.append(kw)

    with tags.tags_changed.connected_to(listener):
        tags.merge_tags(manager, tagged["source"], tagged["target"])
    assert sorted(heard[0]["customer_ids"]) == sorted(c.id for c in tagged["customers"][:2])
    assert sorted(heard[0]["note_ids"]) == sorted(n.id for n in tagged["notes"][:2])


def test_delete_tag_takes_it_off_customers_and_notes(manager, tagged):
    source = tagged["source"]
    source_id = source.id
    removed = tags.delete_tag(manager, source)
    assert removed == tags.Usage(customers=2, notes=2)
    assert db.session.get(Tag, source_id) is None
    assert _links(customer_tags, source_id) == 0 and _links(note_tags, source_id) == 0
    both = db.session.get(Customer, tagged["customers"][1].id)
    assert [t.name for t in both.tags] == ["询价"]
    event = _audit("tag.delete")[0]
    assert (event.target_type, event.target_id) == ("tags", source_id)
    assert event.details == {"name": "报价", "group": "需求", "customers": 2, "notes": 2}


# ---- counts and lookups ------------------------------------------------------------------

def test_usage_counts_skip_deleted_notes(manager, tagged):
    from models import utcnow

    tagged["notes"][0].deleted_at = utcnow()
    db.session.commit()
    usage = tags.usage_counts()
    assert usage[tagged["source"].id] == tags.Usage(customers=2, notes=1)
    assert usage[tagged["target"].id] == tags.Usage(customers=2, notes=2)
    assert tags.usage_counts([tagged["target"].id]).keys() == {tagged["target"].id}


def test_note_tag_counts_follow_the_query(manager, tagged):
    all_notes = select(CustomerNote)
    assert tags.note_tag_counts(all_notes) == {tagged["source"].id: 2, tagged["target"].id: 2}
    of_both = select(CustomerNote).where(CustomerNote.customer_id == tagged["customers"][1].id)
    assert tags.note_tag_counts(of_both.order_by(CustomerNote.id)) == {
        tagged["source"].id: 1, tagged["target"].id: 2}
    assert tags.note_tag_counts(select(CustomerNote).where(CustomerNote.id < 0)) == {}


def test_tags_by_ids_ignores_junk(manager, tagged):
    source, target = tagged["source"], tagged["target"]
    found = tags.tags_by_ids([str(target.id), source.id, "x", "-1", 999999, "²"])
    assert {t.id for t in found} == {source.id, target.id}
    assert tags.tags_by_ids([]) == []
    assert tags.get_tag(source.id) is source and tags.get_tag(999999) is None


def test_toggle_ids():
    assert tags.toggled([3, 7], 3) == [7]
    assert tags.toggled([7], 3) == [7, 3]
    assert tags.toggled([], 5) == [5]
