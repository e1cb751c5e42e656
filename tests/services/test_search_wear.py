"""An index worn by saves (replaced entries left in the built segment, entries added
in small segments) is written anew by the nightly housekeeping; a fresh or little
worn one is left as it is."""

from __future__ import annotations

import pytest
from flask_babel import force_locale

from extensions import db
from services import customers, nightly, search
from services.customers import CustomerData
from services.search import build, store
from tests.factories import make_customer, make_note


@pytest.fixture
def built(app, staff):
    """Ten customers, a note, and an index built from them (one segment each)."""
    admin = staff["admin"]
    made = [make_customer(admin, f"客户{n}号", commit=True) for n in range(10)]
    make_note(admin, made[0], "报价单已发送", commit=True)
    search.rebuild()
    return made


def _rename(actor, customer, name: str) -> None:
    customers.update_customer(actor, customer, CustomerData(name=name), acknowledge_duplicates=True)
    db.session.commit()  # the index follows the commit: the old entry deleted, the new one added


def test_a_fresh_index_is_not_worn_and_the_nightly_job_leaves_it(app, built):
    assert search.wear() == {store.CUSTOMERS: search.Wear(entries=10, replaced=0, added=0, segments=1),
                             store.NOTES: search.Wear(entries=1, replaced=0, added=0, segments=1)}
    generation = store.current_generation()
    said: list[str] = []
    assert nightly.tidy_search_index(said.append) == {"code": "index_ok"}
    assert said == ["The index matches the database."]
    assert store.current_generation() == generation


def test_saves_wear_the_index_and_the_nightly_job_writes_it_anew(app, staff, built, monkeypatch):
    """... in a process of its own: the job runs in a thread of a serving worker."""
    monkeypatch.setattr(build, "WORN_MIN", 3)
    monkeypatch.setattr(build, "rebuild", lambda **_: pytest.fail("rebuilt in the serving process"))
    admin = staff["admin"]
    for customer, name in zip(built, ["周杰伦", "林俊杰", "蔡依林"], strict=False):
        _rename(admin, customer, name)
    worn = search.wear()[store.CUSTOMERS]
    assert (worn.entries, worn.replaced, worn.added, worn.segments) == (13, 3, 3, 4) and worn.worn
    generation = store.current_generation()

    said: list[str] = []
    details = nightly.tidy_search_index(said.append)

    assert details == {"code": "index_compacted", "replaced": 3, "customers": 10, "notes": 1}
    assert said[-1].startswith("The index was written anew, without 3 replaced entries: 10 customers, 1 notes")
    assert store.current_generation() != generation
    assert search.wear()[store.CUSTOMERS] == search.Wear(entries=10, replaced=0, added=0, segments=1)
    assert [c.name for c in search.search_customers(admin, "zjl").items] == ["周杰伦"]
    assert built[0].id not in [c.id for c in search.search_customers(admin, "客户0号").items]
    assert search.search_notes(admin, "报价").total == 1
    assert search.check().ok


def test_a_little_wear_is_left_for_another_night(app, staff, built):
    _rename(staff["admin"], built[0], "周杰伦")
    worn = search.wear()[store.CUSTOMERS]
    assert (worn.replaced, worn.added) == (1, 1) and not worn.worn  # WORN_MIN is 500
    generation = store.current_generation()
    assert nightly.tidy_search_index(lambda _said: None) == {"code": "index_ok"}
    assert store.current_generation() == generation


def test_the_nightly_run_says_what_it_did_in_the_readers_language(app, staff, built, monkeypatch):
    monkeypatch.setattr(build, "WORN_MIN", 1)
    _rename(staff["admin"], built[0], "周杰伦")
    outcome = nightly.run("search", force=True, started_by="test")
    assert outcome.ran and outcome.ok, outcome.message
    assert outcome.details["code"] == "index_compacted"
    details = {"code": "index_compacted", "replaced": 1, "customers": 10, "notes": 1}
    with app.test_request_context(), force_locale("en"):
        assert nightly.detail_text(details) == (
            "The index was written anew, without 1 replaced entries: 10 customers, 1 notes.")
    with app.test_request_context(), force_locale("zh"):
        assert nightly.detail_text(details) == "已重建索引，清除了 1 条被替换的旧记录：10 个客户，1 条跟进记录。"


def test_search_check_says_when_the_index_is_worn(app, staff, built, monkeypatch):
    runner = app.test_cli_runner()
    assert "worn" not in runner.invoke(args=["search", "check"]).output
    monkeypatch.setattr(build, "WORN_MIN", 1)
    _rename(staff["admin"], built[0], "周杰伦")
    checked = runner.invoke(args=["search", "check"])
    assert checked.exit_code == 0, checked.output
    assert "The customers index is worn: 1 replaced and 1 added entries of 11, in 2 segments" in checked.output
    assert "notes index is worn" not in checked.output


def _customers_toc() -> int:
    return store.open_index(store.CUSTOMERS).latest_generation()


def test_a_change_the_customers_entry_does_not_hold_leaves_the_customers_index(app, staff, built):
    """A note saved or the stage changed writes no new entry for the customer: the
    customers index is not written, its searchers stay current. What the entry holds
    (phones, tags) is written."""
    from tests.factories import make_tag

    admin, customer = staff["admin"], built[1]
    before = _customers_toc()
    make_note(admin, customer, "电话回访，客户询问报价", commit=True)
    customers.update_customer(admin, customer, CustomerData(name=customer.name, stage="deal"),
                              acknowledge_duplicates=True)
    db.session.commit()
    assert _customers_toc() == before
    assert search.search_notes(admin, "回访").total == 1

    customers.update_customer(admin, customer, CustomerData(name=customer.name, stage="deal",
                                                            phones=[("mobile", "13912345678")]),
                              acknowledge_duplicates=True)
    db.session.commit()
    assert _customers_toc() == before + 1
    assert [c.id for c in search.search_customers(admin, "5678").items] == [customer.id]
    tag = make_tag("老客户", "来源")
    customers.set_tags(admin, customer, [tag.id])
    db.session.commit()
    assert _customers_toc() == before + 2
    assert [c.id for c in search.search_customers(admin, "老客户").items] == [customer.id]
    assert search.check().ok


def test_a_rebuild_in_a_process_of_its_own_says_why_it_failed(app, staff, built, monkeypatch):
    """The child cannot make the app (a setting it is given points nowhere usable)."""
    from services.search import store as store_module

    generation = store_module.current_generation()
    monkeypatch.setitem(app.config, "DATABASE_URL", "sqlite:////nonexistent-folder/none.db")
    with pytest.raises(RuntimeError, match="rebuilding the index in a process of its own failed"):
        search.rebuild_in_child()
    assert store_module.current_generation() == generation


def test_a_rebuild_process_that_does_not_answer_in_time_is_stopped(app, staff, built, monkeypatch):
    from services.search import store as store_module

    generation = store_module.current_generation()
    monkeypatch.setattr(build, "CHILD_TIMEOUT", 0.01)  # it cannot even start its interpreter in time
    with pytest.raises(RuntimeError, match="no answer in 0 s"):
        search.rebuild_in_child()
    assert store_module.current_generation() == generation
