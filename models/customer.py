"""Customers (客户档案), their phone numbers and the history of their fields."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from extensions import Model, db
from models.base import utcnow


class CustomerType(StrEnum):
    INDIVIDUAL = "individual"  # 个人
    SME = "sme"  # 中小企业
    KEY_ACCOUNT = "key_account"  # 大客户


class Stage(StrEnum):
    POTENTIAL = "potential"  # 潜在
    INTENT = "intent"  # 意向
    DEAL = "deal"  # 成交
    LOST = "lost"  # 流失


class Importance(StrEnum):
    A = "A"
    B = "B"
    C = "C"


class Source(StrEnum):
    CALL = "call"  # 来电
    VISIT = "visit"  # 到访
    REFERRAL = "referral"  # 转介绍
    WEB = "web"  # 网络
    OTHER = "other"  # 其他


class PhoneKind(StrEnum):
    MOBILE = "mobile"
    LANDLINE = "landline"


# A customer whose name or company holds an ASCII digit (a few of them), in each
# database's words. The list's text filter for a text with a digit tests only those
# (services.customers._text_condition), through the partial index of the same condition.
DIGIT_PATTERNS = {"sqlite": ("GLOB", "*[0-9]*"), "postgresql": ("~", "[0-9]")}


def _digit_text(dialect: str) -> str:
    operator, pattern = DIGIT_PATTERNS[dialect]
    return " OR ".join(f"{column} {operator} '{pattern}'" for column in ("name", "company"))


def _in(column: str, enum: type[StrEnum]) -> str:
    values = ", ".join(f"'{member.value}'" for member in enum)
    return f"{column} IN ({values})"


customer_tags = db.Table(
    "customer_tags",
    db.Column("customer_id", ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True),
    db.Column("tag_id", ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True),
    # Covering index for "customers with tag X": the tag filter reads only this index.
    Index("ix_customer_tags_tag_customer", "tag_id", "customer_id"),
)


class Customer(Model):
    """A customer. No owner means the customer is in the public pool (公海)."""

    __tablename__ = "customers"
    __table_args__ = (
        CheckConstraint(_in("type", CustomerType), name="type_known"),
        CheckConstraint(_in("stage", Stage), name="stage_known"),
        CheckConstraint(_in("importance", Importance), name="importance_known"),
        CheckConstraint(_in("source", Source), name="source_known"),
        Index("ix_customers_name_company", "name", "company"),
        Index("ix_customers_digit_text", "name", "company",
              sqlite_where=text(_digit_text("sqlite")), postgresql_where=text(_digit_text("postgresql"))),
        Index("ix_customers_owner_archived", "owner_id", "archived_at"),
        # Covering for the list's stage and importance filters under every role's
        # scope (not archived; own or pool): the count and the tag counts read only
        # the index, not the customers' rows, and find a filter's customers already
        # grouped by their tags (tag_key before owner_id: no sort to group them).
        Index("ix_customers_stage_archived_tags", "stage", "archived_at", "tag_key", "owner_id"),
        Index("ix_customers_importance_archived_tags", "importance", "archived_at", "tag_key", "owner_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    company: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str] = mapped_column(String(254), default="", index=True)
    address: Mapped[str] = mapped_column(String(300), default="")
    region: Mapped[str] = mapped_column(String(50), default="", index=True)
    type: Mapped[str] = mapped_column(String(16), default=CustomerType.INDIVIDUAL.value)
    stage: Mapped[str] = mapped_column(String(16), default=Stage.POTENTIAL.value)
    importance: Mapped[str] = mapped_column(String(1), default=Importance.B.value)
    source: Mapped[str] = mapped_column(String(16), default=Source.OTHER.value)
    birthday: Mapped[date | None]
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow, index=True)
    # Time of the newest note (its contact time when given).
    last_contact_at: Mapped[datetime | None] = mapped_column(index=True)
    archived_at: Mapped[datetime | None] = mapped_column(index=True)
    # Public pool (P1–P7): when the current owner got the customer (the recycle clock
    # starts no earlier), the owner's lock against recycling, why it is in the pool.
    owned_since: Mapped[datetime | None]
    recycle_locked: Mapped[bool] = mapped_column(default=False)
    times_recycled: Mapped[int] = mapped_column(default=0)
    pool_reason: Mapped[str] = mapped_column(String(16), default="")
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    # The ids of the customer's tags, ascending, comma-separated ('' for none): kept
    # by the database's triggers on customer_tags (migration 0014), never written
    # here; read by the list's tag counts only (services.customers.tag_counts).
    tag_key: Mapped[str] = mapped_column(Text, server_default="", deferred=True)

    owner = relationship("User", foreign_keys=[owner_id], lazy="joined")
    created_by = relationship("User", foreign_keys=[created_by_id])
    phones: Mapped[list[CustomerPhone]] = relationship(
        back_populates="customer",
        cascade="all, delete-orphan",
        order_by="CustomerPhone.position",
        lazy="selectin",
    )
    tags = relationship("Tag", secondary=customer_tags, lazy="selectin", order_by="Tag.name")
    merged_into = relationship("Customer", remote_side=[id])

    @property
    def in_pool(self) -> bool:
        return self.owner_id is None

    @property
    def archived(self) -> bool:
        return self.archived_at is not None

    def __repr__(self) -> str:
        return f"<Customer {self.id} {self.name}>"


# The pool page's default order (longest without contact first: never contacted, then
# oldest), on PostgreSQL: its indexes put NULLs last in ascending order, so without
# this one the first page sorted every pool customer (116 ms at 100,000; 0.1 ms with
# it). SQLite puts NULLs first already and uses ix_customers_last_contact_at.
Index("ix_customers_pool_stale", Customer.last_contact_at.asc().nulls_first(), Customer.id,
      postgresql_where=Customer.owner_id.is_(None) & Customer.archived_at.is_(None)).ddl_if(dialect="postgresql")
# On SQLite: the scope (archived, owner) and tags of customers found by id (a tag
# filter's, from customer_tags), read from this narrow index instead of the
# customers' whole rows (migration 0018 says why not on PostgreSQL).
Index("ix_customers_id_scope", Customer.id, Customer.archived_at, Customer.owner_id,
      Customer.tag_key).ddl_if(dialect="sqlite")
# The customer list's "stale" and "last contact" orders (never contacted first, and
# last) on PostgreSQL, read forwards and backwards; SQLite's ix_customers_last_contact_at
# has NULLs first already.
Index("ix_customers_contact_nulls_first", Customer.last_contact_at.asc().nulls_first(),
      Customer.id).ddl_if(dialect="postgresql")


class CustomerPhone(Model):
    """One phone number, stored as digits only (see services.phones)."""

    __tablename__ = "customer_phones"
    __table_args__ = (CheckConstraint(_in("kind", PhoneKind), name="kind_known"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(10), default=PhoneKind.MOBILE.value)
    digits: Mapped[str] = mapped_column(String(20), index=True)
    position: Mapped[int] = mapped_column(default=0)

    customer: Mapped[Customer] = relationship(back_populates="phones")


class CustomerChange(Model):
    """One field change (C5): who changed which field from what to what, when."""

    __tablename__ = "customer_changes"
    __table_args__ = (Index("ix_customer_changes_customer_at", "customer_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    field: Mapped[str] = mapped_column(String(32))
    old_value: Mapped[str] = mapped_column(Text, default="")
    new_value: Mapped[str] = mapped_column(Text, default="")

    user = relationship("User")
