"""Customers: the list with its filters, the card, entry and edit forms, duplicate
check, archive / restore / purge, and the field history."""

from __future__ import annotations

from flask import Blueprint, request, url_for
from flask_babel import lazy_gettext as _l

from blueprints import htmx
from blueprints.access import actor, customer_or_404, permission_required
from blueprints.customer_filter import parse_customer_filter
from blueprints.customers.forms import (
    IMPORTANCE_LABELS,
    SOURCE_LABELS,
    STAGE_LABELS,
    TYPE_LABELS,
    CustomerForm,
    PurgeForm,
)
from blueprints.notes import customer_notes_context
from blueprints.pool import panel_context
from blueprints.security import client_ip
from blueprints.tags.filter import toggle_tag_url
from blueprints.tasks import customer_tasks_context
from extensions import db
from services import audit, customers, phones, policy, pool, tags
from services import merge as merging
from services.customers import CustomerData, CustomerFilter, DuplicateCustomer
from services.errors import DomainError
from services.ids import parse_id
from services.office_time import office_today

bp = Blueprint("customers", __name__, url_prefix="/customers")


@bp.get("")
@permission_required("customer.view")
def index():
    """The customer list: filters in the URL, htmx swaps only the results."""
    flt = customers.allowed_filter(actor(), parse_customer_filter(request.args))
    page = customers.list_customers(actor(), flt)
    owner_options = [("mine", _l("Mine")), ("pool", _l("Public pool"))]
    # The filter form is on the full page only; a results swap needs no colleague list.
    if not htmx.wants_fragment() and policy.may(actor(), "customer.choose_owner"):
        owner_options += [(str(u.id), u.display_name) for u in customers.owner_choices()]
    return htmx.render(
        "customers/index.html", "customers/_results.html",
        page=page, flt=flt, groups=tags.shown_groups(), owner_options=owner_options,
        toggle_tag_url=toggle_tag_url("customers.index", flt.as_args(), flt.tag_ids),
        fields=policy.visible_fields(actor()),
        clocks=pool.recycle_clocks(page.items) if "recycling" in policy.visible_fields(actor()) else {},
    )


def _prepare_form(form: CustomerForm, *, editing: bool = False) -> CustomerForm:
    """Fill the choices; drop the owner field for users who may not set it (on
    entry: choose_owner; on edit: pool.assign), so it can neither be submitted nor
    fail unseen."""
    if not policy.may(actor(), "pool.assign" if editing else "customer.choose_owner"):
        del form.owner_id
    else:
        form.owner_id.choices = [("", _l("Public pool"))] + [
            (str(user.id), user.display_name) for user in customers.owner_choices()
        ]
    form.tag_ids.choices = [(tag.id, tag.name) for group in tags.shown_groups() for tag in group.tags]
    return form


def form_data(form: CustomerForm) -> CustomerData:
    return CustomerData(
        name=form.name.data.strip(), company=(form.company.data or "").strip(),
        phones=form.phone_list(), email=(form.email.data or "").strip(),
        address=form.address.data or "", region=form.region.data or "",
        type=form.type.data, stage=form.stage.data, importance=form.importance.data,
        source=form.source.data, birthday=form.birthday.data,
        owner_id=parse_id(form.owner_id.data) if "owner_id" in form else None,
    )


def _render_form(form, customer=None, duplicates=None, status=200):
    return htmx.render(
        "customers/form_page.html", "customers/_form.html", form=form, customer=customer,
        duplicates=duplicates, groups=tags.shown_groups(), status=status,
    )


@bp.route("/new", methods=["GET", "POST"])
@permission_required("customer.create")
def new():
    """Enter a customer. A likely duplicate needs an explicit "save anyway"."""
    form = _prepare_form(CustomerForm(request.form if request.method == "POST" else None))
    if request.method == "GET":
        form.name.data = request.args.get("name", "")[:100]
        form.mobile.data = request.args.get("phone", "")[:40]
        if "owner_id" in form and policy.owns_new_customers(actor()):
            form.owner_id.data = str(actor().id)
    if form.validate_on_submit():
        data = form_data(form)
        try:
            customer = customers.create_customer(
                actor(), data, acknowledge_duplicates=form.acknowledge_duplicates.data, ip=client_ip()
            )
        except DuplicateCustomer as duplicate:
            return _render_form(form, duplicates=_describe(duplicate.duplicates, data), status=422)
        except DomainError as refused:
            form.refuse(refused)
        else:
            if form.tag_ids.data:
                customers.set_tags(actor(), customer, form.tag_ids.data)
            db.session.commit()
            htmx.notify(_l("Customer %(name)s saved.", name=customer.name), "success")
            return htmx.redirect(url_for("customers.detail", customer_id=customer.id))
    return _render_form(form, status=422 if form.errors else 200)


