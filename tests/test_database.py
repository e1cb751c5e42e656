"""The database layer: SQLite tuning, lazy connections, migrations = models, and
counters that stay exact under concurrent writers."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import event, text

from app import create_app
from extensions import db
from models import Customer, LoginThrottle
from services import accounts
from tests.conftest import sqlite_plan, statements_run


def test_no_connection_is_opened_by_create_app(database_url, tmp_path):
    """gunicorn --preload forks after create_app(): no connection may exist by then."""
    from sqlalchemy.pool import Pool

    opened = []
    listener = lambda *args: opened.append(args)  # noqa: E731
    event.listen(Pool, "connect", listener)
    try:
        create_app({"TESTING": True, "SECRET_KEY": "k", "DATABASE_URL": database_url,
                    "INSTANCE_PATH": str(tmp_path)})
    finally:
        event.remove(Pool, "connect", listener)
    assert opened == []


def test_sqlite_pragmas(app):
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        pytest.skip("SQLite only")
    with app.app_context():
        connection = db.session.connection()
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 15000
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL


def test_writing_transactions_begin_immediate_and_get_requests_defer(app):
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        pytest.skip("SQLite only")
    with app.app_context(), statements_run(db.engine) as statements:
        db.session.execute(text("SELECT 1"))
        db.session.commit()
        with app.test_request_context("/", method="GET"):
            db.session.execute(text("SELECT 1"))
            db.session.commit()
    begins = [s for s in statements if s.startswith("BEGIN")]
    assert begins == ["BEGIN IMMEDIATE", "BEGIN DEFERRED"]


def test_a_reads_first_view_writes_only_inside_its_write_transaction(app):
    """A ``reads_first`` POST view reads without SQLite's write lock (BEGIN DEFERRED),
    takes it inside ``write_transaction()`` (BEGIN IMMEDIATE, after ending the
    reading transaction), reads without it again afterwards, and a refusal raised
    inside the block rolls its transaction back at once."""
    from extensions import write_transaction

    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        pytest.skip("SQLite only")
    with app.app_context(), statements_run(db.engine) as statements, \
            app.test_request_context("/pool/1/claim", method="POST"):
        db.session.execute(text("SELECT 1"))
        with write_transaction():
            db.session.execute(text("SELECT 2"))
            db.session.commit()
        db.session.execute(text("SELECT 3"))
        with pytest.raises(ValueError), write_transaction():
            db.session.execute(text("SELECT 4"))
            raise ValueError("refused")
        assert not db.session().in_transaction()
    begins = [s for s in statements if s.startswith(("BEGIN", "SELECT"))]
    assert begins == ["BEGIN DEFERRED", "SELECT 1", "BEGIN IMMEDIATE", "SELECT 2", "BEGIN DEFERRED", "SELECT 3",
                      "BEGIN IMMEDIATE", "SELECT 4"]


def test_migrations_build_exactly_the_models(app):
    """The schema comes only from migrations; they must not drift from the models."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from extensions import schema_filter

    with app.app_context():
        connection = db.session.connection()
        context = MigrationContext.configure(connection, opts={
            "render_as_batch": True, "include_object": schema_filter(connection.dialect.name)})
        differences = compare_metadata(context, db.metadata)
    assert differences == []


def test_the_pool_pages_default_order_reads_an_index_on_postgresql(app):
    """The pool page's first page (no contact first, then oldest contact) is read
    from an index, not sorted out of every pool customer: PostgreSQL's ascending
    indexes put NULLs last, so it needs one of its own (SQLite's put them first)."""
    from models import User
    from services.pool_list import PoolFilter, pool_query

    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        pytest.skip("PostgreSQL only")
    with app.app_context():
        user = accounts.create_user("wang", "a long passphrase 1", "sales")
        db.session.commit()
        query = pool_query(db.session.get(User, user.id), PoolFilter()).with_only_columns(Customer.id)
        query = query.order_by(Customer.last_contact_at.asc().nulls_first(), Customer.id).limit(25)
        connection = db.session.connection()
        # An empty table: any index (or a sort) would do, so the planner is asked for a plan
        # without either; only an index in the page's order gives one.
        connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
        connection.exec_driver_sql("SET LOCAL enable_sort = off")
        sql = str(query.compile(connection, compile_kwargs={"literal_binds": True}))
        plan = "\n".join(connection.exec_driver_sql("EXPLAIN " + sql).scalars())
    assert "ix_customers_pool_stale" in plan and "Sort" not in plan


