"""The import's gaps closed: phones Excel turned into numbers with decimals, a
choice per duplicate row, and an import whose process died (interrupted: undone or
resumed without doubles)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from extensions import db
from models import AuditEvent, Customer, ImportBatch, ImportRow, ImportStatus, utcnow
from services import customers, import_jobs, imports
from services.import_apply import undo_import
from tests.conftest import statements_run
from tests.import_helpers import csv_bytes, rows, write, xlsx_bytes
from tests.services.test_import import check, run_import


@pytest.fixture(autouse=True)
def english(app, staff):
    from flask_babel import force_locale

    with app.test_request_context(), force_locale("en"):
        yield


def count_live():
    return db.session.scalar(select(func.count()).select_from(Customer).where(Customer.archived_at.is_(None)))


# ---- phones Excel changed ---------------------------------------------------------------

def _phone_rows(phones):
    return [[f"客户{i}", "", phone, "", "", "", ""] for i, phone in enumerate(phones)]


@pytest.mark.parametrize("name, content", [
    # numeric cells: 13800138000.8 is what Excel keeps of 1.38001380008E10
    ("numbers.xlsx", xlsx_bytes(_phone_rows([13800138000.8, 13800138000.0, 1.3800138001e10]))),
    # the same as text, as a CSV saved from Excel shows them
    ("numbers.csv", csv_bytes(_phone_rows(["1.38001380008E10", "13800138000.0", "1.3800138001E10"]))),
])
def test_a_phone_excel_made_a_number_with_decimals_is_not_a_phone(app, staff, tmp_path, name, content):
    batch = check(staff["manager"], write(tmp_path, name, content))
    assert batch.status == ImportStatus.READY, batch.error
    assert (batch.counts["new"], batch.counts["invalid"]) == (2, 1)
    report = imports.read_report(batch)
    assert report["problems"][0]["number"] == 2 and report["problems"][0]["problems"] == {
        "phone": "phone_number_changed"}
    assert [r["shown"]["phone"] for r in report["preview"][1:]] == ["138 0013 8000", "138 0013 8001"]
    text = imports.rejected_csv(batch)
    assert "Excel changed it into a number with decimals" in text and "Format the column as text" in text


def test_the_message_in_chinese_says_to_format_the_column_as_text(app, staff, tmp_path):
    from flask_babel import force_locale

    batch = check(staff["manager"], write(tmp_path, "n.csv", csv_bytes(_phone_rows(["1.38001380008E10"]))))
    with force_locale("zh"):
        assert "设为“文本”格式" in imports.rejected_csv(batch)


# ---- a choice per duplicate -------------------------------------------------------------

def _two_existing(staff):
    a, b = (customers.create_customer(staff["admin"], customers.CustomerData(name=name, phones=[("mobile", phone)]))
            for name, phone in (("老甲", "13700000001"), ("老乙", "13700000002")))
    db.session.commit()
    return a, b


def test_two_duplicates_with_different_choices(app, staff, tmp_path):
    a, b = _two_existing(staff)
    data = [["老甲", "甲公司", "13700000001", "", "", "", ""], ["老乙", "乙公司", "13700000002", "", "", "", ""],
            ["新客户", "", "13900000009", "", "", "", ""]]
    batch = check(staff["manager"], write(tmp_path, "d.xlsx", xlsx_bytes(data)))
    assert [(r["number"], r["status"]) for r in imports.read_report(batch)["duplicates"]] == [
        (2, "duplicate"), (3, "duplicate")]
    import_jobs.confirm(staff["manager"], batch, {"2": "fill", "3": "create", "4": "create", "x": "fill"})
    db.session.commit()
    assert batch.options["per_row"] == {"2": "fill", "3": "create"}  # row 4 is new: no choice to make
    import_jobs.start(import_jobs.IMPORT, batch, staff["manager"])
    batch = db.session.get(ImportBatch, batch.id)
    assert (batch.counts["created"], batch.counts["filled"], batch.counts["skipped"]) == (2, 1, 0)
    db.session.refresh(a)
    db.session.refresh(b)
    assert a.company == "甲公司" and b.company == ""
    actions = dict(db.session.execute(select(ImportRow.row_number, ImportRow.action)).all())
    assert actions == {2: "filled", 3: "created_anyway", 4: "created"}
    audit_line = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "customer.import"))
    assert audit_line.details["per_row"] == {"2": "fill", "3": "create"} and audit_line.details["duplicates"] == "skip"


def test_a_row_choice_the_row_may_not_take_is_the_batchs(app, staff, tmp_path):
    data = [["甲", "", "13900000001", "", "", "", ""], ["甲again", "", "13900000001", "", "", "", ""]]
    batch = check(staff["manager"], write(tmp_path, "f.csv", csv_bytes(data)), duplicates="create")
    import_jobs.confirm(staff["manager"], batch, {"3": "fill", "2": "skip"})  # row 3 is twice in the file
    assert batch.options["per_row"] == {}


def test_a_row_choice_that_passes_an_owners_limit_is_refused(app, staff, tmp_path):
    _two_existing(staff)
    staff["sales"].claim_limit = 1
    db.session.commit()
    data = [["老甲", "", "13700000001", "", "", "", ""], ["老乙", "", "13700000002", "", "", "", ""]]
    batch = check(staff["manager"], write(tmp_path, "o.csv", csv_bytes(data)), owner=str(staff["sales"].id))
    assert batch.counts["over_limit"] == []  # skipped, as the batch's choice says
    with pytest.raises(imports.DomainError):
        import_jobs.confirm(staff["manager"], batch, {"2": "create", "3": "create"})
    db.session.rollback()
    import_jobs.confirm(staff["manager"], batch, {"2": "create"})  # one is within the limit
    assert batch.status == ImportStatus.IMPORTING


# ---- interrupted --------------------------------------------------------------------------

class Killed(BaseException):
    """What a killed process does to the import: nothing after this point runs."""


def _kill_after(monkeypatch, chunks: int):
    real, calls = import_jobs.write_chunk, []

    def write_then_die(*args, **kwargs):
        if len(calls) == chunks:
            raise Killed
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(import_jobs, "write_chunk", write_then_die)


def _interrupted_import(app, staff, tmp_path, monkeypatch, **options):
    monkeypatch.setattr(imports, "CHUNK", 2)
    _kill_after(monkeypatch, 2)
    path = write(tmp_path, "k.csv", csv_bytes(rows(7)))
    with pytest.raises(Killed):
        run_import(staff["manager"], path, **options)
    db.session.rollback()
    monkeypatch.undo()
    batch = db.session.scalar(select(ImportBatch))
    assert batch.status == ImportStatus.IMPORTING and batch.progress == 4
    assert imports.settle_interrupted() == 0  # its heartbeat is fresh: still running for all we know
    later = utcnow() + timedelta(seconds=app.config["IMPORT_STALE_SECONDS"] + 1)
    assert imports.settle_interrupted(later) == 1
    db.session.commit()
    db.session.refresh(batch)
    assert batch.status == ImportStatus.INTERRUPTED and batch.counts["created"] == 4
    return batch


def test_an_interrupted_import_is_undone_like_a_finished_one(app, staff, tmp_path, monkeypatch):
    batch = _interrupted_import(app, staff, tmp_path, monkeypatch)
    assert imports.may_undo(batch) and count_live() == 4
    assert undo_import(staff["manager"], batch) == {"archived": 4, "restored": 0}
    db.session.commit()
    assert count_live() == 0 and batch.status == ImportStatus.UNDONE


def test_resuming_an_import_is_audited_with_who_the_file_and_where_it_goes_on(app, staff, tmp_path, monkeypatch):
    batch = _interrupted_import(app, staff, tmp_path, monkeypatch)
    import_jobs.resume(staff["manager"], batch)
    db.session.commit()
    line = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "customer.import_resume"))
    assert (line.actor_id, line.actor_name) == (staff["manager"].id, staff["manager"].username)
    assert (line.target_type, line.target_id) == ("import_batches", batch.id)
    assert line.details == {"file": "k.csv", "rows_done": 4, "rows": 7}
    import_jobs.start(import_jobs.IMPORT, batch, staff["manager"])
    actions = list(db.session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))
    assert actions[-2:] == ["customer.import_resume", "customer.import"]


def test_a_refused_resume_writes_no_audit_line(app, staff, tmp_path):
    batch = imports.receive_file(staff["manager"], "r.csv", lambda dest: dest.write_bytes(csv_bytes(rows(1))))
    with pytest.raises(imports.DomainError):
        import_jobs.resume(staff["manager"], batch)
    assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "customer.import_resume")) is None


def test_an_interrupted_import_that_imported_nothing_is_undone_and_closed(app, staff, tmp_path):
    batch = imports.receive_file(staff["manager"], "n.csv", lambda dest: dest.write_bytes(csv_bytes(rows(3))))
    batch.status, batch.heartbeat_at = ImportStatus.IMPORTING, utcnow() - timedelta(hours=1)
    db.session.commit()
    assert imports.settle_interrupted() == 1
    db.session.commit()
    assert batch.status == ImportStatus.INTERRUPTED and imports.may_undo(batch)
    assert undo_import(staff["manager"], batch) == {"archived": 0, "restored": 0}
    db.session.commit()
    assert batch.status == ImportStatus.UNDONE and count_live() == 0
    with pytest.raises(imports.DomainError, match="Only an interrupted import can be resumed"):
        import_jobs.resume(staff["manager"], batch)


@pytest.mark.parametrize("ended", [ImportStatus.DONE, ImportStatus.FAILED])
def test_an_ended_import_that_imported_nothing_has_nothing_to_undo(app, staff, tmp_path, ended):
    run_import(staff["manager"], write(tmp_path, "first.csv", csv_bytes(rows(2))))
    batch = run_import(staff["manager"], write(tmp_path, "again.csv", csv_bytes(rows(2))), duplicates="skip")
    assert batch.status == ImportStatus.DONE and batch.counts["imported"] == 0 and batch.counts["skipped"] == 2
    batch.status = ended
    db.session.commit()
    assert not imports.may_undo(batch)
    with pytest.raises(imports.DomainError) as refused:
        undo_import(staff["manager"], batch)
    assert str(refused.value.message) == ("This import did not create or fill in any customer: "
                                          "there is nothing to undo.")
    assert batch.status == ended


@pytest.mark.parametrize("duplicates", ["skip", "create"])
def test_an_interrupted_import_resumes_after_its_rows_without_doubles(app, staff, tmp_path, monkeypatch, duplicates):
    batch = _interrupted_import(app, staff, tmp_path, monkeypatch, duplicates=duplicates)
    import_jobs.resume(staff["manager"], batch)
    db.session.commit()
    import_jobs.start(import_jobs.IMPORT, batch, staff["manager"])
    batch = db.session.get(ImportBatch, batch.id)
    assert batch.status == ImportStatus.DONE and batch.progress == 7
    assert (batch.counts["created"], batch.counts["skipped"]) == (7, 0)
    assert count_live() == 7
    assert sorted(db.session.scalars(select(ImportRow.row_number))) == list(range(2, 9))
    with pytest.raises(imports.DomainError):
        import_jobs.resume(staff["manager"], batch)


def test_a_check_whose_process_died_is_failed_and_may_be_checked_again(app, staff, tmp_path):
    batch = imports.receive_file(staff["manager"], "c.csv", lambda dest: dest.write_bytes(csv_bytes(rows(2))))
    batch.status, batch.heartbeat_at = ImportStatus.CHECKING, utcnow() - timedelta(hours=1)
    db.session.commit()
    assert imports.settle_interrupted() == 0
    db.session.commit()
    db.session.refresh(batch)
    assert batch.status == ImportStatus.FAILED and "Check the file again" in batch.error
    imports.set_options(staff["manager"], batch, batch.options)
    assert batch.status == ImportStatus.UPLOADED


def test_the_heartbeat_is_written_while_the_block_runs(app, staff, tmp_path):
    import time

    batch = imports.receive_file(staff["manager"], "h.csv", lambda dest: dest.write_bytes(csv_bytes(rows(1))))
    batch.status = ImportStatus.IMPORTING
    db.session.commit()
    batch_id = batch.id

    def heartbeat():
        db.session.commit()
        return db.session.scalar(select(ImportBatch.heartbeat_at).where(ImportBatch.id == batch_id))

    with import_jobs.heartbeat(batch_id, every=0.05):
        first = heartbeat()
        assert first is not None  # written at once
        deadline = time.monotonic() + 30
        while heartbeat() == first and time.monotonic() < deadline:
            time.sleep(0.05)
        assert heartbeat() != first


def test_a_chunk_of_a_batch_declared_interrupted_is_not_written(app, staff, tmp_path):
    """Were a live process's batch declared interrupted (its heartbeat starved),
    the chunk it is writing fails its check in the same transaction."""
    batch = imports.receive_file(staff["manager"], "i.csv", lambda dest: dest.write_bytes(csv_bytes(rows(1))))
    batch.status = ImportStatus.IMPORTING
    db.session.commit()
    import_jobs._still_running(batch)
    db.session.commit()
    batch.status = ImportStatus.INTERRUPTED
    db.session.commit()
    with pytest.raises(import_jobs.Interrupted):
        import_jobs._still_running(batch)


def test_settling_writes_nothing_while_no_batch_has_died(app, staff, tmp_path):
    """The import pages settle dead batches on every view: with none dead, only a
    read, so a page never waits for (or fails on) another process's write lock."""
    batch = imports.receive_file(staff["manager"], "r.csv", lambda dest: dest.write_bytes(csv_bytes(rows(2))))
    batch.status, batch.heartbeat_at = ImportStatus.IMPORTING, utcnow()  # running, alive
    db.session.commit()
    with statements_run(db.engine) as statements:
        assert imports.settle_interrupted() == 0
    assert statements and not [s for s in statements if s.lstrip().upper().startswith("UPDATE")]
    assert db.session.get(ImportBatch, batch.id).status == ImportStatus.IMPORTING
