"""Follow-up tasks (F1): created from a note's next-follow-up date or on their own;
done, reopened, snoozed and reassigned; listed per person and per customer.

"Today" is a day in the office time zone. Services never look at the clock of the
request: callers pass ``today`` (see :func:`services.office_time.office_today`), so the rules can be tested
at any day boundary.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select, update

from extensions import db
from models import Customer, CustomerNote, FollowUpTask, User, utcnow
from services import audit, policy
from services.errors import DomainError
from services.ids import is_id

SCOPES = ("open", "done", "all")
DUE_FILTERS = ("overdue", "today", "week", "")
PER_PAGE = 50
# Who may be given a follow-up through the reassign and create forms.
ASSIGNABLE_ROLES = policy.OWNER_ROLES


def default_assignee(customer: Customer, actor: User) -> int:
    """Who follows up: the customer's owner, else whoever wrote the note."""
    return customer.owner_id or actor.id


def create_task(
    actor: User,
    customer: Customer,
    *,
    due_date: date,
    title: str,
    assignee_id: int | None = None,
    note: CustomerNote | None = None,
) -> FollowUpTask:
    """Add a follow-up task on ``customer``. The assignee defaults to the owner.
    Raises DomainError for an inactive or front-desk assignee or an empty title."""
    title = title.strip()
    if not title:
        raise DomainError(_l("Say what to follow up."), "title")
    assignee_id = assignee_id or default_assignee(customer, actor)
    assignee = _user(assignee_id)
    if assignee is None or not assignee.active:
        raise DomainError(_l("Choose an active colleague."), "assignee_id")
    if not policy.may_take_follow_up(assignee, actor):
        raise DomainError(_l("Follow-ups go to sales staff or managers."), "assignee_id")
    task = FollowUpTask(
        customer_id=customer.id, assignee_id=assignee.id, created_by_id=actor.id,
        note_id=note.id if note is not None else None, title=title[:200], due_date=due_date,
    )
    db.session.add(task)
    db.session.flush()
    return task


def add_task(
    actor: User, customer: Customer, *, title: str, due_date: date, today: date,
    assignee_id: int | None = None,
) -> FollowUpTask:
    """A standalone follow-up (not from a note), from the task form. Stricter than
    :func:`create_task`: the due date may not be in the past and the assignee must be
    able to open the customer. The caller checks ``task.create``. Raises DomainError
    naming the field at fault."""
    if due_date < today:
        raise DomainError(_l("The due date is in the past."), "due_date")
    if not title.strip():
        raise DomainError(_l("Say what to follow up."), "title")
    assignee_id = assignee_id or default_assignee(customer, actor)
    _check_assignee(_user(assignee_id), customer)
    return create_task(actor, customer, due_date=due_date, title=title, assignee_id=assignee_id)


def _user(user_id: int) -> User | None:
    return db.session.get(User, user_id) if is_id(user_id) else None


def _check_assignee(assignee: User | None, customer: Customer) -> User:
    """Raises DomainError unless ``assignee`` is an active colleague (not front desk)
    who may open ``customer``'s details."""
    if assignee is None or not assignee.active:
        raise DomainError(_l("Choose an active colleague."), "assignee_id")
    if not policy.may_take_follow_up(assignee):
        raise DomainError(_l("Follow-ups go to sales staff or managers."), "assignee_id")
    if not policy.may(assignee, "customer.view_details", customer):
        raise DomainError(
            _l("%(name)s cannot open this customer. Assign the customer first.",
               name=assignee.display_name),
            "assignee_id",
        )
    return assignee


def assignable_colleagues() -> list[User]:
    """Active sales staff and managers, by name: whom a follow-up may go to."""
    return list(db.session.scalars(
        select(User).where(User.active.is_(True), User.role.in_(ASSIGNABLE_ROLES))
        .order_by(User.display_name, User.id)
    ))


def assignee_options(customer: Customer, colleagues: list[User]) -> list[User]:
    """Those of ``colleagues`` who may open ``customer`` (so a reassigned follow-up
    can be done by its new assignee)."""
    return [user for user in colleagues if policy.may(user, "customer.view_details", customer)]


# ---- changing a task -------------------------------------------------------------------

def _refuse_if_done(task: FollowUpTask) -> None:
    if task.done:
        raise DomainError(_l("This follow-up is done already. Reopen it first."))


def complete(actor: User, task: FollowUpTask) -> FollowUpTask:
    """Mark the task done by ``actor`` (nothing happens if it is done already). The
    caller checks ``task.update``."""
    if not task.done:
        task.done_at = utcnow()
        task.done_by_id = actor.id
        db.session.flush()
    return task


def reopen(actor: User, task: FollowUpTask) -> FollowUpTask:
    """Undo :func:`complete`. The caller checks ``task.update``."""
    if task.done:
        task.done_at = None
        task.done_by_id = None
        db.session.flush()
    return task


def snooze(actor: User, task: FollowUpTask, until: date, *, today: date) -> FollowUpTask:
    """Move the due date to ``until``. Raises DomainError (field ``until``) unless
    ``until`` is after ``today`` (office time zone), or if the task is done."""
    _refuse_if_done(task)
    if until <= today:
        raise DomainError(_l("Choose a day after today."), "until")
    task.due_date = until
    db.session.flush()
    return task


