"""The pool page's list (P1, P6): customers with no owner, with pool-specific filters
on top of the customer list's."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import or_

from models import Customer, User, utcnow
from services import customers, policy
from services.customers import CustomerFilter, CustomerPage

POOL_SORTS = {  # never contacted: the stalest (as customers.SORTS)
    "stale": Customer.last_contact_at.asc().nulls_first(),
    "recent": Customer.last_contact_at.desc().nulls_last(),
    "recycled": Customer.times_recycled.desc(),
    "created": Customer.created_at.desc(),
    "name": Customer.name.asc(),
}


@dataclass
class PoolFilter:
    base: CustomerFilter = field(default_factory=CustomerFilter)
    reason: str = ""  # new, released, recycled
    min_recycled: int = 0
    no_contact_days: int = 0  # no contact for at least this many days (or never)
    sort: str = "stale"


def pool_query(user: User, flt: PoolFilter):
    base = CustomerFilter(**{**flt.base.__dict__, "owner": "pool", "archived": False})
    query = customers.filtered_query(user, base)
    if flt.reason:
        query = query.where(Customer.pool_reason == flt.reason)
    if flt.min_recycled:
        query = query.where(Customer.times_recycled >= flt.min_recycled)
    if flt.no_contact_days:
        cutoff = utcnow() - timedelta(days=flt.no_contact_days)
        query = query.where(or_(Customer.last_contact_at.is_(None), Customer.last_contact_at <= cutoff))
    return query


def list_pool(user: User, flt: PoolFilter) -> CustomerPage:
    order = POOL_SORTS.get(flt.sort, POOL_SORTS["stale"])
    unfiltered = (customers.allowed_filter(user, flt.base) == CustomerFilter(
        sort=flt.base.sort, page=flt.base.page, per_page=flt.base.per_page)
        and not (flt.reason or flt.min_recycled or flt.no_contact_days))
    scope = policy.customer_scope(user)
    # The whole pool, for someone who sees all of it: what it leaves out, by index
    # (customers.any_of: a UNION of two index ranges).
    outside = (customers.any_of(Customer.owner_id.is_not(None), Customer.archived_at.is_not(None))
               if unfiltered and (scope.everything or None in scope.owners) else None)
    return customers.page_of(
        pool_query(user, flt), [order, Customer.id],
        flt.base.page, flt.base.per_page, with_tag_counts=True, outside=outside)
