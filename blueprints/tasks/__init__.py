"""Follow-up tasks: my list with its filters, the self-replacing task row (done,
reopen, snooze, reassign), and the follow-up section of the customer page with its
create form."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, g, request, url_for
from flask_babel import lazy_gettext as _l

from blueprints import htmx
from blueprints.access import actor, customer_or_404, permission_required, task_or_404
from blueprints.i18n import join_sentences, local_date
from blueprints.security import client_ip
from blueprints.tasks.forms import ReassignForm, SnoozeForm, TaskForm
from extensions import db
from models import Customer, FollowUpTask, User
from services import policy, tasks
from services.errors import DomainError
from services.ids import parse_id, parse_page
from services.office_time import office_today

bp = Blueprint("tasks", __name__)


# Ids beyond the integer columns' range are simply not found (404) rather than an
# overflow in the database driver.
TASK_ID = "<id:task_id>"
CUSTOMER_ID = "<id:customer_id>"

SNOOZE_DAYS = (1, 3, 7)


def _colleagues() -> list[User]:
    if "assignable_colleagues" not in g:
        g.assignable_colleagues = tasks.assignable_colleagues()
    return g.assignable_colleagues


def assignee_options(customer: Customer) -> list[User]:
    """Colleagues a follow-up on ``customer`` may go to (for the select boxes)."""
    return tasks.assignee_options(customer, _colleagues())


def _tomorrow():
    return office_today() + timedelta(days=1)


@bp.record_once
def task_helpers(state) -> None:
    """Lets the task row render on any page (task list, customer page, home): Jinja
    globals, the same for every render."""
    state.app.jinja_env.globals.update(
        task_today=office_today, task_assignee_options=assignee_options,
        task_tomorrow=_tomorrow, snooze_days=SNOOZE_DAYS)


# ---- my follow-ups -----------------------------------------------------------------------

def _task_filter(args) -> dict:
    """The list filter from URL arguments; unknown values fall back to defaults."""
    scope = args.get("scope", "open")
    due = args.get("due", "")
    assignee = args.get("assignee", "")[:12]
    if assignee not in ("", "all") and parse_id(assignee) is None:
        assignee = ""
    return {
        "scope": scope if scope in tasks.SCOPES else "open",
        "due": due if due in tasks.DUE_FILTERS else "",
        "assignee": assignee if policy.may(actor(), "task.view_all") else "",
        "page": parse_page(args.get("page")),
    }


def _assignee_id(assignee: str) -> int | None:
    if assignee == "all":
        return None
    return parse_id(assignee) if assignee else actor().id


@bp.get("/tasks")
@permission_required("task.update")
def index():
    """My open follow-ups grouped overdue / today / upcoming; filters in the URL,
    htmx swaps only the results. Managers may look at a colleague's or everybody's."""
    flt = _task_filter(request.args)
    today = office_today()
    page = tasks.list_tasks(actor(), today=today, assignee_id=_assignee_id(flt["assignee"]),
                            scope=flt["scope"], due=flt["due"], page=flt["page"])
    groups = tasks.group_by_due(page.items, today) if flt["scope"] == "open" else None
    colleagues = tasks.assignable_colleagues() if policy.may(actor(), "task.view_all") else []
    return htmx.render("tasks/index.html", "tasks/_results.html", page=page, groups=groups,
                       flt=flt, colleagues=colleagues, page_url=_page_url(flt))


def _page_url(flt: dict):
    def url(page: int) -> str:
        args = {key: value for key, value in flt.items() if value and key != "page"}
        return url_for("tasks.index", **args, **({"page": page} if page > 1 else {}))

    return url


# ---- one task ------------------------------------------------------------------------------

def _render_task(task: FollowUpTask, *, toast=None, status: int = 200, errors=None, typed=None):
    """The task row for htmx, the task page otherwise (both show ``toast``)."""
    return htmx.render("tasks/task.html", "tasks/_task.html", task=task, toast=toast,
                       status=status, row_errors=errors or {}, typed=typed or {})


@bp.get(f"/tasks/{TASK_ID}")
@permission_required("task.update")
def show(task_id: int):
    """One follow-up (the row again for htmx). 404 for tasks the user may not see."""
    return _render_task(task_or_404(task_id))


@bp.post(f"/tasks/{TASK_ID}/done")
@permission_required("task.update")
def complete(task_id: int):
    """Mark done; the row offers to reopen. 404 / 403 as for every task."""
    task = tasks.complete(actor(), task_or_404(task_id))
    db.session.commit()
    return _render_task(task, toast=_l("Done: %(title)s", title=task.title))


@bp.post(f"/tasks/{TASK_ID}/reopen")
@permission_required("task.update")
def reopen(task_id: int):
    """Undo done."""
    task = tasks.reopen(actor(), task_or_404(task_id))
    db.session.commit()
    return _render_task(task, toast=_l("Reopened: %(title)s", title=task.title))


@bp.post(f"/tasks/{TASK_ID}/snooze")
@permission_required("task.update")
def snooze(task_id: int):
    """Move the due date by ``days`` or to ``until``; 422 with the message in the row
    for a day that is not after today or not a date."""
    task = task_or_404(task_id)
    form = SnoozeForm()
    typed = {"until": request.form.get("until", "")[:20]}
    if not form.validate():
        return _render_task(task, status=422, errors={"until": _l("Choose a valid day.")}, typed=typed)
    if form.days.data:
        until = office_today() + timedelta(days=form.days.data)
    elif form.until.data:
        until = form.until.data
    else:
        return _render_task(task, status=422, errors={"until": _l("Choose a day.")}, typed=typed)
    try:
        tasks.snooze(actor(), task, until, today=office_today())
    except DomainError as refused:
        return _render_task(task, status=422, errors={refused.field or "until": refused.message}, typed=typed)
    db.session.commit()
    return _render_task(task, toast=_l("Snoozed to %(day)s.", day=local_date(until)))


@bp.post(f"/tasks/{TASK_ID}/reassign")
@permission_required("task.update")
def reassign(task_id: int):
    """Give the task to a colleague (audited); 422 with the message in the row for an
    unknown, inactive or front-desk colleague."""
    task = task_or_404(task_id)
    form = ReassignForm()
    if not form.validate():
        return _render_task(task, status=422, errors={"assignee_id": join_sentences(form.assignee_id.errors)})
    try:
        tasks.reassign(actor(), task, form.assignee_id.data, ip=client_ip())
    except DomainError as refused:
        return _render_task(task, status=422, errors={refused.field or "assignee_id": refused.message})
    db.session.commit()
    return _render_task(task, toast=_l("Now with %(name)s.", name=task.assignee.display_name))


# ---- the customer page's section ---------------------------------------------------------

def _task_form(user: User, customer: Customer, form: TaskForm | None = None) -> TaskForm:
    """The create form with its assignee choices; a fresh one defaults to tomorrow
    and to the owner (or oneself)."""
    options = assignee_options(customer)
    if all(colleague.id != user.id for colleague in options):
        options = [user, *options]  # an administrator may plan their own follow-ups
    if form is None:
        form = TaskForm(formdata=None, due_date=office_today() + timedelta(days=1),
                        assignee_id=tasks.default_assignee(customer, user))
    form.assignee_id.choices = [(colleague.id, colleague.display_name) for colleague in options]
    return form


def customer_tasks_context(user: User, customer: Customer, form: TaskForm | None = None) -> dict:
    """What ``templates/tasks/_customer_tasks.html`` needs on the customer page:
    the open follow-ups ``user`` may see and, if they may add one, the form."""
    may_create = policy.may(user, "task.create", customer)
    return {
        "customer_tasks": tasks.customer_open_tasks(user, customer),
        "task_form": _task_form(user, customer, form) if may_create else None,
    }


@bp.get(f"/customers/{CUSTOMER_ID}/tasks/new")
@permission_required("task.create")
def new(customer_id: int):
    """The follow-up section on a page of its own (the no-JavaScript way in)."""
    customer = customer_or_404(customer_id, "task.create")
    return htmx.render("tasks/new.html", "tasks/_customer_tasks.html", customer=customer,
                       **customer_tasks_context(actor(), customer))


@bp.post(f"/customers/{CUSTOMER_ID}/tasks")
@permission_required("task.create")
def create(customer_id: int):
    """Add a standalone follow-up: the section comes back with the new task and a
    fresh form; 422 with errors next to the fields and the typed text kept. 404 for a
    customer one may not see, 403 for the front desk."""
    customer = customer_or_404(customer_id, "task.create")
    form = _task_form(actor(), customer, TaskForm())
    if form.validate_on_submit():
        try:
            task = tasks.add_task(actor(), customer, title=form.title.data, due_date=form.due_date.data,
                                  today=office_today(), assignee_id=form.assignee_id.data)
        except DomainError as refused:
            form.refuse(refused, refused.field or "title")
        else:
            db.session.commit()
            message = _l("Follow-up planned for %(day)s.", day=local_date(task.due_date))
            if not htmx.wants_fragment():
                htmx.notify(message)
                return htmx.redirect(url_for("customers.detail", customer_id=customer.id))
            return htmx.fragment("tasks/_customer_tasks.html", customer=customer, toast=message,
                                 **customer_tasks_context(actor(), customer))
    return htmx.render("tasks/new.html", "tasks/_customer_tasks.html", customer=customer, status=422,
                       **customer_tasks_context(actor(), customer, form))