def _describe(duplicates, data: CustomerData) -> list[dict]:
    """What the warning says about each duplicate: as much as the policy lets the
    user see (policy.duplicate_view), and why it matched."""
    return [
        {"view": policy.duplicate_view(actor(), dup), "reasons": customers.match_reasons(dup, data)}
        for dup in duplicates
    ]


@bp.get("/duplicates")
@permission_required("customer.create")
def duplicates():
    """The duplicate warning while typing (C3): fed by the form's name, company,
    phone and email fields."""
    form = CustomerForm(request.args, meta={"csrf": False})
    try:
        found_phones = form.phone_list()
    except ValueError:
        found_phones = []
    data = CustomerData(
        name=(form.name.data or "").strip()[:100], company=(form.company.data or "").strip()[:200],
        phones=found_phones, email=(form.email.data or "").strip()[:254],
    )
    exclude = parse_id(request.args.get("exclude"))
    found = customers.find_duplicates(data, exclude_id=exclude)
    return htmx.fragment("customers/_duplicates.html", duplicates=_describe(found, data))


@bp.get("/<id:customer_id>")
@permission_required("customer.view")
def detail(customer_id: int):
    """The customer page: card, quick note, notes, follow-ups, history. Opened from
    a lookup (``?focus=note``), the cursor starts in the note box."""
    customer = customer_or_404(customer_id)
    if audit.record_customer_view(actor(), customer, day=office_today(), ip=client_ip()):
        db.session.commit()
    context = {"customer": customer, "purge_form": PurgeForm(), "note_autofocus": request.args.get("focus") == "note"}
    context.update(customer_notes_context(actor(), customer))
    context.update(panel_context(customer))
    if policy.may(actor(), "customer.view_details", customer):
        context.update(customer_tasks_context(actor(), customer))
    return htmx.render("customers/detail.html", **context)


@bp.route("/<id:customer_id>/edit", methods=["GET", "POST"])
@permission_required("customer.edit")
def edit(customer_id: int):
    """Edit the card; every changed field goes into the history."""
    customer = customer_or_404(customer_id, "customer.edit")
    form = _prepare_form(CustomerForm(request.form if request.method == "POST" else None), editing=True)
    if request.method == "GET":
        _fill_form(form, customer)
    if form.validate_on_submit():
        data = form_data(form)
        if not policy.may(actor(), "pool.assign"):
            data.owner_id = customer.owner_id
        try:
            customers.update_customer(actor(), customer, data,
                                      acknowledge_duplicates=form.acknowledge_duplicates.data,
                                      ip=client_ip())
        except DuplicateCustomer as duplicate:
            return _render_form(form, customer, _describe(duplicate.duplicates, data), status=422)
        except DomainError as refused:
            form.refuse(refused)
        else:
            customers.set_tags(actor(), customer, form.tag_ids.data or [])
            db.session.commit()
            htmx.notify(_l("Customer %(name)s saved.", name=customer.name), "success")
            return htmx.redirect(url_for("customers.detail", customer_id=customer.id))
    return _render_form(form, customer, status=422 if form.errors else 200)


def _fill_form(form: CustomerForm, customer) -> None:
    for name in ("name", "company", "email", "address", "region", "type", "stage",
                 "importance", "source", "birthday"):
        getattr(form, name).data = getattr(customer, name)
    numbers: dict[str, list[str]] = {"mobile": [], "landline": []}
    for phone in customer.phones:
        numbers.setdefault(phone.kind, []).append(phone.digits)
    mobiles = numbers["mobile"] + [""] * 2
    form.mobile.data, form.mobile_2.data = mobiles[0], mobiles[1]
    form.landline.data = (numbers["landline"] + [""])[0]
    if "owner_id" in form:
        form.owner_id.data = str(customer.owner_id) if customer.owner_id else ""
    form.tag_ids.data = [tag.id for tag in customer.tags]


@bp.post("/<id:customer_id>/archive")
@permission_required("customer.archive")
def archive(customer_id: int):
    """Archive; htmx swaps the card and its toast offers Undo, a plain form post is
    redirected to the customer page (which shows Restore)."""
    customer = customer_or_404(customer_id, "customer.archive")
    customers.archive(actor(), customer, ip=client_ip())
    db.session.commit()
    message = _l("%(name)s archived.", name=customer.name)
    if not htmx.wants_fragment():
        htmx.notify(message, "success")
        return htmx.redirect(url_for("customers.detail", customer_id=customer.id))
    return htmx.fragment(
        "customers/_card.html", customer=customer, purge_form=PurgeForm(), toast=message,
        undo_url=url_for("customers.restore", customer_id=customer.id),
    )


