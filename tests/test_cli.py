"""The command-line contract: init, ensure-admin, create-user, demo-data."""

import os
import re

import pytest
from sqlalchemy import func, select

from app import create_app
from extensions import db
from models import Role, User
from services import accounts


@pytest.fixture
def loose_umask():
    """The usual 022 umask of a shell, as before Deskbook set its own."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path) -> str:
    return oct(path.stat().st_mode & 0o777)


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def test_init_writes_a_secret_key_once_and_migrates(tmp_path):
    instance = tmp_path / "instance"
    app = create_app({"INSTANCE_PATH": str(instance), "DATABASE_URL": f"sqlite:///{tmp_path}/fresh.db"})
    result = app.test_cli_runner().invoke(args=["init"])
    assert result.exit_code == 0, result.output
    config = (instance / "config.py").read_text()
    assert re.fullmatch(r"SECRET_KEY = '[0-9a-f]{64}'\n", config)
    assert oct((instance / "config.py").stat().st_mode)[-3:] == "600"
    again = create_app({"INSTANCE_PATH": str(instance), "DATABASE_URL": f"sqlite:///{tmp_path}/fresh.db"})
    assert again.config["SECRET_KEY"] == config.split("'")[1]
    assert again.test_cli_runner().invoke(args=["init"]).exit_code == 0
    assert (instance / "config.py").read_text() == config
    with again.app_context():
        assert db.session.scalar(select(func.count()).select_from(User)) == 0


def test_ensure_admin_creates_one_admin_with_a_one_time_password(app, runner):
    result = runner.invoke(args=["ensure-admin"])
    password = re.search(r"password: (\S+)", result.output).group(1)
    with app.app_context():
        admin = accounts.authenticate("admin", password)
        assert admin.role == Role.ADMIN and admin.must_change_password
    second = runner.invoke(args=["ensure-admin"])
    assert "exists already" in second.output and "password:" not in second.output


def test_create_user_from_stdin(app, runner):
    result = runner.invoke(args=["create-user", "Chen.Jing", "--role", "manager",
                                 "--display-name", "陈静", "--password-stdin"],
                           input="a decent passphrase\n")
    assert result.exit_code == 0, result.output
    with app.app_context():
        user = accounts.authenticate("chen.jing", "a decent passphrase")
        assert (user.role, user.display_name) == ("manager", "陈静")


@pytest.mark.parametrize("args, stdin, message", [
    (["create-user", "x y", "--role", "sales", "--password-stdin"], "a decent passphrase\n", "username"),
    (["create-user", "ok.name", "--role", "sales", "--password-stdin"], "password\n", "password"),
])
def test_create_user_refusals(runner, args, stdin, message):
    result = runner.invoke(args=args, input=stdin)
    assert result.exit_code != 0 and message in result.output


def test_create_user_unknown_role(runner):
    result = runner.invoke(args=["create-user", "ok.name", "--role", "owner", "--password-stdin"],
                           input="a decent passphrase\n")
    assert result.exit_code == 2


def test_demo_data_is_seeded_and_repeatable(app, runner):
    first = runner.invoke(args=["demo-data", "--seed", "7", "--users", "9"])
    assert first.exit_code == 0, first.output
    password = re.search(r"their password: (\S+)", first.output).group(1)
    with app.app_context():
        users = db.session.scalars(select(User)).all()
        assert len(users) == 9
        assert {u.role for u in users} == {"manager", "sales", "frontdesk"}
        assert any(re.search(r"[\u4e00-\u9fff]", u.display_name) for u in users)
        assert accounts.authenticate(users[0].username, password)
    second = runner.invoke(args=["demo-data", "--seed", "7", "--users", "9"])
    assert second.exit_code == 0
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(User)) == 18


def test_demo_data_customers_notes_tags_and_tasks(app, runner):
    from models import Customer, CustomerNote, FollowUpTask, Tag
    from services import customers
    from services.customers import CustomerData

    result = runner.invoke(args=["demo-data", "--seed", "3", "--customers", "60", "--notes", "300"])
    assert result.exit_code == 0, result.output
    assert "Created 60 customers, 300 notes" in result.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Customer)) == 60
        assert db.session.scalar(select(func.count()).select_from(CustomerNote)) == 300
        assert db.session.scalar(select(func.count()).select_from(Tag)) > 10
        noted = db.session.scalars(select(Customer).where(Customer.last_contact_at.is_not(None))).all()
        assert noted and all(c.phones for c in noted)
        assert any(re.search(r"[\u4e00-\u9fff]", c.name) for c in noted)
        # Ids continue after the generated ones (PostgreSQL's sequence was moved on).
        manager = db.session.scalar(select(User).where(User.role == "manager"))
        made = customers.create_customer(manager, CustomerData(name="之后新建"))
        db.session.commit()
        assert made.id > 60
        assert db.session.scalar(select(func.count()).select_from(FollowUpTask)) >= 0


def test_pool_recycle_command_and_dry_run(app, runner):
    from datetime import timedelta

    from models import Customer, utcnow
    from services import customers
    from services.customers import CustomerData

    with app.app_context():
        owner = accounts.create_user("owner.one", "a decent passphrase", "sales")
        customer = customers.create_customer(owner, CustomerData(name="久未联系"))
        db.session.commit()
        customer.owned_since = utcnow() - timedelta(days=40)
        db.session.commit()
        customer_id = customer.id
    preview = runner.invoke(args=["pool", "recycle", "--dry-run"])
    assert preview.exit_code == 0 and "久未联系" in preview.output and "Would recycle 1" in preview.output
    with app.app_context():
        assert db.session.get(Customer, customer_id).owner_id is not None
    done = runner.invoke(args=["pool", "recycle"])
    assert "Recycled 1 customers." in done.output
    assert "Recycled 0 customers." in runner.invoke(args=["pool", "recycle"]).output


def test_demo_data_is_indexed_for_search(app, runner):
    from services import search

    result = runner.invoke(args=["demo-data", "--users", "3", "--customers", "30", "--notes", "60"])
    assert result.exit_code == 0, result.output
    assert "Indexed 30 customers and 60 notes" in result.output
    with app.app_context():
        assert search.check().ok


def test_search_rebuild_and_check_commands(app, runner):
    from services import customers, search
    from services.customers import CustomerData
    from services.search import store

    with app.app_context():
        admin = accounts.create_user("boss", "correct horse battery staple", "admin")
        customer = customers.create_customer(admin, CustomerData(name="张三丰"))
        db.session.commit()
        customer_id = customer.id
    rebuilt = runner.invoke(args=["search", "rebuild"])
    assert rebuilt.exit_code == 0 and "Indexed 1 customers and 0 notes" in rebuilt.output
    checked = runner.invoke(args=["search", "check"])
    assert checked.exit_code == 0 and "matches the database" in checked.output
    with app.app_context():
        writer = store.open_index(store.CUSTOMERS).writer()
        writer.delete_by_term("key", f"c{customer_id}")
        writer.commit()
    differs = runner.invoke(args=["search", "check"])
    assert differs.exit_code == 1 and f"1 missing from the index: c{customer_id}" in differs.output
    fixed = runner.invoke(args=["search", "check", "--fix"])
    assert fixed.exit_code == 0 and "Repaired 1 entries" in fixed.output
    assert runner.invoke(args=["search", "check"]).exit_code == 0
    with app.app_context():
        admin = accounts.get_by_username("boss")
        assert [c.id for c in search.search_customers(admin, "zsf").items] == [customer_id]


def test_init_makes_an_existing_instance_private(tmp_path, loose_umask):
    """An instance made by an earlier version (0755 folders, 0644 files) is closed at init."""
    instance = tmp_path / "instance"
    generation = instance / "search" / "gen-1"
    generation.mkdir(parents=True)
    (generation / "segment.seg").write_bytes(b"index")
    (instance / "deskbook.db").write_bytes(b"")
    for path in (instance, instance / "search", generation):
        path.chmod(0o755)
    url = f"sqlite:///{instance}/deskbook.db"
    app = create_app({"INSTANCE_PATH": str(instance), "DATABASE_URL": url})
    result = app.test_cli_runner().invoke(args=["init"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        db.engine.dispose()
    for folder in (instance, instance / "search", generation):
        assert _mode(folder) == "0o700", folder
    for name in ("config.py", "deskbook.db", "search/gen-1/segment.seg"):
        assert _mode(instance / name) == "0o600", name


def test_files_the_app_creates_later_are_private(tmp_path, loose_umask):
    """The server process itself (no init) makes instance/, the database and its WAL
    readable by its own account only."""
    from flask_migrate import upgrade

    instance = tmp_path / "instance"
    app = create_app({"TESTING": True, "SECRET_KEY": "x", "INSTANCE_PATH": str(instance),
                      "DATABASE_URL": f"sqlite:///{instance}/deskbook.db"})
    with app.app_context():
        upgrade()
        db.session.execute(db.text("CREATE TABLE later (x INTEGER)"))
        db.session.commit()
        assert (instance / "deskbook.db-wal").exists()
        (instance / "search").mkdir()  # as the index does, in this process
        assert _mode(instance / "deskbook.db-wal") == "0o600"
        db.engine.dispose()
    assert _mode(instance) == "0o700"
    assert _mode(instance / "deskbook.db") == "0o600"
    assert _mode(instance / "search") == "0o700"


def test_pool_recycle_prunes_old_sign_in_throttle_rows(app, runner):
    from datetime import timedelta

    from models import LoginAddressThrottle, LoginThrottle, utcnow

    long_ago = utcnow() - timedelta(days=2)
    with app.app_context():
        db.session.add_all([LoginThrottle(username="typed.once", failures=3, window_started_at=long_ago),
                            LoginAddressThrottle(address="10.0.0.1", failures=2, last_failure_at=long_ago),
                            LoginThrottle(username="still.counting", failures=3, window_started_at=utcnow())])
        db.session.commit()
    result = runner.invoke(args=["pool", "recycle"])
    assert result.exit_code == 0, result.output
    assert "Pruned 2 sign-in throttle rows." in result.output
    with app.app_context():
        assert db.session.scalars(select(LoginThrottle.username)).all() == ["still.counting"]
        assert db.session.scalar(select(func.count()).select_from(LoginAddressThrottle)) == 0


def test_search_check_fix_empties_a_backlog_of_changes_already_in_the_index(app, runner):
    from sqlalchemy import insert

    from models import SearchBacklog
    from services import customers, search
    from services.customers import CustomerData

    with app.app_context():
        admin = accounts.create_user("boss", "correct horse battery staple", "admin")
        customer_id = customers.create_customer(admin, CustomerData(name="张三丰")).id
        db.session.commit()
        # applied already, but left behind: by a read-only request's rebuild, and by a rebuild stopped midway
        db.session.execute(insert(SearchBacklog), [{"kind": "customer", "ref_id": customer_id, "applied_live": False},
                                                   {"kind": "customer", "ref_id": customer_id, "applied_live": True}])
        db.session.commit()
    checked = runner.invoke(args=["search", "check"])
    assert checked.exit_code == 0 and "2 changes waiting in the backlog" in checked.output
    fixed = runner.invoke(args=["search", "check", "--fix"])
    assert fixed.exit_code == 0, fixed.output
    again = runner.invoke(args=["search", "check"])
    assert again.exit_code == 0 and "backlog" not in again.output and "matches the database" in again.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(SearchBacklog)) == 0
        admin = accounts.get_by_username("boss")
        assert [c.id for c in search.search_customers(admin, "张三丰").items] == [customer_id]