def reassign(actor: User, task: FollowUpTask, assignee_id: int, *, ip: str | None = None) -> FollowUpTask:
    """Give the task to another colleague; audited as ``task.reassign``. Raises
    DomainError (field ``assignee_id``) for an unknown, inactive or front-desk
    colleague, or one who may not open the customer, and for a done task."""
    _refuse_if_done(task)
    assignee = _check_assignee(_user(assignee_id), task.customer)
    if assignee.id == task.assignee_id:
        return task
    previous = task.assignee_id
    task.assignee_id = assignee.id
    audit.record("task.reassign", actor, ip=ip, target=task, customer_id=task.customer_id,
                 from_user=previous, to_user=assignee.id)
    db.session.flush()
    return task


def hand_over_open_tasks(from_user: User, to_user_id: int) -> list[int]:
    """Give every open follow-up of ``from_user`` (who is leaving) to ``to_user_id``,
    in the caller's transaction (the caller audits the hand-over). Returns their ids."""
    ids = list(db.session.scalars(select(FollowUpTask.id).where(
        FollowUpTask.assignee_id == from_user.id, FollowUpTask.done_at.is_(None)).order_by(FollowUpTask.id)))
    if ids:
        db.session.execute(update(FollowUpTask).where(FollowUpTask.id.in_(ids)).values(assignee_id=to_user_id))
    return ids


# ---- lists ------------------------------------------------------------------------------

@dataclass
class TaskPage:
    items: list[FollowUpTask]
    total: int
    page: int
    pages: int


def visible_tasks(user: User, query=None, *, include_archived: bool = False):
    """Restrict a ``select(FollowUpTask)`` to tasks ``user`` may see
    (policy.visible_tasks), and not on archived customers unless
    ``include_archived`` (a customer page shows those of an archived customer to
    whoever may open it)."""
    query = policy.visible_tasks(user, query)
    return query if include_archived else query.where(Customer.archived_at.is_(None))


def _due_condition(due: str, today: date):
    if due == "overdue":
        return FollowUpTask.due_date < today
    if due == "today":
        return FollowUpTask.due_date == today
    if due == "week":
        return FollowUpTask.due_date.between(today, today + timedelta(days=6))
    return None


def list_tasks(
    user: User, *, today: date, assignee_id: int | None = None, scope: str = "open",
    due: str = "", page: int = 1, per_page: int | None = None,
) -> TaskPage:
    """One page of the tasks ``user`` may see. ``assignee_id`` narrows to one
    colleague (ignored for users who see only their own); ``scope`` is open, done or
    all; ``due`` is overdue, today, week (today and the next six days) or empty.
    Open tasks come soonest first, done ones latest done first."""
    per_page = per_page or PER_PAGE
    query = visible_tasks(user)
    if assignee_id is not None:
        query = query.where(FollowUpTask.assignee_id == assignee_id)
    if scope == "open":
        query = query.where(FollowUpTask.done_at.is_(None))
    elif scope == "done":
        query = query.where(FollowUpTask.done_at.is_not(None))
    condition = _due_condition(due, today)
    if condition is not None:
        query = query.where(condition)
    total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    pages = max(1, -(-total // per_page))
    page = min(max(1, page), pages)
    order = ([FollowUpTask.done_at.desc()] if scope == "done" else [FollowUpTask.due_date.asc()])
    items = list(db.session.scalars(
        query.order_by(*order, FollowUpTask.id.asc()).offset((page - 1) * per_page).limit(per_page)
    ))
    return TaskPage(items=items, total=total, page=page, pages=pages)


def group_by_due(tasks: list[FollowUpTask], today: date) -> dict[str, list[FollowUpTask]]:
    """Open tasks in the groups the task page shows: overdue, today, upcoming."""
    groups: dict[str, list[FollowUpTask]] = {"overdue": [], "today": [], "upcoming": []}
    for task in tasks:
        key = "overdue" if task.due_date < today else "today" if task.due_date == today else "upcoming"
        groups[key].append(task)
    return groups


def due_now(user: User, today: date, limit: int = 50) -> list[FollowUpTask]:
    """``user``'s own open follow-ups that are overdue or due today, oldest first."""
    query = visible_tasks(user).where(
        FollowUpTask.assignee_id == user.id, FollowUpTask.done_at.is_(None),
        FollowUpTask.due_date <= today,
    )
    return list(db.session.scalars(
        query.order_by(FollowUpTask.due_date, FollowUpTask.id).limit(limit)
    ))


def count_overdue(user: User, today: date) -> int:
    """How many open tasks ``user`` may see are overdue (everybody's for managers)."""
    counting = select(func.count(FollowUpTask.id)).select_from(FollowUpTask)
    query = visible_tasks(user, counting).where(
        FollowUpTask.done_at.is_(None), FollowUpTask.due_date < today
    )
    return db.session.scalar(query) or 0


def customer_open_tasks(user: User, customer: Customer) -> list[FollowUpTask]:
    """The open tasks on ``customer`` that ``user`` may see, soonest first."""
    query = visible_tasks(user, include_archived=True).where(
        FollowUpTask.customer_id == customer.id, FollowUpTask.done_at.is_(None)
    )
    return list(db.session.scalars(query.order_by(FollowUpTask.due_date, FollowUpTask.id)))
