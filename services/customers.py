"""Customers: create, update with field history, duplicate check, archive, restore,
purge, tags, and the filtered list.

Every function that changes something adds and flushes its change and its audit line
(where the action is sensitive) to the caller's transaction; the caller commits.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import date, datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from sqlalchemy.orm import aliased, lazyload

from extensions import db, insert_returning_ids, insert_rows
from models import (
    Customer,
    CustomerChange,
    CustomerPhone,
    Tag,
    User,
    customer_tags,
    utcnow,
)
from models.customer import DIGIT_PATTERNS
from services import audit, phones, policy, pool, search, tags
from services.errors import DomainError
from services.ids import parse_id

# Fields compared for the history, in the order the form shows them.
TRACKED_FIELDS = (
    "name", "company", "phones", "email", "address", "region", "type", "stage",
    "importance", "source", "birthday", "owner_id",
)


@dataclass
class CustomerData:
    """What a customer form submits, already validated for shape by the form."""

    name: str
    company: str = ""
    phones: list[tuple[str, str]] = field(default_factory=list)  # (kind, digits)
    email: str = ""
    address: str = ""
    region: str = ""
    type: str = "individual"
    stage: str = "potential"
    importance: str = "B"
    source: str = "other"
    birthday: date | None = None
    owner_id: int | None = None


class DuplicateCustomer(DomainError):
    """Saving would create a likely duplicate; ``duplicates`` lists the existing
    customers. Save again with ``acknowledge_duplicates=True`` to go ahead."""

    def __init__(self, duplicates: list[Customer]):
        super().__init__(_l("This customer may exist already."), None)
        self.duplicates = duplicates


def get(customer_id: int, *, brief: bool = False) -> Customer | None:
    """The customer; ``brief``: without reading its phones and tags now (they load
    when first used), for a request that needs the customer's row only (a claim)."""
    if brief:
        return db.session.get(Customer, customer_id, options=[lazyload(Customer.phones), lazyload(Customer.tags)])
    return db.session.get(Customer, customer_id)


def match_keys(data: CustomerData) -> set[tuple[str, str]]:
    """What makes two customers likely duplicates (C3), as keys: each phone number,
    the email (case ignored), and the name with the company (when both are given).
    Two customers sharing a key are duplicates."""
    keys = {("phone", number) for _, number in data.phones if number}
    if data.email:
        keys.add(("email", data.email.lower()))
    if data.name and data.company:
        keys.add(("name", f"{data.name}\x1f{data.company}"))
    return keys


def _key_condition(keys):
    """SQL matching the customers that share one of ``keys`` (see match_keys)."""
    from sqlalchemy import and_, or_, tuple_

    conditions = []
    digits = [value for kind, value in keys if kind == "phone"]
    if digits:
        conditions.append(
            Customer.id.in_(select(CustomerPhone.customer_id).where(CustomerPhone.digits.in_(digits)))
        )
    emails = [value for kind, value in keys if kind == "email"]
    if emails:  # stored in lower case (_field_values): the index on email answers, where lower() scanned
        conditions.append(Customer.email.in_(emails))
    names = [tuple(value.split("\x1f", 1)) for kind, value in keys if kind == "name"]
    if names:  # the names alone, so that the index on (name, company) is searched, not scanned (SQLite)
        conditions.append(and_(Customer.name.in_({name for name, _ in names}),
                               tuple_(Customer.name, Customer.company).in_(names)))
    return or_(*conditions) if conditions else None


def find_duplicates(data: CustomerData, *, exclude_id: int | None = None, limit: int = 5) -> list[Customer]:
    """Customers with the same phone number, the same email, or the same name and
    company (C3). Merged-away records are not counted."""
    condition = _key_condition(match_keys(data))
    if condition is None:
        return []
    query = select(Customer).where(condition, Customer.merged_into_id.is_(None))
    if exclude_id is not None:
        query = query.where(Customer.id != exclude_id)
    return list(db.session.scalars(query.order_by(Customer.id).limit(limit)))


