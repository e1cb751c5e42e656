"""Extension singletons, created once and bound to the app in ``create_app``."""

import os
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

from flask_babel import Babel
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from htmx_flask import Htmx
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

# Named constraints, so that migrations can alter them on SQLite and PostgreSQL alike.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)

# The base class of every model. At run time it is Flask-SQLAlchemy's ``db.Model`` (the
# declarative base built from ``Base``, with table names and binds); a type checker
# cannot use an instance's attribute as a base class, so to it models derive from
# ``Base`` itself, and their ``Mapped[...]`` columns are typed.
if TYPE_CHECKING:
    Model = Base
else:
    Model = db.Model

migrate = Migrate(render_as_batch=True)
login_manager = LoginManager()
csrf = CSRFProtect()
babel = Babel()
htmx = Htmx()


def database_url(app) -> str:
    """The configured DATABASE_URL, or SQLite in the instance folder."""
    url = app.config.get("DATABASE_URL") or ""
    if not url:
        return f"sqlite:///{app.instance_path}/deskbook.db"
    # psycopg 3 is the driver; accept the plain scheme people copy from elsewhere.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def schema_filter(dialect_name: str):
    """Alembic's ``include_object`` for a database of ``dialect_name``: leaves out the
    schema objects made for another database only (``Index(...).ddl_if(dialect=...)``),
    so that comparing the models with it finds no difference."""
    def include(obj, _name, _type, _reflected, _compare_to) -> bool:
        only = getattr(obj, "_ddl_if", None)
        return only is None or only.dialect in (None, dialect_name)
    return include


def init_database(app) -> None:
    """Bind Flask-SQLAlchemy to the configured database. Engines connect lazily, so
    no connection exists before a server forks its workers."""
    url = database_url(app)
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    options = app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {})
    if url.startswith("postgresql"):
        options.setdefault("pool_pre_ping", True)
    db.init_app(app)
    migrate.init_app(app, db, directory=os.path.join(app.root_path, "migrations"))
    if url.startswith("sqlite"):
        with app.app_context():
            _tune_sqlite(db.engine, app.config["SQLITE_BUSY_TIMEOUT_MS"])


def _tune_sqlite(engine, busy_timeout_ms: int) -> None:
    """WAL, a busy timeout, foreign keys, and BEGIN IMMEDIATE for transactions that
    may write (SQLAlchemy's pysqlite recipe): a writer takes the lock when its
    transaction starts and waits for it, instead of failing with "database is locked"
    when a read transaction later tries to write."""
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # let the "begin" event below decide
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        # FULL: a commit the user was told about survives a crash or power cut.
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection):
        mode = "DEFERRED" if read_only_request() else "IMMEDIATE"
        connection.exec_driver_sql(f"BEGIN {mode}")


def refresh_statistics() -> None:
    """ANALYZE: the query planner's row counts per index. Without them SQLite reads
    a handful of rows by id through the owner index instead of the primary key (a
    search result page for a sales account read every pool customer). PostgreSQL's
    autovacuum does this by itself; running it too is harmless. Run after bulk
    loads and nightly (``pool recycle``)."""
    from sqlalchemy import text

    db.session.execute(text("ANALYZE"))
    db.session.commit()


def refresh_growing_statistics(*models) -> None:
    """ANALYZE the tables of ``models`` on PostgreSQL, in the session's transaction,
    for a bulk write that keeps growing them (an import): its own lookups in them
    are planned from the row counts of the last ANALYZE, and with a table of 20,000
    rows counted as almost empty PostgreSQL scanned it for every duplicate lookup
    (most of a second each). Autovacuum would do it within a minute or so, where it
    is on. SQLite's planner prefers the indexes without counts: nothing to do."""
    if db.session.get_bind().dialect.name != "postgresql":
        return
    from sqlalchemy import text

    names = ", ".join(model.__table__.name for model in models)
    db.session.execute(text(f"ANALYZE {names}"))


def insert_rows(model, rows: list[dict]) -> None:
    """INSERT ``rows`` (dicts with the same keys) into ``model``'s table with one
    executemany, in the session's transaction. Core, not the ORM's bulk insert,
    which splits the rows into a statement per run of rows with None in the same
    columns."""
    from sqlalchemy import insert

    if rows:
        db.session.execute(insert(model.__table__), rows)


