"""A searcher that a save made stale is reopened on the readers of the segments it
already had (their files never change), each reading the new list of deleted
documents; only the new segments are opened, and the readers of merged ones closed."""

from __future__ import annotations

import pytest

from extensions import db
from services import customers, search
from services.customers import CustomerData
from services.search import store, sync
from tests.factories import make_customer, make_note


def _leaves(searcher) -> dict[str, object]:
    return {reader.segment().segment_id(): reader for reader, _offset in searcher.reader().leaf_readers()}


def _held() -> tuple[object, dict]:
    """The process's idle customers searcher, as the next search takes it."""
    with store.searching(store.CUSTOMERS) as searcher:
        return searcher, _leaves(searcher)


def _ids(user, text: str) -> list[int]:
    return [c.id for c in search.search_customers(user, text).items]


@pytest.fixture
def built(app, staff):
    admin = staff["admin"]
    made = [make_customer(admin, name, commit=True) for name in ("唐三藏", "孙悟空", "猪八戒", "沙悟净")]
    make_note(admin, made[0], "取经报价", commit=True)
    search.rebuild()
    return made


def test_a_stale_searcher_keeps_its_readers_and_sees_what_was_deleted_and_added(app, staff, built):
    admin, renamed = staff["admin"], built[1]
    assert _ids(admin, "悟空") == [renamed.id]
    before, before_leaves = _held()
    (built_segment,) = before_leaves

    customers.update_customer(admin, renamed, CustomerData(name="美猴王"), acknowledge_duplicates=True)
    db.session.commit()  # deletes the old entry in the built segment, adds a segment

    assert _ids(admin, "悟空") == [] and _ids(admin, "美猴王") == [renamed.id]
    after, after_leaves = _held()
    assert after is not before and len(after_leaves) == 2
    kept = after_leaves[built_segment]
    assert kept is not before_leaves[built_segment]  # given the new list of deleted documents …
    assert kept._terms is before_leaves[built_segment]._terms  # … on the same open files
    assert kept.has_deletions() and not before_leaves[built_segment].has_deletions()
    assert _ids(admin, "八戒") == [built[2].id]
    assert search.check().ok


def test_readers_of_segments_merged_away_are_closed(app, staff, built, monkeypatch):
    monkeypatch.setattr(sync, "MERGE_AFTER", 4)
    monkeypatch.setattr(sync, "start_merge", lambda: None)
    admin = staff["admin"]
    for n, customer in enumerate(built):
        customers.update_customer(admin, customer, CustomerData(name=f"取经人{n}号"), acknowledge_duplicates=True)
        db.session.commit()
    _searcher, leaves = _held()
    assert len(leaves) == 5
    sync.merge_small()
    assert [c.id for c in search.search_customers(admin, "取经人").items] == [c.id for c in reversed(built)]
    _searcher, merged = _held()
    assert len(merged) < 5
    for segment_id, reader in leaves.items():
        assert reader.is_closed == (segment_id not in merged)
        if segment_id in merged:
            assert merged[segment_id]._terms is reader._terms


def test_a_searcher_that_cannot_be_reopened_is_replaced_by_a_new_one(app, staff, built, monkeypatch):
    from services.search import whoosh_internals

    admin = staff["admin"]
    before, _leaves_before = _held()
    customers.update_customer(admin, built[1], CustomerData(name="美猴王"), acknowledge_duplicates=True)
    db.session.commit()

    def broken(_ix, _searcher):
        raise OSError("a file went away")

    monkeypatch.setattr(whoosh_internals, "reopened_searcher", broken)
    assert _ids(admin, "美猴王") == [built[1].id]
    assert before.is_closed


def _held_terms(which: str = store.CUSTOMERS) -> dict:
    from services.search import whoosh_internals

    return dict(whoosh_internals._held_terms.get(store.open_index(which).storage.folder, {}))


def _rename(admin, customer, name: str) -> None:
    customers.update_customer(admin, customer, CustomerData(name=name), acknowledge_duplicates=True)
    db.session.commit()