def customers_by_key(keys: set[tuple[str, str]]) -> dict[tuple[str, str], list[int]]:
    """For many records at once (an import's batch of rows): the ids of existing
    customers sharing each of ``keys`` (see match_keys), by the rules of
    find_duplicates, in a few queries instead of one per record."""
    found: dict[tuple[str, str], list[int]] = {}
    ordered = sorted(keys)
    for start in range(0, len(ordered), 300):
        condition = _key_condition(ordered[start : start + 300])
        rows = db.session.execute(
            select(Customer.id, Customer.name, Customer.company, Customer.email)
            .where(condition, Customer.merged_into_id.is_(None)).order_by(Customer.id)
        ).all()
        phone_rows = db.session.execute(
            select(CustomerPhone.customer_id, CustomerPhone.digits)
            .where(CustomerPhone.customer_id.in_([row.id for row in rows]))
        ).all() if rows else []
        by_id: dict[int, set] = {}
        for row in rows:
            by_id[row.id] = match_keys(CustomerData(name=row.name, company=row.company, email=row.email))
        for customer_id, digits in phone_rows:
            by_id[customer_id].add(("phone", digits))
        for customer_id, customer_keys in by_id.items():
            for key in customer_keys & keys:
                found.setdefault(key, []).append(customer_id)
    return found


def match_reasons(customer: Customer, data: CustomerData) -> list[str]:
    """Why ``customer`` looks like a duplicate of ``data``: "phone", "email", "name"."""
    reasons = []
    digits = {number for _, number in data.phones}
    if digits & {p.digits for p in customer.phones}:
        reasons.append("phone")
    if data.email and customer.email.lower() == data.email.lower():
        reasons.append("email")
    if data.name and data.company and (customer.name, customer.company) == (data.name, data.company):
        reasons.append("name")
    return reasons


def _owner_for_new(actor: User, data: CustomerData) -> int | None:
    if policy.may(actor, "customer.choose_owner"):
        return data.owner_id
    if policy.owns_new_customers(actor):
        return actor.id
    return None  # front desk: into the public pool


def _check_owner(owner_id: int | None) -> None:
    if owner_id is None:
        return
    owner = db.session.get(User, owner_id)
    if not policy.may_own_customers(owner):
        raise DomainError(_l("Choose an active colleague as owner."), "owner_id")


def _field_values(data: CustomerData) -> dict:
    """The customer's own columns as ``data`` gives them (trimmed, the email in lower case)."""
    values = {}
    for name in ("name", "company", "email", "address", "region", "type", "stage",
                 "importance", "source", "birthday"):
        value = getattr(data, name)
        values[name] = value.strip() if isinstance(value, str) else value
    values["email"] = values["email"].lower()
    return values


def _apply(customer: Customer, data: CustomerData) -> None:
    for name, value in _field_values(data).items():
        setattr(customer, name, value)
    customer.phones = [
        CustomerPhone(kind=kind, digits=digits, position=index)
        for index, (kind, digits) in enumerate(data.phones)
    ]


def build_customer(actor: User | None, data: CustomerData, owner_id: int | None) -> Customer:
    """A new Customer for ``data``, not yet added to the session (create_customer):
    the caller has checked the owner and the duplicates."""
    customer = Customer(created_by_id=actor.id if actor else None, owner_id=owner_id, created_at=utcnow())
    _apply(customer, data)
    return customer


def insert_customers(actor: User | None, new: list[tuple[CustomerData, int | None, datetime | None]],
                     now: datetime, **details) -> list[int]:
    """What build_customer and create_customer write, for many customers at once
    with bulk statements (an import's chunk of rows): each of ``new`` is (data,
    owner, last contact time), created at ``now``, with its phones, its pool record
    (pool.record_created_many, with ``details``) and its search backlog entry. The
    caller has checked the owners and the duplicates. Returns the new ids, in order;
    the session holds no objects for them."""
    if not new:
        return []
    created_by = actor.id if actor else None
    rows = [{**_field_values(data), "owner_id": owner_id, "created_by_id": created_by, "created_at": now,
             "updated_at": now, "last_contact_at": last_contact_at, **pool.new_customer_clock(owner_id, now)}
            for data, owner_id, last_contact_at in new]
    ids = insert_returning_ids(Customer, rows)
    phone_rows = [{"customer_id": customer_id, "kind": kind, "digits": digits, "position": index}
                  for customer_id, (data, _, _) in zip(ids, new, strict=True)
                  for index, (kind, digits) in enumerate(data.phones)]
    insert_rows(CustomerPhone, phone_rows)
    pool.record_created_many([(customer_id, owner_id) for customer_id, (_, owner_id, _) in zip(ids, new)],
                             actor, **details)
    return ids