def test_bulk_inserted_rows_get_their_own_ids_in_one_statement(app):
    """insert_returning_ids (an import's chunk): one INSERT for many rows, some with
    NULLs where others have values, and each row's id in the order of the rows,
    after the ids already used and before those the database gives next."""
    from datetime import date

    from sqlalchemy import select

    from extensions import insert_returning_ids

    with app.app_context():
        earlier = Customer(name="earlier")
        db.session.add(earlier)
        db.session.flush()
        rows = [{"name": f"客户{i}", "birthday": date(1990, 1, 1 + i % 28) if i % 3 else None} for i in range(250)]
        with statements_run(db.engine) as statements:
            ids = insert_returning_ids(Customer, rows)
        names = dict(db.session.execute(select(Customer.id, Customer.name).where(Customer.id.in_(ids))).all())
        assert [names[i] for i in ids] == [row["name"] for row in rows]
        assert len(set(ids)) == 250 and min(ids) > earlier.id
        assert len([s for s in statements if s.startswith("INSERT")]) == 1
        later = Customer(name="later")
        db.session.add(later)
        db.session.flush()
        assert later.id > max(ids)  # the database's own numbering goes on after them
        db.session.rollback()


@pytest.mark.concurrency
def test_parallel_failed_logins_are_all_counted(app):
    """Failures arrive from many workers at once: none may be lost, and the lock
    comes at exactly the configured count."""
    policy = accounts.LoginPolicy(max_failures=1000)
    attempts = 24
    barrier = threading.Barrier(8)

    def fail_once(index):
        with app.app_context():
            if index < 8:
                barrier.wait(timeout=10)
            try:
                accounts.authenticate("target.user", "wrong password!", policy=policy)
            except accounts.LoginRefused:
                db.session.commit()  # as the sign-in view does
                return "refused"
            finally:
                db.session.remove()

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(fail_once, range(attempts), timeout=120))
    assert outcomes == ["refused"] * attempts
    with app.app_context():
        assert db.session.get(LoginThrottle, "target.user").failures == attempts


def test_the_recycle_clocks_read_each_customers_latest_contact_from_an_index(app):
    """The clocks of a page of customers (the customer list, the home page) take each
    one's latest effective contact from ix_customer_notes_effective alone, not from
    the rows of all its notes (dozens for an active customer)."""
    from sqlalchemy import func, select

    from models import CustomerNote
    from services import settings
    from services.pool import _contact_time

    with app.app_context():
        query = (select(CustomerNote.customer_id, func.max(_contact_time()))
                 .where(CustomerNote.customer_id.in_([1, 2, 3]),
                        CustomerNote.kind.in_(settings.get("pool.effective_kinds")),
                        CustomerNote.deleted_at.is_(None))
                 .group_by(CustomerNote.customer_id))
        connection = db.session.connection()
        sql = str(query.compile(connection, compile_kwargs={"literal_binds": True}))
        if connection.dialect.name == "sqlite":
            assert "COVERING INDEX ix_customer_notes_effective" in sqlite_plan(query)
        else:  # an empty table: the planner is asked for a plan that reads no table rows
            connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
            connection.exec_driver_sql("SET LOCAL enable_bitmapscan = off")
            plan = "\n".join(connection.exec_driver_sql("EXPLAIN " + sql).scalars())
            assert "Index Only Scan using ix_customer_notes_effective" in plan
