"""Test data built through the same services the app uses.

Call these inside an app context. They add and flush like the services do and leave
the commit to the test, unless asked (``commit=True``) — a test that reads what it
built through another session, or through the search index, commits first.

    sales = make_account("sales")
    customer = make_customer(sales, "王小明", phone="13800138000")
    note = make_note(sales, customer, "客户来电询问报价", commit=True)
"""

from __future__ import annotations

from sqlalchemy import func, select

from extensions import db
from models import Customer, CustomerNote, Tag, TagGroup, User
from services import accounts, customers, notes
from services.customers import CustomerData
from services.notes import NoteData

TEST_PASSWORD = "correct horse battery staple"


def make_account(role: str = "sales", username: str | None = None, **kwargs) -> User:
    """An account of ``role`` with TEST_PASSWORD; the username defaults to the role and
    a number (``sales3``), the display name to the username in title case."""
    username = username or f"{role}{db.session.scalar(select(func.count(User.id))) + 1}"
    kwargs.setdefault("display_name", username.title())
    return accounts.create_user(username, TEST_PASSWORD, role, **kwargs)


def make_customer(actor: User, name: str = "王小明", *, phone: str | None = None, tag_ids=(),
                  commit: bool = False, **fields) -> Customer:
    """A customer created by ``actor`` as the entry form creates one (a likely duplicate
    acknowledged); ``phone`` is a mobile number, ``tag_ids`` are set after creation."""
    if phone:
        fields["phones"] = [("mobile", phone)]
    customer = customers.create_customer(actor, CustomerData(name=name, **fields), acknowledge_duplicates=True)
    if tag_ids:
        customers.set_tags(actor, customer, list(tag_ids))
    if commit:
        db.session.commit()
    return customer


def make_note(actor: User, customer: Customer, body: str = "客户来电询问报价", *, kind: str = "call",
              commit: bool = False, **fields) -> CustomerNote:
    """A note by ``actor`` on ``customer`` through the notes service."""
    note = notes.create_note(actor, customer, NoteData(kind=kind, body=body, **fields)).note
    if commit:
        db.session.commit()
    return note


def make_tag(name: str, group: str) -> Tag:
    """A tag ``name`` in the group ``group`` (made if missing), committed."""
    found = db.session.scalar(select(TagGroup).where(TagGroup.name == group))
    if found is None:
        found = TagGroup(name=group)
        db.session.add(found)
        db.session.flush()
    tag = Tag(group_id=found.id, name=name)
    db.session.add(tag)
    db.session.commit()
    return tag
