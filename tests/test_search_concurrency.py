"""The search index under real concurrency: separate processes (as gunicorn workers
and a CLI command are) saving notes while a rebuild runs. Bounded: every wait has a
timeout."""

import multiprocessing
import queue

import pytest
from sqlalchemy import func, select

from app import create_app
from extensions import db
from models import Customer, CustomerNote, SearchBacklog, User
from services import accounts, customers, demo, notes, search
from services.customers import CustomerData
from services.notes import NoteData
from services.search import store, sync
from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.concurrency

WRITERS = 2
TIMEOUT = 120


def _child_app(url: str, instance: str):
    return create_app({"TESTING": True, "SECRET_KEY": "test-secret", "DATABASE_URL": url,
                       "INSTANCE_PATH": instance})


def _collect(processes, results) -> list:
    """One result from each of the started ``processes`` (each within TIMEOUT), once
    they have all ended well."""
    got = []
    try:
        for _ in processes:
            got.append(results.get(timeout=TIMEOUT))
    except queue.Empty:
        pytest.fail(f"a process did not finish in {TIMEOUT}s; {len(got)} did")
    finally:
        for process in processes:
            process.join(10)
            if process.is_alive():
                process.kill()
    assert all(process.exitcode == 0 for process in processes)
    return got


def save_notes_until_rebuilt(url, instance, customer_id, author_id, tag, started, rebuilt, results):
    """Save notes one by one until the rebuild has finished, and three more."""
    app = _child_app(url, instance)
    saved, after = [], 3
    with app.app_context():
        while after and len(saved) < 300:
            author, customer = db.session.get(User, author_id), db.session.get(Customer, customer_id)
            note = notes.create_note(author, customer, NoteData(kind="call", body=f"并发记录 w{tag}n{len(saved)}"))
            db.session.commit()
            saved.append(note.note.id)
            started.set()
            if rebuilt.is_set():
                after -= 1
        db.session.remove()
        db.engine.dispose()
    results.put((tag, saved))


def rebuild_when_writing(url, instance, started, rebuilt, results):
    app = _child_app(url, instance)
    for event in started:
        event.wait(TIMEOUT)
    with app.app_context():
        report = search.rebuild(procs=1)
        db.engine.dispose()
    rebuilt.set()
    results.put(("rebuild", report.notes))


def test_notes_saved_by_two_processes_during_a_rebuild_are_all_searchable(app):
    with app.app_context():
        admin = accounts.create_user("root", TEST_PASSWORD, "admin")
        demo.generate_workspace(60, 1500, seed=2, password=TEST_PASSWORD)  # something to rebuild
        search.rebuild(procs=1)
        targets = [customers.create_customer(admin, CustomerData(name=f"并发客户{n}")).id for n in range(WRITERS)]
        db.session.commit()
        url, instance, admin_id = app.config["DATABASE_URL"], app.instance_path, admin.id
    context = multiprocessing.get_context("spawn")
    started = [context.Event() for _ in range(WRITERS)]
    rebuilt, results = context.Event(), context.Queue()
    processes = [context.Process(target=save_notes_until_rebuilt,
                                 args=(url, instance, targets[n], admin_id, n, started[n], rebuilt, results))
                 for n in range(WRITERS)]
    processes.append(context.Process(target=rebuild_when_writing, args=(url, instance, started, rebuilt, results)))
    for process in processes:
        process.start()
    outcome = dict(_collect(processes, results))
    saved = [note_id for n in range(WRITERS) for note_id in outcome[n]]
    assert len(saved) >= WRITERS * 4 and outcome["rebuild"] >= 1500
    with app.app_context():
        admin = db.session.get(User, admin_id)
        for n in range(WRITERS):
            found = search.search_notes(admin, f"w{n}n0")
            assert [note.id for note in found.items] == [outcome[n][0]]
            for index, note_id in enumerate(outcome[n]):
                assert [note.id for note in search.search_notes(admin, f"w{n}n{index}").items] == [note_id]
        assert db.session.scalar(select(func.count()).select_from(SearchBacklog)) == 0
        db.session.commit()
        assert search.check().ok


def save_and_edit_notes(url, instance, customer_id, author_id, tag, go, results):
    """Save NOTES notes back to back, editing every third one two saves later; the
    small segments this makes are merged in the background, in whichever process
    gets there first, while the other goes on saving and deleting."""
    app = _child_app(url, instance)
    saved, edited = [], []
    with app.app_context():
        go.wait(TIMEOUT)
        for n in range(NOTES):
            author, customer = db.session.get(User, author_id), db.session.get(Customer, customer_id)
            data = NoteData(kind="call", body=f"合并 w{tag}n{n} 报价")
            saved.append(notes.create_note(author, customer, data).note.id)
            db.session.commit()
            if n % 3 == 2:
                note = db.session.get(CustomerNote, saved[n - 2])
                notes.edit_note(author, note, NoteData(kind="call", body=f"合并 w{tag}n{n - 2} 合同"))
                db.session.commit()
                edited.append(note.id)
            db.session.remove()
        merged = sync.wait_for_background(TIMEOUT)
        db.engine.dispose()
    results.put((tag, saved, edited, merged))


