"""The customer-list filter read from URL arguments: the customer list and the
pool (which filters its customers the same way) both parse it here."""

from __future__ import annotations

from services import customers
from services.customers import CustomerFilter
from services.ids import parse_ids, parse_page

FILTER_FIELDS = ("stage", "type", "importance", "region", "source", "owner", "q", "sort")


def parse_customer_filter(args) -> CustomerFilter:
    """The list filter from URL arguments; unknown values are ignored, not errors."""
    flt = CustomerFilter(**{name: args.get(name, "", type=str)[:100].strip() for name in FILTER_FIELDS})
    flt.sort = flt.sort if flt.sort in customers.SORTS else "updated"
    flt.archived = args.get("archived") == "1"
    flt.tag_ids = sorted(parse_ids(args.getlist("tag"), limit=10))
    flt.page = parse_page(args.get("page"))
    return flt