def create_customer(
    actor: User, data: CustomerData, *, acknowledge_duplicates: bool = False, ip: str | None = None
) -> Customer:
    """Create a customer. Raises DuplicateCustomer unless ``acknowledge_duplicates``;
    a customer saved despite a duplicate warning is audited."""
    duplicates = find_duplicates(data)
    if duplicates and not acknowledge_duplicates:
        raise DuplicateCustomer(duplicates)
    owner_id = _owner_for_new(actor, data)
    _check_owner(owner_id)
    customer = build_customer(actor, data, owner_id)
    db.session.add(customer)
    db.session.flush()
    pool.record_created(customer, actor)
    if duplicates:
        audit.record("customer.create_despite_duplicate", actor, ip=ip, target=customer,
                     duplicates=[c.id for c in duplicates])
    db.session.flush()
    return customer


def _snapshot(customer: Customer) -> dict[str, str]:
    values = {}
    for name in TRACKED_FIELDS:
        if name == "phones":
            values[name] = ", ".join(phones.display(p.digits) for p in customer.phones)
        elif name == "owner_id":
            owner = db.session.get(User, customer.owner_id) if customer.owner_id else None
            values[name] = owner.display_name if owner else ""
        else:
            value = getattr(customer, name)
            values[name] = "" if value is None else str(value)
    return values


def update_customer(
    actor: User, customer: Customer, data: CustomerData, *, acknowledge_duplicates: bool = False,
    ip: str | None = None,
) -> list[CustomerChange]:
    """Save edits; every changed field is kept in the history (C5). The owner changes
    only when ``actor`` may assign customers (a pool event is recorded). Raises DuplicateCustomer unless
    acknowledged."""
    duplicates = find_duplicates(data, exclude_id=customer.id)
    if duplicates and not acknowledge_duplicates:
        raise DuplicateCustomer(duplicates)
    before = _snapshot(customer)
    if policy.may(actor, "pool.assign") and data.owner_id != customer.owner_id:
        _check_owner(data.owner_id)
        pool.record_owner_change(actor, customer, data.owner_id)
    _apply(customer, data)
    db.session.flush()
    after = _snapshot(customer)
    changes = [
        CustomerChange(customer_id=customer.id, user_id=actor.id, field=name,
                       old_value=before[name], new_value=after[name])
        for name in TRACKED_FIELDS if before[name] != after[name]
    ]
    db.session.add_all(changes)
    if changes:
        customer.updated_at = utcnow()
    if duplicates:
        audit.record("customer.update_despite_duplicate", actor, ip=ip, target=customer,
                     duplicates=[c.id for c in duplicates])
    db.session.flush()
    return changes


def set_tags(actor: User, customer: Customer, tag_ids: list[int]) -> None:
    """Replace the customer's tags; the change is kept in the history."""
    chosen = list(db.session.scalars(select(Tag).where(Tag.id.in_(tag_ids)))) if tag_ids else []
    old = ", ".join(sorted(t.name for t in customer.tags))
    customer.tags = chosen
    new = ", ".join(sorted(t.name for t in chosen))
    if old != new:
        db.session.add(CustomerChange(customer_id=customer.id, user_id=actor.id, field="tags",
                                      old_value=old, new_value=new))
    db.session.flush()


def archive(actor: User, customer: Customer, *, ip: str | None = None) -> None:
    """Hide a customer from lists and search (C4); it can be restored."""
    if customer.archived_at is not None:
        return
    customer.archived_at = utcnow()
    db.session.add(CustomerChange(customer_id=customer.id, user_id=actor.id, field="archived",
                                  old_value="", new_value="archived"))
    audit.record("customer.archive", actor, ip=ip, target=customer)
    db.session.flush()


