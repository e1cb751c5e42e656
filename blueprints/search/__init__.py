"""Search (S1–S3): the dropdown under the header's search box while typing, and the
full results page with tabs, tag filters, archived records and paging.

Views only read the URL and call :mod:`services.search`, which finds nothing the
user may not see (not in the lists, not in the totals). Any typed text is fine:
it is never parsed as query syntax, and bad page or tag values are ignored.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from flask import Blueprint, request, url_for

from blueprints import htmx
from blueprints.access import actor, permission_required
from blueprints.search.highlight import mark, snippet
from blueprints.tags.filter import toggle_tag_url
from services import phones, policy, search, tags
from services.ids import parse_ids, parse_page

bp = Blueprint("search", __name__, url_prefix="/search")

SUGGEST_CUSTOMERS = 6
SUGGEST_NOTES = 4
PER_PAGE = 20
TABS = ("customers", "notes")
MAX_TAGS = 10
# Longer text is cut: the service reads only the first part of a query anyway, and
# the text is echoed back into the page.
MAX_QUERY = 200
# The search boxes (templates/search/_box.html) and the prefix of their options' ids.
BOXES = {"global": "", "lookup": "lookup-"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass
class SearchArgs:
    """What the URL asks for, cleaned: unknown or malformed values fall back."""

    q: str = ""
    tab: str = "customers"
    tag_ids: list[int] = field(default_factory=list)
    archived: bool = False
    page: int = 1

    def as_args(self, **changes) -> dict:
        """URL arguments for this search (defaults left out), with ``changes``."""
        args = {"q": self.q, "tab": self.tab, "tag": self.tag_ids,
                "archived": "1" if self.archived else None, "page": self.page}
        args.update(changes)
        if args["tab"] == "customers":
            args["tab"] = None
        if args["page"] == 1:
            args["page"] = None
        return {key: value for key, value in args.items() if value not in (None, "", [])}


def query_text(args) -> str:
    """The typed text: control characters become spaces, length is capped."""
    return _CONTROL.sub(" ", args.get("q", "", type=str)[:MAX_QUERY]).strip()


def parse_args(args) -> SearchArgs:
    """The search from URL arguments; archived only for those who may see it."""
    tag_ids = sorted(parse_ids(args.getlist("tag")))
    return SearchArgs(
        q=query_text(args),
        tab=args.get("tab") if args.get("tab") in TABS else "customers",
        tag_ids=tag_ids[:MAX_TAGS],
        archived=args.get("archived") == "1" and policy.may_search_archived(actor()),
        page=parse_page(args.get("page"), search.MAX_PAGE),
    )


@dataclass
class Pages:
    """What the ``pager`` macro needs."""

    page: int
    pages: int


def pages_of(found: search.Found) -> Pages:
    pages = min(math.ceil(found.total / found.per_page), search.MAX_PAGE) if found.per_page else 1
    return Pages(page=found.page, pages=pages)


def new_customer_url(q: str, words) -> str:
    """customers.new prefilled with what was typed: the phone number, else the name."""
    if words and words.phone:
        return url_for("customers.new", phone=words.phone)
    return url_for("customers.new", name=q[:100]) if q else url_for("customers.new")


def note_text(note) -> str:
    """A note's text as the index sees it: the body and its sections."""
    sections = [str(value) for value in (note.sections or {}).values() if value]
    return " ".join([note.body or "", *sections]).strip()


def shown_phone(customer, words) -> str:
    """The digits of the customer's number to show: the one the search matched,
    else the first; '' without a number."""
    numbers = [phone.digits for phone in customer.phones]
    if words and words.phone:
        numbers.sort(key=lambda digits: words.phone not in digits)
    return numbers[0] if numbers else ""


def customer_url(customer) -> str:
    """A customer found by a lookup opens with the cursor in the note box."""
    return url_for("customers.detail", customer_id=customer.id, focus="note")


def _shown(words) -> dict:
    """Template helpers that mark this search's words in shown text, and the link of
    a customer found."""
    needles = words.highlights() if words else []
    return {
        "customer_url": customer_url,
        "marked": lambda text: mark(text, needles),
        "marked_phone": lambda customer: mark(phones.display(shown_phone(customer, words)), needles),
        "note_snippet": lambda note: snippet(note_text(note), needles),
    }


@bp.get("/suggest")
@permission_required("search.use")
def suggest():
    """The dropdown under a search box (the header's, or the front desk's lookup:
    ``box`` names which, for the options' ids): a few customers and notes, with
    "see all" and, when no customer matches, "new customer". Empty for an empty or
    unsearchable query. A full-page request goes to the results page."""
    q = query_text(request.args)
    if not htmx.wants_fragment():
        return htmx.redirect(url_for("search.index", q=q or None))
    words = search.QueryWords(q)
    id_prefix = BOXES.get(request.args.get("box", ""), "")
    if not words:
        return htmx.fragment("search/_suggest.html", q=q, words=None, id_prefix=id_prefix)
    user = actor()
    customers_found = search.search_customers(user, q, per_page=SUGGEST_CUSTOMERS)
    notes_found = search.search_notes(user, q, per_page=SUGGEST_NOTES)
    return htmx.fragment(
        "search/_suggest.html", q=q, words=words, id_prefix=id_prefix,
        customers=customers_found, notes=notes_found, new_customer_url=new_customer_url(q, words),
        **_shown(words),
    )


def _search_both(wanted: SearchArgs, tag_ids) -> tuple[search.Found, search.Found]:
    """A page of the open tab with its count per tag, and (for its total only) the
    other one."""
    user, options = actor(), {"archived": wanted.archived, "tag_ids": wanted.tag_ids}
    paging = {"page": wanted.page, "per_page": PER_PAGE, "count_tags": tag_ids}
    count_only = {"page": 1, "per_page": 1}
    customers_found = search.search_customers(
        user, wanted.q, **options, **(dict(paging, with_tags=True) if wanted.tab == "customers" else count_only))
    notes_found = search.search_notes(
        user, wanted.q, **options, **(paging if wanted.tab == "notes" else count_only))
    return customers_found, notes_found


@bp.get("")
@permission_required("search.use")
def index():
    """The full results page: customers or notes (tabs, each with its total), tag
    filters, archived records for those who may, paging. htmx swaps the results."""
    wanted = parse_args(request.args)
    words = search.QueryWords(wanted.q)
    groups = tags.shown_groups()
    context = {"wanted": wanted, "words": words, "groups": groups,
               "may_archived": policy.may_search_archived(actor()),
               "toggle_tag_url": toggle_tag_url("search.index", wanted.as_args(), wanted.tag_ids), **_shown(words)}
    if words:
        customers_found, notes_found = _search_both(wanted, [tag.id for group in groups for tag in group.tags])
        shown = customers_found if wanted.tab == "customers" else notes_found
        context.update(customers=customers_found, notes=notes_found, shown=shown, pages=pages_of(shown),
                       new_customer_url=new_customer_url(wanted.q, words))
    return htmx.render("search/index.html", "search/_results.html", **context)
