"""Search straight from the database with ``LIKE '%…%'``: what answers while the
index is missing or being rebuilt (slower, and without pinyin), and the baseline
the benchmark compares the index with."""

from __future__ import annotations

from sqlalchemy import and_, exists, func, or_, select

from extensions import db
from models import Customer, CustomerNote, CustomerPhone, customer_tags, note_tags
from services import policy
from services.search.analysis import QueryWords

MAX_SCAN = 2000


def _like(column, text: str):
    """``column`` contains ``text``, in any case; a typed % or _ is matched as itself
    (SQLAlchemy's autoescape)."""
    return func.lower(column).contains(text, autoescape=True)


# The columns a typed text may match, by customer field (policy.Scope.fields).
_COLUMNS = {"name": Customer.name, "company": Customer.company, "email": Customer.email,
            "address": Customer.address}


def customer_condition(words: QueryWords, scope: policy.Scope | None = None):
    """Every word in some column ``scope`` lets it match (all text fields without
    a scope)."""
    columns = [column for name, column in _COLUMNS.items() if scope is None or name in scope.fields]
    parts = []
    if words.phone:
        parts.append(exists().where(CustomerPhone.customer_id == Customer.id,
                                    CustomerPhone.digits.like(f"%{words.phone}")))
    for text in words.typed_cjk + words.usable_words:
        fields = [_like(column, text) for column in columns]
        if text.isdigit():
            fields.append(exists().where(CustomerPhone.customer_id == Customer.id,
                                         CustomerPhone.digits.like(f"%{text}")))
        parts.append(or_(*fields))
    return and_(*parts) if parts else None


def note_condition(words: QueryWords):
    texts = ([words.phone] if words.phone else []) + words.typed_cjk + words.usable_words
    return and_(*[_like(CustomerNote.body, text) for text in texts]) if texts else None


def customers(user, words: QueryWords, *, archived: bool, tag_ids=(), page: int = 1, per_page: int = 10):
    """(customers on the page, total) for ``words``, newest first."""
    condition = customer_condition(words, policy.customer_scope(user))
    if condition is None:
        return [], 0
    query = policy.visible_customers(user, select(Customer)).where(condition).where(
        Customer.archived_at.is_not(None) if archived else Customer.archived_at.is_(None))
    for tag_id in tag_ids:
        query = query.where(exists().where(customer_tags.c.customer_id == Customer.id,
                                           customer_tags.c.tag_id == tag_id))
    return _page(query, Customer, page, per_page)


def notes(user, words: QueryWords, *, archived: bool, tag_ids=(), page: int = 1, per_page: int = 10):
    """(notes on the page, total) for ``words``, newest first."""
    condition = note_condition(words)
    if condition is None:
        return [], 0
    query = policy.readable_notes(user, select(CustomerNote)).where(condition).where(
        CustomerNote.customer_id.in_(select(Customer.id).where(
            Customer.archived_at.is_not(None) if archived else Customer.archived_at.is_(None))))
    for tag_id in tag_ids:
        query = query.where(exists().where(note_tags.c.note_id == CustomerNote.id, note_tags.c.tag_id == tag_id))
    return _page(query, CustomerNote, page, per_page)


def _page(query, model, page: int, per_page: int):
    total = db.session.scalar(select(func.count()).select_from(
        query.with_only_columns(model.id).limit(MAX_SCAN).subquery()))
    rows = list(db.session.scalars(query.order_by(model.id.desc()).limit(per_page).offset((page - 1) * per_page)))
    return rows, total