def restore(actor: User, customer: Customer, *, ip: str | None = None) -> None:
    if customer.archived_at is None:
        return
    if customer.merged_into_id is not None:
        raise DomainError(_l("This customer was merged; undo the merge instead."))
    customer.archived_at = None
    db.session.add(CustomerChange(customer_id=customer.id, user_id=actor.id, field="archived",
                                  old_value="archived", new_value=""))
    audit.record("customer.restore", actor, ip=ip, target=customer)
    db.session.flush()


def purge(actor: User, customer: Customer, typed_name: str, *, ip: str | None = None) -> None:
    """Delete an archived customer and everything attached, for good (C4). The
    audit line keeps the id only, no personal data. Raises DomainError unless the
    customer is archived and ``typed_name`` matches its name."""
    if customer.archived_at is None:
        raise DomainError(_l("Only archived customers can be deleted for good."))
    if typed_name.strip() != customer.name:
        raise DomainError(_l("Type the customer's name exactly to confirm."), "confirm_name")
    customer_id = customer.id
    db.session.execute(
        Customer.__table__.update().where(Customer.merged_into_id == customer_id).values(merged_into_id=None)
    )
    db.session.delete(customer)
    audit.record("customer.purge", actor, ip=ip, target_type="customers", target_id=customer_id)
    db.session.flush()


def history(customer: Customer, limit: int = 200) -> list[CustomerChange]:
    return list(db.session.scalars(
        select(CustomerChange).where(CustomerChange.customer_id == customer.id)
        .order_by(CustomerChange.at.desc(), CustomerChange.id.desc()).limit(limit)
    ))


# ---- the list ------------------------------------------------------------------------

# Never contacted is the stalest: first in "stale", last in "last_contact" — said
# explicitly, because SQLite and PostgreSQL put NULLs at opposite ends by default.
SORTS = {
    "updated": Customer.updated_at.desc(),
    "created": Customer.created_at.desc(),
    "name": Customer.name.asc(),
    "last_contact": Customer.last_contact_at.desc().nulls_last(),
    "stale": Customer.last_contact_at.asc().nulls_first(),
}
NEWEST_FIRST = Customer.id.desc()  # the order among equals
# Aliases of the customers table, made once: a new alias per request costs more to
# build and compile than the statement using it (each of its columns is derived anew).
_NAMED = aliased(Customer, name="named")  # the text filter's scan (_text_condition)
_WALKED = aliased(Customer, name="walked")  # a page read along its order (_walking_the_order)
_WALKED_ORDERS: dict[int, tuple] = {}


@dataclass
class CustomerFilter:
    stage: str = ""
    type: str = ""
    importance: str = ""
    region: str = ""
    source: str = ""
    owner: str = ""  # "", "pool", "mine" or a user id
    archived: bool = False
    tag_ids: list[int] = field(default_factory=list)
    q: str = ""
    sort: str = "updated"
    page: int = 1
    per_page: int = 25

    def as_args(self) -> dict:
        """The filter as URL arguments (for links that keep it)."""
        args = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "tag_ids":
                if value:
                    args["tag"] = value
            elif f.name == "per_page" or value in ("", False, None) or (f.name == "page" and value == 1):
                continue
            elif f.name == "sort" and value == "updated":
                continue
            else:
                args[f.name] = "1" if value is True else value
        return args


@dataclass
class CustomerPage:
    items: list[Customer]
    total: int
    page: int
    pages: int
    tag_counts: dict[int, int]
    # Each item's tags as the rows show them, by customer id (see tags_of).
    row_tags: dict[int, tuple[tags.ShownTag, ...]] = field(default_factory=dict)

    def tags_of(self, customer: Customer) -> tuple[tags.ShownTag, ...]:
        """The tags of ``customer`` (one of ``items``), by name."""
        return self.row_tags[customer.id]


