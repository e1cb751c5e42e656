"""A full disk: where a change cannot be saved, the page says so (507, and a toast
for htmx), never the generic 500; what only writes the search index (a note's entry,
signing in and out) goes on, and leaves no temporary file."""

import errno
import os
import sqlite3

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from extensions import db
from models import CustomerNote, SearchBacklog
from services import customers
from services.customers import CustomerData
from services.search import store
from tests.conftest import login

HX = {"HX-Request": "true"}
FULL = "disk is full: your change was not saved"


@pytest.fixture
def customer_id(app, login_as):
    user = login_as("sales")
    with app.app_context():
        customer = customers.create_customer(user, CustomerData(name="王小明"))
        db.session.commit()
        return customer.id


def _raise(error):
    def fail(*_args, **_kwargs):
        raise error
    return fail


DATABASE_FULL = OperationalError("COMMIT", {}, sqlite3.OperationalError("database or disk is full"))


@pytest.mark.parametrize("error", [DATABASE_FULL, OSError(errno.ENOSPC, "No space left on device")])
@pytest.mark.parametrize("headers", [HX, {}])
def test_a_save_on_a_full_disk_says_so(app, client, customer_id, monkeypatch, error, headers):
    monkeypatch.setattr(Session, "commit", _raise(error))
    response = client.post(f"/customers/{customer_id}/notes", headers=headers, data={"kind": "call", "body": "报价"})
    monkeypatch.undo()
    assert response.status_code == 507
    assert FULL in response.get_data(as_text=True)
    if headers:
        assert "not saved" in response.headers["HX-Trigger"]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(CustomerNote)) == 0


def test_other_database_errors_are_not_called_a_full_disk(client, customer_id, monkeypatch):
    monkeypatch.setattr(Session, "commit", _raise(
        OperationalError("COMMIT", {}, sqlite3.OperationalError("disk I/O error"))))
    with pytest.raises(OperationalError):  # TESTING propagates it: in production, the logged 500
        client.post(f"/customers/{customer_id}/notes", headers=HX, data={"kind": "call", "body": "报价"})


def test_a_full_index_disk_keeps_saves_sign_in_and_sign_out_working(app, client, make_user, customer_id,
                                                                    monkeypatch):
    with app.app_context():
        folder = os.path.join(store.root(), store.current_generation(), store.NOTES)
    from whoosh.filedb.filestore import FileStorage

    monkeypatch.setattr(FileStorage, "create_file", _raise(OSError(errno.ENOSPC, "No space left on device")))
    response = client.post(f"/customers/{customer_id}/notes", headers=HX, data={"kind": "call", "body": "报价"})
    assert response.status_code == 200
    assert client.post("/logout").status_code in (302, 303)
    other = make_user("manager", username="full.disk")
    assert login(client, other.username).status_code == 303
    assert client.get("/").status_code == 200
    monkeypatch.undo()
    assert not [name for name in os.listdir(folder) if name.endswith(".tmp") or ".toc." in name]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(SearchBacklog)) == 1  # applied by the next save
        db.session.commit()


def test_sign_out_on_a_full_database_disk_still_signs_this_browser_out(client, customer_id, monkeypatch):
    monkeypatch.setattr(Session, "commit", _raise(DATABASE_FULL))
    assert client.post("/logout").status_code in (302, 303)
    monkeypatch.undo()
    assert client.get("/").status_code in (302, 303)  # to the sign-in page


def test_sign_in_on_a_full_database_disk_still_signs_in(client, make_user, monkeypatch):
    user = make_user("manager", username="full.db")
    monkeypatch.setattr(Session, "commit", _raise(DATABASE_FULL))
    assert login(client, user.username).status_code == 303
    assert client.get("/").status_code == 200
    wrong = client.post("/login", data={"username": user.username, "password": "not the password"})
    assert wrong.status_code in (200, 303)  # already signed in: sent home, never a 500 or 507
    client.post("/logout")
    refused = client.post("/login", data={"username": user.username, "password": "not the password"})
    assert refused.status_code == 422  # the refusal is still said, though it could not be counted
