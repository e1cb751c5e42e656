"""The public pool (公海): the pool page, and claim / release / lock / assign on a
customer, each answering with the piece of page it changed."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, request, url_for
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext

from blueprints import htmx
from blueprints.access import actor, customer_or_404, permission_required
from blueprints.customer_filter import parse_customer_filter
from blueprints.tags.filter import toggle_tag_url
from extensions import db, reads_first, write_transaction
from services import customers, pool, policy, tags
from services.errors import DomainError
from services.ids import parse_bounded, parse_id, parse_ids
from services.pool import RELEASE_REASONS, PoolRefusal
from services.pool_list import POOL_SORTS, PoolFilter, list_pool

bp = Blueprint("pool", __name__)

REASON_LABELS = {"new": _l("New"), "released": _l("Released"), "recycled": _l("Recycled")}


def parse_pool_filter(args) -> PoolFilter:
    base = parse_customer_filter(args)
    reason = args.get("reason", "")
    return PoolFilter(
        base=base, reason=reason if reason in REASON_LABELS else "",
        min_recycled=parse_bounded(args.get("min_recycled"), 0, 0, 1000),
        no_contact_days=parse_bounded(args.get("no_contact_days"), 0, 0, 3650),
        sort=args.get("sort") if args.get("sort") in POOL_SORTS else "stale",
    )


def _pool_args(flt: PoolFilter) -> dict:
    args = {k: v for k, v in flt.base.as_args().items() if k not in ("sort",)}
    args.update({k: v for k, v in (("reason", flt.reason), ("min_recycled", flt.min_recycled),
                                   ("no_contact_days", flt.no_contact_days)) if v})
    if flt.sort != "stale":
        args["sort"] = flt.sort
    return args


@bp.get("/pool")
@permission_required("pool.view")
def index():
    """Every customer with no owner, filtered; htmx swaps only the results."""
    flt = parse_pool_filter(request.args)
    page = list_pool(actor(), flt)

    assignees = customers.owner_choices() if policy.may(actor(), "pool.assign") else []
    standing = pool.claim_standing(actor()) if policy.may(actor(), "pool.claim") else None
    return htmx.render("pool/index.html", "pool/_results.html", page=page, flt=flt,
                       args=_pool_args(flt), groups=tags.shown_groups(),
                       toggle_tag_url=toggle_tag_url("pool.index", _pool_args(flt), flt.base.tag_ids),
                       assignees=assignees, standing=standing)


def _panel(customer, *, toast=None, status=200, undo_url=None, release_typed=None, release_errors=None):
    """The pool panel of the customer page, re-rendered after an action; a refused
    release keeps its form open with what was typed and the error by its field."""
    return htmx.render("pool/customer_pool.html", "pool/_panel.html", customer=customer,
                       status=status, toast=toast, undo_url=undo_url, release_typed=release_typed or {},
                       release_errors=release_errors or {}, **panel_context(customer))


def panel_context(customer) -> dict:
    """What templates/pool/_panel.html needs; the customer page calls this too."""
    user = actor()
    context: dict[str, Any] = {"release_reasons": RELEASE_REASONS, "recycle": None, "pool_events": [],
               "assignees": []}
    if customer.owner_id is not None and policy.may(user, "customer.view_details", customer):
        context["recycle"] = pool.recycle_clock(customer)
    if policy.may(user, "customer.view_details", customer):
        context["pool_events"] = pool.events_for(customer, limit=20)
    if policy.may(user, "pool.assign"):
        context["assignees"] = customers.owner_choices()
    return context


@bp.post("/pool/<id:customer_id>/claim")
@reads_first
@permission_required("pool.claim")
def claim(customer_id: int):
    """领取: exactly one of several simultaneous claimers wins; the others are told
    who won (as the duplicate check would tell them) and see nothing more of it.
    404 for a customer that is neither in the pool nor claimed seconds ago: owners
    are not to be learnt by claiming ids. From the pool list, the row stays in place
    (with its Claim button and the refusal beside it when refused) and the claimer's
    counts above the list follow (an out-of-band swap).

    The request reads first: a claimer who finds the customer taken already (most
    of a race's losers) is answered without waiting for SQLite's write lock, and the
    claim itself holds it only for its checks and its conditional UPDATE."""
    customer = customers.get(customer_id, brief=True)
    if customer is None:
        abort(404)
    from_list = request.form.get("from") == "list"
    try:
        if not policy.may(actor(), "pool.claim", customer):
            raise pool.not_claimable(customer_id)
        with write_transaction():
            customer = pool.claim_customer(actor(), customer_id)
            db.session.commit()
    except PoolRefusal as refused:
        if refused.code == "not_in_pool":
            abort(404)
        if from_list:
            # A lost race shows who won and nothing more of the customer, and changed
            # none of the claimer's counts: those above the list stay as they are.
            lost = refused.code == "already_claimed"
            return _claim_cell(customer_id, None if lost else customer, refusal=refused.message, status=422,
                               toast=(refused.message, "error"), standing=not lost)
        return htmx.no_swap((refused.message, "error"))
    message = _l("%(name)s is now yours.", name=customer.name)
    if from_list:
        return _claim_cell(customer_id, customer, toast=message)
    return _panel(customer, toast=message)


def _claim_cell(customer_id, customer, *, refusal=None, status=200, toast=None, standing=True):
    """The pool row's action cell after a claim, with the claimer's counts out of
    band (unless ``standing`` is false)."""
    return htmx.fragment("pool/_claim_cell.html", customer_id=customer_id, customer=customer, refusal=refusal,
                         status=status, toast=toast, oob_standing=True,
                         standing=pool.claim_standing(actor()) if standing else None)


@bp.post("/customers/<id:customer_id>/release")
@permission_required("pool.release")
def release(customer_id: int):
    """退回公海, with a reason. A missing reason keeps the form open with what was
    chosen and typed, the message next to the field; done, the toast offers Undo."""
    customer = customer_or_404(customer_id, "pool.release")
    code, text = request.form.get("reason", ""), request.form.get("reason_text", "")[:250]
    try:
        pool.release_to_pool(actor(), customer, code, text)
    except PoolRefusal as refused:
        return _panel(customer, toast=(refused.message, "error"), status=422)
    except DomainError as refused:
        return _panel(customer, status=422, release_typed={"reason": code, "reason_text": text},
                      release_errors={refused.field or "reason": refused.message})
    db.session.commit()
    return _panel(customer, toast=_l("%(name)s is back in the public pool.", name=customer.name),
                  undo_url=url_for("pool.undo_release", customer_id=customer.id))


@bp.post("/customers/<id:customer_id>/release/undo")
@permission_required("pool.release")
def undo_release(customer_id: int):
    """The Undo of a release: only the releaser, within a minute, while the customer
    is still in the pool (services.pool.undo_release says why not)."""
    customer = customer_or_404(customer_id)
    try:
        pool.undo_release(actor(), customer)
    except PoolRefusal as refused:
        return htmx.no_swap((refused.message, "error"))
    db.session.commit()
    htmx.notify(_l("Release undone: %(name)s is yours again.", name=customer.name)
                if customer.owner_id == actor().id else
                _l("Release undone: %(customer)s is back with %(owner)s.", customer=customer.name,
                   owner=customer.owner.display_name))
    if htmx.is_htmx():
        return htmx.refresh()
    return htmx.redirect(url_for("customers.detail", customer_id=customer.id))


@bp.post("/customers/<id:customer_id>/lock")
@permission_required("pool.lock")
def lock(customer_id: int):
    """锁定 / unlock against recycling."""
    customer = customer_or_404(customer_id, "pool.lock")
    locked = request.form.get("locked") == "1"
    try:
        pool.set_recycle_lock(actor(), customer, locked)
    except PoolRefusal as refused:
        return _panel(customer, toast=(refused.message, "error"), status=422)
    db.session.commit()
    return _panel(customer, toast=_l("Locked against recycling.") if locked else _l("Unlocked."))


@bp.post("/customers/<id:customer_id>/assign")
@permission_required("pool.assign")
def assign(customer_id: int):
    """分配 one customer; the limit holds unless the manager overrides it."""
    customer = customer_or_404(customer_id, "pool.assign")
    try:
        pool.assign_customers(actor(), [customer.id], parse_id(request.form.get("to_user_id")) or 0,
                              override_limit=request.form.get("override") == "1")
    except DomainError as refused:
        return _panel(customer, toast=(refused.message, "error"), status=422)
    db.session.commit()
    return _panel(customer, toast=_l("Assigned to %(name)s.", name=customer.owner.display_name))


@bp.post("/pool/assign")
@permission_required("pool.assign")
def bulk_assign():
    """Assign the selected pool customers at once (one transaction)."""
    ids = parse_ids(request.form.getlist("customer_id"), limit=500)
    visible = [customer_or_404(i, "pool.assign").id for i in ids]
    try:
        done = pool.assign_customers(actor(), visible, parse_id(request.form.get("to_user_id")) or 0,
                                     override_limit=request.form.get("override") == "1")
    except DomainError as refused:
        return htmx.no_swap((refused.message, "error"))
    db.session.commit()
    htmx.notify(ngettext("%(num)d customer assigned.", "%(num)d customers assigned.", len(done)))
    return htmx.redirect(url_for("pool.index"))


EVENT_LABELS = {
    "create_in_pool": _l("Entered into the pool"), "claim": _l("Claimed"),
    "release": _l("Released to the pool"), "assign": _l("Assigned"),
    "recycle": _l("Recycled automatically"), "handover": _l("Handed over"),
    "release_undone": _l("Release undone"),
}


@bp.record_once
def pool_labels(state) -> None:
    """The labels as Jinja globals (the same for every render: lazy translations)."""
    state.app.jinja_env.globals.update(
        pool_reason_labels=REASON_LABELS, pool_event_reason=pool.event_reason, pool_event_labels=EVENT_LABELS)