# The customer field each filter (and sort) reads: a user filters and sorts only on
# the fields the policy shows them (front desk: the basic card).
FILTER_FIELDS = {"stage": "stage", "type": "type", "importance": "importance", "source": "source",
                 "region": "region", "owner": "owner", "tag_ids": "tags"}
SORT_FIELDS = {"name": "name", "last_contact": "last_contact", "stale": "last_contact",
               "created": "created"}


def allowed_filter(user: User, flt: CustomerFilter) -> CustomerFilter:
    """``flt`` without what ``user`` may not filter or sort on: filters of fields
    the policy hides, and the archive unless they may archive."""
    fields = policy.visible_fields(user)
    flt = replace(flt, **{name: [] if name == "tag_ids" else "" for name, field_name
                          in FILTER_FIELDS.items() if field_name not in fields})
    if flt.sort in SORT_FIELDS and SORT_FIELDS[flt.sort] not in fields:
        flt.sort = "updated"
    flt.archived = flt.archived and policy.may(user, "customer.archive")
    return flt


def filtered_query(user: User, flt: CustomerFilter):
    """``select(Customer)`` restricted to what ``user`` may see and ``flt`` asks for
    (as far as ``user`` may filter on it: :func:`allowed_filter`)."""
    flt = allowed_filter(user, flt)
    query = policy.visible_customers(user)
    query = query.where(Customer.archived_at.is_not(None) if flt.archived else Customer.archived_at.is_(None))
    for name in ("stage", "type", "importance", "source", "region"):
        value = getattr(flt, name)
        if value:
            query = query.where(getattr(Customer, name) == value)
    if flt.owner == "pool":
        query = query.where(Customer.owner_id.is_(None))
    elif flt.owner == "mine":
        query = query.where(Customer.owner_id == user.id)
    elif (owner_id := parse_id(flt.owner)) is not None:
        query = query.where(Customer.owner_id == owner_id)
    if flt.tag_ids:  # all must match
        query = query.where(Customer.id.in_(customers_with_all_tags(flt.tag_ids)))
    if flt.q:
        query = query.where(_text_condition(flt.q))
    return query


def customers_with_all_tags(tag_ids: list[int]):
    """Ids of customers carrying every tag in ``tag_ids``: an INTERSECT of index-only
    lookups (ix_customer_tags_tag_customer), evaluated once, not per customer."""
    from sqlalchemy import intersect

    lookups = [select(customer_tags.c.customer_id).where(customer_tags.c.tag_id == tag_id)
               for tag_id in tag_ids]
    return lookups[0] if len(lookups) == 1 else intersect(*lookups)


def _text_condition(q: str):
    """Plain matching for the list's quick filter (the search service does the
    real search): a name or company fragment, or the end of a phone number. Where
    the search index can name a few customers among which every match is (Chinese
    text, a phone number's end), only those are tested; else every customer is."""
    from sqlalchemy import or_

    # Matched on another alias of the table, so that a scan reads the (name, company)
    # index rather than every customer's row (the rest of the filter then looks up only
    # the matches).
    named = _NAMED
    in_name = select(named.id).where(or_(_holds(named.name, q), _holds(named.company, q)))
    if (candidates := search.customers_possibly_named(q)) is not None:
        in_name = in_name.where(named.id.in_(sorted(candidates)))
    elif _ASCII_DIGIT.search(q):  # only a name or company with a digit can hold it
        in_name = in_name.where(_with_a_digit(named))
    conditions = [Customer.id.in_(in_name)]
    digits = phones.digits_only(q)
    if len(digits) >= 4:
        ending = select(CustomerPhone.customer_id).where(CustomerPhone.digits.like(f"%{digits}"))
        if (candidates := search.customers_possibly_with_phone_ending(digits)) is not None:
            ending = ending.where(CustomerPhone.customer_id.in_(sorted(candidates)))
        conditions.append(Customer.id.in_(ending))
    return or_(*conditions)