def insert_returning_ids(model, rows: list[dict]) -> list[int]:
    """:func:`insert_rows`, for a table whose ``id`` primary key the database
    assigns; returns the new ids in the order of ``rows``. PostgreSQL: INSERT …
    RETURNING, put in the rows' order by SQLAlchemy. SQLite cannot tie RETURNING's
    rows to the parameter sets, so SQLAlchemy would run an INSERT per row: there the
    ids are given, as SQLite itself picks them (one past the largest; no table has
    AUTOINCREMENT). No other writer can insert in between: a transaction that may
    write holds SQLite's write lock from its start (BEGIN IMMEDIATE, _tune_sqlite);
    one that began reading only fails at the INSERT instead of linking wrong ids."""
    from sqlalchemy import func, insert, select

    if not rows:
        return []
    table = model.__table__
    if db.session.get_bind().dialect.name != "sqlite":
        return list(db.session.scalars(insert(table).returning(table.c.id, sort_by_parameter_order=True), rows))
    first = (db.session.scalar(select(func.max(table.c.id))) or 0) + 1
    ids = list(range(first, first + len(rows)))
    insert_rows(model, [{**row, "id": new_id} for row, new_id in zip(rows, ids, strict=True)])
    return ids


_reading_only: ContextVar[bool] = ContextVar("reading_only", default=False)
_writing: ContextVar[bool] = ContextVar("writing", default=False)


@contextmanager
def reading_only():
    """Transactions begun inside this block only read (SQLite: BEGIN DEFERRED), even
    in a POST request, a CLI command or a ``write_transaction()`` block."""
    token = _reading_only.set(True)
    try:
        yield
    finally:
        _reading_only.reset(token)


def reads_first(view):
    """Mark a view that changes data but reads first, and often answers without
    writing (a claim that lost its race): its request's transactions only read
    (SQLite: BEGIN DEFERRED, no write lock, so it never queues behind writers), and
    it writes inside ``write_transaction()``, which holds SQLite's write lock only
    for the statements that need it. Put it right under the route decorator."""
    view.reads_first = True
    return view


@contextmanager
def write_transaction():
    """The writing part of a ``reads_first`` view (or any code that has read in a
    transaction of its own and now writes). Ends the reading transaction first
    (SQLite: a transaction that began reading cannot be made a writing one without
    failing when another writer committed meanwhile; the objects read are reloaded
    when used), so that the next statement begins one that may write (SQLite: BEGIN
    IMMEDIATE, waiting for the lock). The block commits; if it raises (a refusal),
    its transaction is rolled back at once, letting go of the lock before the
    answer is rendered. PostgreSQL needs none of this: the block runs in the
    transaction the request has."""
    if db.session.get_bind().dialect.name == "sqlite" and db.session().in_transaction():
        db.session.commit()
    token = _writing.set(True)
    try:
        yield
    except BaseException:
        db.session.rollback()
        raise
    finally:
        _writing.reset(token)


def commit_keeping_loaded() -> None:
    """Commit without expiring the objects the session holds: for a view that
    renders its answer from what it has just loaded and written (a saved note, its
    customer, the user), which the commit would otherwise make it read again. What
    a statement changed behind the session's back must be expired by that code (as
    services do after a bulk UPDATE)."""
    session = db.session()
    keep = session.expire_on_commit
    session.expire_on_commit = False
    try:
        session.commit()
    finally:
        session.expire_on_commit = keep


def read_only_request() -> bool:
    """Whether a transaction begun now only reads. GET/HEAD requests never write (a
    rule the tests keep), so their transactions need not queue behind writers; nor
    do a ``reads_first`` view's outside its ``write_transaction()``. Everything else
    — other requests, CLI commands, background work — starts with the write lock,
    unless inside ``reading_only()``."""
    from flask import current_app, has_request_context, request

    if _reading_only.get():
        return True
    if _writing.get() or not has_request_context():
        return False
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return True
    view = current_app.view_functions.get(request.endpoint or "")
    return getattr(view, "reads_first", False)