def test_saves_find_the_entries_they_replace_through_terms_readers_kept_between_saves(
        app, staff, built, monkeypatch):
    monkeypatch.setattr(sync, "MERGE_AFTER", 4)
    monkeypatch.setattr(sync, "start_merge", lambda: None)
    admin = staff["admin"]
    _rename(admin, built[1], "美猴王")
    first = _held_terms()
    assert len(first) == 1  # the built segment's, which held the old entry
    _rename(admin, built[2], "天蓬元帅")
    second = _held_terms()
    assert len(second) == 2 and all(second[segment] is reader for segment, reader in first.items())
    assert _ids(admin, "悟空") == [] and _ids(admin, "八戒") == []
    assert _ids(admin, "美猴王") == [built[1].id] and _ids(admin, "天蓬元帅") == [built[2].id]

    _rename(admin, built[3], "卷帘大将")
    _rename(admin, built[0], "旃檀功德佛")
    sync.merge_small()  # five segments: the four small ones become one
    _rename(admin, built[1], "齐天大圣")
    after = _held_terms()
    gone = [reader for segment, reader in second.items() if segment not in after]
    assert gone and all(reader._dbfile.is_closed for reader in gone)
    assert _ids(admin, "美猴王") == [] and _ids(admin, "齐天大圣") == [built[1].id]
    assert search.check().ok


def test_saves_that_write_both_indexes_keep_the_terms_readers_of_both(app, staff, built):
    """A change of owner rewrites the customer's entry and its notes' (they carry the
    owner for the scope): each index's readers stay open across such saves, rather
    than one index's write closing the other's."""
    from services import pool

    manager = staff["manager"]
    pool.assign_customers(manager, [built[0].id], staff["sales"].id)
    db.session.commit()
    first = {which: _held_terms(which) for which in (store.CUSTOMERS, store.NOTES)}
    assert all(len(held) == 1 for held in first.values())  # each index's built segment
    pool.assign_customers(manager, [built[0].id], staff["sales2"].id)
    db.session.commit()
    for which, held in first.items():
        now = _held_terms(which)
        assert len(now) == 2 and all(now[segment] is reader for segment, reader in held.items())
    notes = search.search_notes(staff["sales2"], "报价").items
    assert [note.customer_id for note in notes] == [built[0].id]
    assert search.search_notes(staff["sales"], "报价").items == []
    assert search.check().ok


def test_a_save_whose_kept_terms_readers_fail_reads_the_segments_afresh(app, staff, built, monkeypatch):
    from services.search import whoosh_internals

    def broken(_writer, _terms):
        raise OSError("a file went bad")

    monkeypatch.setattr(whoosh_internals, "live_documents_holding", broken)
    _rename(staff["admin"], built[1], "美猴王")
    assert _ids(staff["admin"], "悟空") == [] and _ids(staff["admin"], "美猴王") == [built[1].id]
    assert search.check().ok


def test_a_forked_child_keeps_none_of_the_parents_open_index_files(app, staff, built):
    """gunicorn --preload forks the app's process: a child reading through the
    parent's file objects would move the parent's read positions."""
    import os

    from services.search import whoosh_internals

    _rename(staff["admin"], built[1], "美猴王")  # a save: terms readers kept
    assert _ids(staff["admin"], "美猴王") == [built[1].id]  # a search: an idle searcher kept
    assert _held_terms() and store._idle
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        os.write(write, b"%d %d" % (len(whoosh_internals._held_terms), len(store._idle)))
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    assert os.read(read, 100) == b"0 0"
    os.close(read)
    assert _held_terms() and store._idle  # the parent's own are untouched


def test_a_searcher_of_an_empty_index_is_reopened_on_the_first_save(app, staff, caplog):
    admin = staff["admin"]
    search.rebuild()  # no customer yet: an index of no segment
    assert _ids(admin, "唐三藏") == []
    customer = make_customer(admin, "唐三藏", commit=True)
    assert _ids(admin, "唐三藏") == [customer.id]
    assert "reopening a searcher failed" not in caplog.text
