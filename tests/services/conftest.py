import pytest

from extensions import db
from services import accounts
from tests.conftest import TEST_PASSWORD


@pytest.fixture
def staff(app):
    """One account per role, and a second salesperson."""
    with app.app_context():
        made = {role: accounts.create_user(f"{role}.one", TEST_PASSWORD, role) for role in
                ("admin", "manager", "sales", "frontdesk")}
        made["sales2"] = accounts.create_user("sales.two", TEST_PASSWORD, "sales")
        db.session.commit()
        yield made