@bp.post("/<id:customer_id>/restore")
@permission_required("customer.archive")
def restore(customer_id: int):
    """Restore from the archive (also the Undo of an archive)."""
    customer = customer_or_404(customer_id, "customer.archive")
    try:
        customers.restore(actor(), customer, ip=client_ip())
    except DomainError as refused:
        return htmx.no_swap((refused.message, "error"))
    db.session.commit()
    htmx.notify(_l("%(name)s restored.", name=customer.name), "success")
    if htmx.is_htmx():
        return htmx.refresh()
    return htmx.redirect(url_for("customers.detail", customer_id=customer.id))


@bp.post("/<id:customer_id>/purge")
@permission_required("customer.purge")
def purge(customer_id: int):
    """Delete an archived customer for good, after typing its name."""
    customer = customer_or_404(customer_id, "customer.purge")
    form = PurgeForm()
    if form.validate_on_submit():
        try:
            customers.purge(actor(), customer, form.confirm_name.data, ip=client_ip())
        except DomainError as refused:
            form.refuse(refused, "confirm_name")
        else:
            db.session.commit()
            htmx.notify(_l("The customer was deleted for good."), "success")
            return htmx.redirect(url_for("customers.index", archived=1))
    if not htmx.wants_fragment():  # a plain form post: the refusal is shown on the customer page
        htmx.notify(" ".join(str(error) for errors in form.errors.values() for error in errors), "error")
        return htmx.redirect(url_for("customers.detail", customer_id=customer.id))
    return htmx.fragment("customers/_purge.html", customer=customer, purge_form=form, status=422)


@bp.get("/<id:customer_id>/history")
@permission_required("customer.view_details")
def history(customer_id: int):
    """Who changed which field from what to what (C5)."""
    customer = customer_or_404(customer_id, "customer.view_details")
    return htmx.render("customers/history.html", "customers/_history.html",
                       customer=customer, changes=customers.history(customer))


@bp.app_template_filter("phone")
def phone_filter(digits: str) -> str:
    """138 0013 8000"""
    return phones.display(digits)


@bp.record_once
def customer_labels(state) -> None:
    """The labels as Jinja globals (the same for every render: lazy translations)."""
    # For the history: stored values shown in words.
    value_labels: dict = {**STAGE_LABELS, **TYPE_LABELS, **SOURCE_LABELS}
    state.app.jinja_env.globals.update(
        stage_labels=STAGE_LABELS, type_labels=TYPE_LABELS, source_labels=SOURCE_LABELS,
        importance_labels=IMPORTANCE_LABELS, customer_value_labels=value_labels,
    )


@bp.get("/<id:customer_id>/merge")
@permission_required("customer.merge")
def merge_candidates(customer_id: int):
    """Pick the customer to merge this one into: likely duplicates first, or any
    customer found by name, company or phone."""
    customer = customer_or_404(customer_id, "customer.merge")
    q = request.args.get("q", "")[:100].strip()
    data = CustomerData(name=customer.name, company=customer.company,
                        phones=[(p.kind, p.digits) for p in customer.phones], email=customer.email)
    candidates = [c for c in customers.find_duplicates(data, exclude_id=customer.id, limit=10) if not c.archived]
    if q:
        found = customers.list_customers(actor(), CustomerFilter(q=q, per_page=10)).items
        candidates += [c for c in found if c.id != customer.id and c not in candidates]
    return htmx.render("customers/merge.html", "customers/_merge_candidates.html",
                       customer=customer, candidates=candidates, q=q)


@bp.post("/<id:customer_id>/merge")
@permission_required("customer.merge")
def merge(customer_id: int):
    """Merge the customer ``drop_id`` into this one; audited, undoable."""
    keep = customer_or_404(customer_id, "customer.merge")
    drop = customer_or_404(parse_id(request.form.get("drop_id")) or 0, "customer.merge")
    try:
        merging.merge_customers(actor(), keep, drop, ip=client_ip())
    except DomainError as refused:
        return htmx.no_swap((refused.message, "error"))
    db.session.commit()
    htmx.notify(_l("%(drop)s was merged into %(keep)s.", drop=drop.name, keep=keep.name))
    return htmx.redirect(url_for("customers.detail", customer_id=keep.id))


@bp.post("/<id:customer_id>/unmerge")
@permission_required("customer.merge")
def unmerge(customer_id: int):
    """Undo the merge that archived this customer."""
    drop = customer_or_404(customer_id, "customer.merge")
    try:
        merging.undo_merge(actor(), drop, ip=client_ip())
    except DomainError as refused:
        return htmx.no_swap((refused.message, "error"))
    db.session.commit()
    htmx.notify(_l("The merge was undone."))
    return htmx.redirect(url_for("customers.detail", customer_id=drop.id))