def _holds(column, q: str):
    """``column`` holds the fragment ``q`` as typed (a % or _ is itself: SQLAlchemy
    escapes it for LIKE). On SQLite, a fragment without ASCII letters (Chinese, digits)
    is found with instr(), which gives the same answer as LIKE '%…%' without matching
    a pattern: half the time on a scan of every customer. LIKE stays for ASCII letters,
    which SQLite's LIKE matches in either case."""
    if _ASCII_LETTER.search(q) is None and db.session.get_bind().dialect.name == "sqlite":
        return func.instr(column, q) > 0
    return column.contains(q, autoescape=True)


_ASCII_LETTER = re.compile("[A-Za-z]")
_ASCII_DIGIT = re.compile("[0-9]")


def _with_a_digit(customer):
    """``customer`` (the table or an alias) has an ASCII digit in its name or company:
    the condition of the partial index ix_customers_digit_text, written as it is
    there (the patterns as literals, not parameters) so that the database uses it."""
    from sqlalchemy import literal_column, or_

    operator, pattern = DIGIT_PATTERNS[db.session.get_bind().dialect.name]
    return or_(*(column.op(operator)(literal_column(f"'{pattern}'")) for column in (customer.name, customer.company)))


def list_customers(user: User, flt: CustomerFilter) -> CustomerPage:
    """One page of the customer list, the total, and per tag how many customers of
    the current filter carry it (for the tag filter's counts)."""
    query = filtered_query(user, flt)
    order = [SORTS.get(flt.sort, SORTS["updated"]), NEWEST_FIRST]
    unfiltered = allowed_filter(user, flt) == CustomerFilter(sort=flt.sort, page=flt.page, per_page=flt.per_page)
    outside = _left_out(policy.customer_scope(user)) if unfiltered else None
    return page_of(query, order, flt.page, flt.per_page, outside=outside,
                   with_tag_counts="tags" in policy.visible_fields(user))


def _left_out(scope: policy.Scope):
    """A condition, answered by indexes, that holds exactly for the customers the
    unfiltered list of a user with ``scope`` leaves out (see :func:`page_of`): the
    archived ones and, when the user sees only some owners' customers (a salesperson:
    their own and the pool's), the other owners' ones. None when there is none."""
    archived = Customer.archived_at.is_not(None)
    if scope.everything:
        return archived
    if scope.nothing or None not in scope.owners:
        return None
    owners = sorted(owner for owner in scope.owners if owner is not None)
    return any_of(archived, Customer.owner_id.is_not(None) & Customer.owner_id.not_in(owners))


def any_of(*conditions):
    """Customers for which one of ``conditions`` holds, as a UNION of the customers
    of each: each read by its own index, where an OR of them reads the whole table."""
    from sqlalchemy import union

    return Customer.id.in_(union(*(select(Customer.id).where(condition) for condition in conditions)))


# A filter matching at most this many customers is read as a list of ids once, and
# the count, the page and the tag counts are taken from those ids (one pass over
# the table instead of three; a narrow filter's page then never walks the sort
# index through customers that do not match).
SMALL_SET = 1000
# A filter matching more than this share of all customers (by the largest id) has
# its tag counts taken as every customer's less those of the customers it leaves out.
LARGE_SHARE = 0.5
# On SQLite, a page of a filter matching more than SMALL_SET customers walks the
# sort's index when the rows it would meet (page end × all / matches) are at most
# this many times the matches (what sorting them reads): see _walks_the_order.
SORT_WALK = 1.0