NOTES = 45


def test_background_merges_in_two_saving_processes_lose_no_note_and_no_edit(app):
    with app.app_context():
        admin = accounts.create_user("root", TEST_PASSWORD, "admin")
        targets = [customers.create_customer(admin, CustomerData(name=f"合并客户{n}")).id for n in range(WRITERS)]
        db.session.commit()
        url, instance, admin_id = app.config["DATABASE_URL"], app.instance_path, admin.id
    context = multiprocessing.get_context("spawn")
    go, results = context.Event(), context.Queue()
    processes = [context.Process(target=save_and_edit_notes, args=(url, instance, targets[n], admin_id, n, go, results))
                 for n in range(WRITERS)]
    for process in processes:
        process.start()
    go.set()
    outcome = _collect(processes, results)
    assert all(merged for *_, merged in outcome)
    saved = {note_id for _, ids, _, _ in outcome for note_id in ids}
    edited = {note_id for _, _, ids, _ in outcome for note_id in ids}
    assert len(saved) == WRITERS * NOTES and len(edited) == WRITERS * (NOTES // 3)
    with app.app_context():
        admin = db.session.get(User, admin_id)
        quoted = search.search_notes(admin, "报价", per_page=200)
        contracts = search.search_notes(admin, "合同", per_page=200)
        assert {note.id for note in quoted.items} == saved - edited and quoted.total == len(saved - edited)
        assert {note.id for note in contracts.items} == edited and contracts.total == len(edited)
        assert db.session.scalar(select(func.count()).select_from(SearchBacklog)) == 0
        assert len(store.open_index(store.NOTES)._segments()) < 2 * sync.MERGE_AFTER  # merges happened
        db.session.commit()
        assert search.check().ok



SAVERS, SEARCHERS, ROUNDS, MAX_SEARCHES = 2, 2, 25, 3000


def _count_rebuilds(tag, started) -> None:
    """Count the rebuilds this process starts; and merge after fewer segments than
    usual, so that merges replace segments while others search."""
    sync.MERGE_AFTER = 4
    original = sync.start_rebuild

    def counted(*args, **kwargs):
        started.append(tag)
        return original(*args, **kwargs)

    sync.start_rebuild = counted


def _search(user, text, failed) -> list:
    """The ids found for ``text``; a search that failed or fell back to the
    database is added to ``failed``."""
    try:
        found = search.search_notes(user, text, per_page=50)
    except Exception as error:
        failed.append((text, repr(error)))
        return []
    if found.from_database:
        failed.append((text, "answered from the database"))
    return [note.id for note in found.items]


def save_and_find(url, instance, customer_id, author_id, tag, go, results):
    """Save ROUNDS notes, finding each right after it is saved."""
    app = _child_app(url, instance)
    saved, failed, started = [], [], []
    _count_rebuilds(tag, started)
    with app.app_context():
        go.wait(TIMEOUT)
        for n in range(ROUNDS):
            author, customer = db.session.get(User, author_id), db.session.get(Customer, customer_id)
            saved.append(notes.create_note(author, customer, NoteData(kind="call", body=f"巡检 p{tag}r{n}")).note.id)
            db.session.commit()
            # (found at once unless the write lock was busy past its timeout: then the
            # next save applies it, which the test checks at the end)
            _search(author, f"p{tag}r{n}", failed)
            db.session.remove()
        sync.wait_for_background(TIMEOUT)
        db.engine.dispose()
    results.put((tag, saved, failed, started))


def search_while_saving(url, instance, author_id, tag, go, done, results):
    """Search all the notes again and again (reading stored fields in every
    segment) until the savers are done."""
    app = _child_app(url, instance)
    failed, started, searches = [], [], 0
    _count_rebuilds(tag, started)
    with app.app_context():
        go.wait(TIMEOUT)
        while not done.is_set() and searches < MAX_SEARCHES:
            _search(db.session.get(User, author_id), "巡检", failed)
            db.session.remove()
            searches += 1
        db.engine.dispose()
    results.put((tag, [], failed, started))


def test_processes_saving_and_searching_at_once_see_no_failed_search(app):
    """Processes (as gunicorn workers) saving notes while others search: no search
    fails or falls back to the database, no rebuild starts, every saved note is
    found — while saves commit and background merges replace segments."""
    with app.app_context():
        admin = accounts.create_user("root", TEST_PASSWORD, "admin")
        targets = [customers.create_customer(admin, CustomerData(name=f"巡检客户{n}")).id for n in range(SAVERS)]
        db.session.commit()
        url, instance, admin_id = app.config["DATABASE_URL"], app.instance_path, admin.id
    context = multiprocessing.get_context("spawn")
    go, done, results = context.Event(), context.Event(), context.Queue()
    savers = [context.Process(target=save_and_find, args=(url, instance, targets[n], admin_id, n, go, results))
              for n in range(SAVERS)]
    searchers = [context.Process(target=search_while_saving, args=(url, instance, admin_id, f"s{n}", go, done, results))
                 for n in range(SEARCHERS)]
    for process in savers + searchers:
        process.start()
    go.set()
    outcome = _collect(savers, results)
    done.set()
    outcome += _collect(searchers, results)
    assert [failed for _, _, failed, _ in outcome] == [[]] * (SAVERS + SEARCHERS)
    assert [started for *_, started in outcome] == [[]] * (SAVERS + SEARCHERS)
    with app.app_context():
        search.drain()
        admin = db.session.get(User, admin_id)
        for tag, saved, _, _ in outcome:
            for n, note_id in enumerate(saved):
                assert [note.id for note in search.search_notes(admin, f"p{tag}r{n}").items] == [note_id]
        assert db.session.scalar(select(func.count()).select_from(SearchBacklog)) == 0
        db.session.commit()
        assert search.check().ok


IMPORT_ROWS = 600


def import_file(url, instance, path, manager_id, go, results):
    """Import ``path`` (its index written in one bulk write at the end)."""
    import shutil

    from services import import_jobs, imports

    app = _child_app(url, instance)
    with app.app_context():
        manager = db.session.get(User, manager_id)
        batch = imports.receive_file(manager, path, lambda dest: shutil.copy(path, dest))
        db.session.commit()
        import_jobs.run(import_jobs.CHECK, batch.id, manager_id)
        import_jobs.confirm(manager, db.session.get(imports.ImportBatch, batch.id))
        db.session.commit()
        go.wait(TIMEOUT)
        import_jobs.run(import_jobs.IMPORT, batch.id, manager_id)
        status = db.session.get(imports.ImportBatch, batch.id).status
        sync.wait_for_background(TIMEOUT)
        db.session.remove()
        db.engine.dispose()
    results.put(("import", status))


def search_during_import(url, instance, admin_id, go, done, results):
    """Search for a customer there before the import and for the import's last row
    until the import is done: every search answers from the index, finds the first
    always and the second once or not yet."""
    app = _child_app(url, instance)
    failed, seen, searches = [], set(), 0
    with app.app_context():
        go.wait(TIMEOUT)
        while not done.is_set() and searches < MAX_SEARCHES:
            admin = db.session.get(User, admin_id)
            try:
                before = search.search_customers(admin, "导入前客户")
                imported = search.search_customers(admin, f"导入客户{IMPORT_ROWS - 1}")
            except Exception as error:
                failed.append(repr(error))
                break
            if before.from_database or imported.from_database or before.total != 1 or imported.total > 1:
                failed.append((before.from_database, imported.from_database, before.total, imported.total))
            seen.add(imported.total)
            db.session.remove()
            searches += 1
        db.engine.dispose()
    results.put(("search", failed, sorted(seen), searches))


def test_searches_during_an_import_see_the_index_before_or_after_it_never_fail(app, tmp_path):
    from tests.import_helpers import csv_bytes, write

    with app.app_context():
        admin = accounts.create_user("root", TEST_PASSWORD, "admin")
        manager = accounts.create_user("boss", TEST_PASSWORD, "manager")
        customers.create_customer(admin, CustomerData(name="导入前客户"))
        db.session.commit()
        search.rebuild(procs=1)
        url, instance, admin_id, manager_id = app.config["DATABASE_URL"], app.instance_path, admin.id, manager.id
    rows = [[f"导入客户{i}", f"导入公司{i}", f"138{i:08d}", "", "", "", ""] for i in range(IMPORT_ROWS)]
    path = str(write(tmp_path, "concurrent.csv", csv_bytes(rows)))
    context = multiprocessing.get_context("spawn")
    go, done, results = context.Event(), context.Event(), context.Queue()
    importer = context.Process(target=import_file, args=(url, instance, path, manager_id, go, results))
    searcher = context.Process(target=search_during_import, args=(url, instance, admin_id, go, done, results))
    importer.start()
    searcher.start()
    go.set()
    outcome = _collect([importer], results)
    done.set()
    outcome += _collect([searcher], results)
    by_kind = {item[0]: item[1:] for item in outcome}
    assert by_kind["import"] == ("done",)
    failed, seen, searches = by_kind["search"]
    assert failed == [] and searches >= 1 and set(seen) <= {0, 1}
    with app.app_context():
        admin = db.session.get(User, admin_id)
        assert search.search_customers(admin, f"导入客户{IMPORT_ROWS - 1}").total == 1
        assert search.search_customers(admin, f"138{IMPORT_ROWS - 1:08d}").total == 1
        assert db.session.scalar(select(func.count()).select_from(SearchBacklog)) == 0
        db.session.commit()
        assert search.check().ok
