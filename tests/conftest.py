"""Fixtures: ``app``, ``client``, ``login_as(role)``, ``make_user``.

Every test that uses ``app`` runs on SQLite and, when TEST_DATABASE_URL is set, once
more on PostgreSQL (in a schema of its own, dropped at the end of the run). The schema
is built by the migrations, once per database per run; each test starts with empty
tables.
"""

from __future__ import annotations

import os
import secrets
import urllib.parse
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, event, text

from app import create_app
from extensions import db
from models import User
from services import accounts
from tests.factories import TEST_PASSWORD, make_tag  # noqa: F401  (tests import them from here too)

IN_CI = os.environ.get("CI", "").lower() == "true"


def _postgres_url() -> str | None:
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        if IN_CI:
            pytest.fail("TEST_DATABASE_URL must be set in CI: the PostgreSQL run is mandatory")
        pytest.skip("TEST_DATABASE_URL is not set: PostgreSQL run skipped")
    return url


def _with_search_path(url: str, schema: str) -> str:
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query)
    query.append(("options", f"-csearch_path={schema}"))
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def migrated_app(database_url: str, instance_path: str, **config):
    """An app on ``database_url`` with the schema upgraded by the migrations."""
    from flask_migrate import upgrade

    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret",
            "DATABASE_URL": database_url,
            "INSTANCE_PATH": instance_path,
            **config,
        }
    )
    with app.app_context():
        upgrade()
        db.engine.dispose()
    return app


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request, tmp_path_factory):
    """A migrated database for the whole run: a SQLite file, or a fresh PostgreSQL
    schema."""
    instance = tmp_path_factory.mktemp(f"{request.param}-instance")
    if request.param == "sqlite":
        url = f"sqlite:///{instance}/test.db"
        migrated_app(url, str(instance))
        yield url
        return
    base = _postgres_url()
    schema = f"test_{secrets.token_hex(4)}"
    admin = create_engine(base.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = _with_search_path(base, schema)
    try:
        migrated_app(url, str(instance))
        yield url
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def tag_keys_that_disagree() -> list[tuple[int, str, list[int]]]:
    """Customers whose ``tag_key`` (kept by the database's triggers) is not the set of
    their tags, as (id, tag_key, tag ids): checked after every test, whatever path
    the test changed tags by."""
    from collections import defaultdict

    from sqlalchemy import select

    from models import Customer, customer_tags

    carried = defaultdict(list)
    for customer_id, tag_id in db.session.execute(select(customer_tags.c.customer_id, customer_tags.c.tag_id)):
        carried[customer_id].append(tag_id)
    return [(customer_id, key, sorted(carried[customer_id]))
            for customer_id, key in db.session.execute(select(Customer.id, Customer.tag_key))
            if key != ",".join(str(tag_id) for tag_id in sorted(carried[customer_id]))]


def _empty_tables() -> None:
    for table in reversed(db.metadata.sorted_tables):
        db.session.execute(table.delete())
    db.session.commit()


def _publish_empty_index() -> None:
    """Publish an empty search index, as a rebuild of the empty tables would (with the
    same store functions). Without one, the test's first write finds no index and
    rebuilds it, in a second process when outside a request."""
    from services.search import store

    store.publish(store.new_generation())


@pytest.fixture
def app(database_url, tmp_path):
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret",
            "DATABASE_URL": database_url,
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "WTF_CSRF_ENABLED": False,
        }
    )
    with app.app_context():
        _empty_tables()
        _publish_empty_index()
    yield app
    from services.search import sync

    assert sync.wait_for_background(60), "a background merge or rebuild of the search index did not end"
    with app.app_context():
        db.session.remove()
        wrong = tag_keys_that_disagree()
        _empty_tables()
    assert not wrong, f"customers whose tag_key is not their tags: {wrong}"
    with app.app_context():
        db.engine.dispose()
    from services.search import store

    store.forget_searchers()  # their open files belong to this test's index


@pytest.fixture
def make_app(database_url, tmp_path):
    """Build extra apps on the test database with other settings; their engines are
    disposed afterwards (an unclosed PostgreSQL connection is a warning, so an error)."""
    made = []

    def make(**config):
        app = create_app({"TESTING": True, "SECRET_KEY": "test-secret",
                          "DATABASE_URL": database_url,
                          "INSTANCE_PATH": str(tmp_path / f"instance{len(made)}"), **config})
        made.append(app)
        return app

    yield make
    from services.search import sync

    sync.wait_for_background(60)
    for app in made:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def client(app):
    """A test client whose browser prefers English (the tests read English text;
    tests/test_i18n.py covers Chinese)."""
    client = app.test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


@pytest.fixture
def make_user(app):
    """Create a user through the accounts service: ``make_user("sales")``."""
    counter = iter(range(1, 10_000))

    def make(role: str = "sales", username: str | None = None, **kwargs) -> User:
        with app.app_context():
            user = accounts.create_user(
                username or f"{role}{next(counter)}", TEST_PASSWORD, role, **kwargs
            )
            db.session.commit()
            db.session.refresh(user)  # load the committed row before detaching it
            db.session.expunge(user)
            return user

    return make


def login(client, username: str, password: str = TEST_PASSWORD):
    return client.post("/login", data={"username": username, "password": password})


@pytest.fixture
def login_as(client, make_user):
    """Sign the test client in as a new user of ``role``; returns the user."""

    def login_as(role: str = "sales", **kwargs) -> User:
        user = make_user(role, **kwargs)
        response = login(client, user.username)
        assert response.status_code == 303, response.data
        return user

    return login_as


@contextmanager
def statements_run(engine):
    """The SQL statements ``engine`` runs inside the block, as a list filled as they run."""
    statements: list[str] = []

    def capture(_conn, _cursor, statement, *_args):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", capture)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", capture)


def sqlite_plan(query) -> str:
    """SQLite's plan for ``query`` (a SQLAlchemy statement, its parameters written
    in), its steps joined by " | ": for tests that an index serves a statement."""
    from extensions import db

    connection = db.session.connection()
    sql = str(query.compile(connection, compile_kwargs={"literal_binds": True}))
    return " | ".join(row[-1] for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + sql))