def page_of(query, order: list, page: int, per_page: int, *, with_tag_counts: bool,
            outside=None) -> CustomerPage:
    """One page of ``query`` (a ``select(Customer)`` with its filters, unordered) in
    ``order``, the total, and the tag counts (when ``with_tag_counts``): the customer
    list and the pool page. ``outside``, when given, holds exactly for the customers
    ``query`` leaves out (see :func:`tag_counts`): the total of a filter matching many
    is then every customer less those."""
    query = query.order_by(None)
    # The first ids, with their tags when they are counted (a small set's counts).
    read = (Customer.id, Customer.tag_key) if with_tag_counts else (Customer.id,)
    first = db.session.execute(query.with_only_columns(*read).limit(SMALL_SET + 1)).all()
    ids = [row[0] for row in first]
    small = len(ids) <= SMALL_SET
    grouped = None  # the matches grouped by their set of tags, when read for the total
    if small:
        total = len(ids)
    elif outside is not None:
        total = _count_less_outside(outside)
    elif with_tag_counts:
        # The tag counts group the matches by their set of tags: the groups' sizes add
        # up to the total, so the matches are read once, not counted first.
        grouped = _tag_key_groups(query)
        total = sum(n for _key, n in grouped)
    else:
        total = db.session.scalar(
            select(func.count()).select_from(query.with_only_columns(Customer.id).subquery())) or 0
    # How many customers there are, about (for the page's and the tag counts' ways).
    largest_id = (db.session.scalar(select(func.max(Customer.id))) or 0) if total and not small else None
    pages = max(1, -(-total // per_page))
    page = min(max(1, page), pages)
    items: list[Customer] = []
    keys: dict[int, str] = {}  # each item's tag_key
    if total:
        rows = query
        if small:
            # SQLite reads a whole request at one snapshot (one read transaction), so
            # the ids are still exactly the matches and the filter (a text filter scans
            # the table) need not run again. PostgreSQL reads each statement at its own
            # snapshot: there the filter stays on.
            rows = select(Customer) if _one_snapshot() else query
            rows = rows.where(Customer.id.in_(ids))
        entity = Customer
        if not small and _walks_the_order(total, page * per_page, largest_id):
            (rows, order), entity = _walking_the_order(query, order), _WALKED
        # The rows show their tags from tag_key (read as a column: the database's,
        # even for a customer this session holds) and the process's tag snapshot, not
        # from Tag objects loaded for them (customer.tags stays loadable on demand).
        rows = rows.add_columns(entity.tag_key).options(lazyload(entity.tags))
        for customer, tag_key in db.session.execute(
                rows.order_by(*order).offset((page - 1) * per_page).limit(per_page)):
            items.append(customer)
            keys[customer.id] = tag_key
    counts = {}
    if grouped is not None:
        counts = _per_tag(grouped)
    elif with_tag_counts and total:
        counts = (_per_tag(Counter(row[1] for row in first).items()) if small
                  else tag_counts(query, total=total, outside=outside, largest_id=largest_id))
    shown = tags.shown_tags_by_key(keys.values())
    return CustomerPage(items=items, total=total, page=page, pages=pages, tag_counts=counts,
                        row_tags={customer_id: shown[key] for customer_id, key in keys.items()})


def _count_less_outside(outside) -> int:
    """How many customers ``outside`` does not hold (every customer less those it
    holds, one statement): for a filter that leaves out only a few customers, whose
    own count would step through nearly every customer."""
    every = select(func.count()).select_from(Customer).scalar_subquery()
    left_out = select(func.count()).select_from(Customer).where(outside).scalar_subquery()
    return db.session.scalar(select(every - left_out)) or 0


def _one_snapshot() -> bool:
    """Whether the statements of one transaction all read the same snapshot (SQLite;
    PostgreSQL's READ COMMITTED takes one per statement)."""
    return db.session.get_bind().dialect.name == "sqlite"


def _walks_the_order(total: int, rows_up_to: int, largest_id: int | None) -> bool:
    """On SQLite, whether the page of a filter matching ``total`` customers is cheaper
    read by walking the order's index and testing the filter on each customer met
    (about ``rows_up_to`` × all / total of them) than by sorting every match: SQLite's
    planner picks the filter's index (then sorts) even for a filter matching a fifth
    of the customers. PostgreSQL weighs the LIMIT itself."""
    if db.session.get_bind().dialect.name != "sqlite":
        return False
    return rows_up_to * (largest_id or 0) <= SORT_WALK * total * total


def _walking_the_order(query, order: list):
    """``query``'s customers as a walk of another alias of the table in ``order``,
    each kept when ``query``'s filter holds for it (the same rows, the same order)."""
    from sqlalchemy import exists

    matches = exists(query.with_only_columns(Customer.id).where(Customer.id == _WALKED.id))
    return select(_WALKED).where(matches), [_walked_order(o) for o in order]


def _walked_order(expression):
    """An order expression of ``Customer`` as the same order of ``_WALKED`` (adapted
    once per expression: adapting costs more than the rest of the statement)."""
    from sqlalchemy import inspect
    from sqlalchemy.sql.util import ClauseAdapter

    # Keyed by identity (an expression's == builds SQL), the expression kept with its
    # adaptation so that its id is not reused: the orders are the module's constants.
    cached = _WALKED_ORDERS.get(id(expression))
    if cached is None or cached[0] is not expression:
        if len(_WALKED_ORDERS) > 64:
            _WALKED_ORDERS.clear()
        clause = expression.__clause_element__() if hasattr(expression, "__clause_element__") else expression
        adapted = ClauseAdapter(inspect(_WALKED).selectable).traverse(clause)
        cached = _WALKED_ORDERS[id(expression)] = (expression, adapted)
    return cached[1]


def _per_tag(keys) -> dict[int, int]:
    """Per tag id, how many customers carry it, from (tag_key, customers) pairs:
    how many customers have each set of tags (Customer.tag_key)."""
    counts: Counter = Counter()
    for key, n in keys:
        for tag_id in tags.ids_in_key(key):
            counts[tag_id] += n
    return dict(counts)


def _tag_key_groups(customer_query) -> Sequence:
    """(tag_key, customers) for each set of tags among the customers of
    ``customer_query``: one pass over the matches (the list's stage and importance
    filters read them from their covering index, in tag_key order)."""
    return db.session.execute(tag_key_groups_query(customer_query)).all()


def tag_key_groups_query(customer_query):
    """The statement of :func:`_tag_key_groups`."""
    keys = customer_query.with_only_columns(Customer.tag_key, func.count()).order_by(None)
    return keys.group_by(Customer.tag_key)


def tag_counts(customer_query, *, total: int | None = None, outside=None,
               largest_id: int | None = None) -> dict[int, int]:
    """Per tag, how many customers of ``customer_query`` (a ``select(Customer)``
    with its filters) carry it: the matching customers grouped by their set of tags
    (Customer.tag_key; the list's stage and importance filters read it from their
    covering index). Given ``total`` (how many customers the query matches) and when
    that is more than LARGE_SHARE of all customers, the counts are taken as every
    customer's tag counts less those of the customers the query does not match (a
    group-by over the covering index of customer_tags and a few lookups, instead
    of a pass over nearly every customer: the pool page). Those are the customers
    for which the query's condition is not true, or ``outside`` when the caller
    knows an equivalent condition that an index can answer (exactly the customers
    the query leaves out). One statement either way, so both halves read the same
    snapshot."""
    from sqlalchemy import true

    condition = customer_query.whereclause
    if largest_id is None and total is not None:  # the caller may know it (page_of)
        largest_id = db.session.scalar(select(func.max(Customer.id)))
    if condition is not None and (total is None or not largest_id or total <= largest_id * LARGE_SHARE):
        return _per_tag(_tag_key_groups(customer_query))
    every = (select(customer_tags.c.tag_id, func.count().label("n"))
             .group_by(customer_tags.c.tag_id).subquery())
    if condition is None:  # every customer
        return {tag_id: n for tag_id, n in db.session.execute(select(every.c.tag_id, every.c.n))}
    # IS NOT TRUE: a condition that is NULL for a customer (no match) puts it outside.
    outside_ids = select(Customer.id).where(condition.is_not(true()) if outside is None else outside)
    outside = (select(customer_tags.c.tag_id, func.count().label("n"))
               .where(customer_tags.c.customer_id.in_(outside_ids))
               .group_by(customer_tags.c.tag_id).subquery())
    rows = db.session.execute(
        select(every.c.tag_id, every.c.n - func.coalesce(outside.c.n, 0))
        .outerjoin(outside, outside.c.tag_id == every.c.tag_id)
    )
    return {tag_id: n for tag_id, n in rows if n > 0}


def owner_choices() -> list[User]:
    """Colleagues who may own customers."""
    return list(db.session.scalars(
        select(User).where(User.active.is_(True), User.role.in_(policy.OWNER_ROLES))
        .order_by(User.display_name)
    ))
