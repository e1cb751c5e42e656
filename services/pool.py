"""The public pool (公海, P1–P7): claim, release, assign, lock, and the recycle clock
with its sweep. Every rule reads its numbers from services.settings.

Services here flush into the caller's transaction and never commit; the caller
commits once. A refusal (PoolRefusal) comes before any write, or after a
conditional UPDATE that changed no row, so it leaves nothing to undo.

Atomicity: a claim counts the claimer's customers and claims while holding a lock on
the claimer's user row (SELECT … FOR UPDATE on PostgreSQL; SQLite's BEGIN IMMEDIATE
already serialises writers), then takes the customer with one conditional UPDATE whose
row count says who won. The sweep recycles each customer with the same kind of
conditional UPDATE, so two sweeps at once recycle it once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select, update
from sqlalchemy.orm import joinedload, lazyload

from extensions import db, insert_rows
from models import Customer, CustomerNote, PoolEvent, PoolEventKind, Setting, User, utcnow
from services import audit, leases, policy, search, settings
from services.errors import DomainError
from services.office_time import office_zone

RELEASE_REASONS = {
    "no_need": _l("No need at the moment"),
    "unreachable": _l("Cannot reach the customer"),
    "wrong_contact": _l("Wrong or invalid contact"),
    "other_team": _l("Better served by a colleague"),
    "other": _l("Other"),
}
LAST_SWEEP_KEY = "pool.last_sweep_at"


class PoolRefusal(DomainError):
    """A pool rule refused the action; ``code`` says which (already_claimed, limit,
    daily_limit, reclaim_lock, not_in_pool, not_owner, locked_limit, archived)."""

    def __init__(self, code: str, message, field: str | None = None):
        super().__init__(message, field)
        self.code = code


def _office_day_start(now: datetime) -> datetime:
    """Start of the office's day containing ``now`` (both naive UTC)."""
    local = now.replace(tzinfo=UTC).astimezone(office_zone())
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight.astimezone(UTC).replace(tzinfo=None)


def _lock_user_row(user_id: int) -> None:
    """Serialise one user's pool actions (PostgreSQL; a no-op statement on SQLite)."""
    db.session.execute(select(User.id).where(User.id == user_id).with_for_update())


def owned_count(user_id: int) -> int:
    """Customers ``user_id`` owns that count towards the limit."""
    query = select(func.count()).select_from(Customer).where(
        Customer.owner_id == user_id, Customer.archived_at.is_(None))
    if not settings.get("pool.count_deals"):
        query = query.where(Customer.stage != "deal")
    return db.session.scalar(query)


def owned_count_all(user_id: int) -> int:
    """Every customer ``user_id`` owns, archived ones included (for hand-over)."""
    return db.session.scalar(select(func.count()).select_from(Customer).where(Customer.owner_id == user_id))


def owner_limit(user: User) -> int:
    return user.claim_limit if user.claim_limit is not None else settings.get("pool.max_owned")


def claims_today(user_id: int, now: datetime) -> int:
    return db.session.scalar(select(func.count()).select_from(PoolEvent).where(
        PoolEvent.actor_id == user_id, PoolEvent.kind == PoolEventKind.CLAIM,
        PoolEvent.at >= _office_day_start(now)))


@dataclass(frozen=True)
class ClaimStanding:
    """Where a salesperson stands against the claim limits: 已拥有 owned / limit ·
    今日已领取 claimed_today / daily_limit."""

    owned: int
    limit: int
    claimed_today: int
    daily_limit: int


def claim_standing(user: User, *, now: datetime | None = None) -> ClaimStanding:
    """The numbers the claim rules compare, as they are now (the pool page shows them)."""
    now = now or utcnow()
    return ClaimStanding(owned_count(user.id), owner_limit(user), claims_today(user.id, now),
                         settings.get("pool.max_daily_claims"))


def _reclaim_locked_until(user_id: int, customer_id: int, now: datetime) -> datetime | None:
    days = settings.get("pool.reclaim_lock_days")
    # A release taken back with Undo (undo_release) locks nothing.
    lost = db.session.execute(select(PoolEvent.at, PoolEvent.details).where(
        PoolEvent.customer_id == customer_id, PoolEvent.from_user_id == user_id,
        PoolEvent.kind.in_([PoolEventKind.RELEASE, PoolEventKind.RECYCLE]))
        .order_by(PoolEvent.at.desc()).limit(20)).all()
    last = next((at for at, details in lost if not (details or {}).get("undone")), None)
    if last is None or days == 0 or last <= now - timedelta(days=days):
        return None
    return last + timedelta(days=days)


def _event(kind, customer_id, actor, *, from_user=None, to_user=None, reason="", at=None, **details):
    """Record an ownership change; the search index follows (the owner filters it)."""
    search.mark_customers([customer_id], with_notes=True)
    db.session.add(PoolEvent(
        customer_id=customer_id, kind=kind, actor_id=actor.id if actor else None,
        from_user_id=from_user, to_user_id=to_user, reason=reason, at=at or utcnow(), details=details,
    ))


def new_customer_clock(owner_id: int | None, created_at: datetime) -> dict:
    """The pool columns of a new customer: born in the pool ("new"), or owned
    since its creation (the recycle clock starts then)."""
    if owner_id is None:
        return {"owned_since": None, "pool_reason": "new"}
    return {"owned_since": created_at, "pool_reason": ""}


def record_created(customer: Customer, actor: User) -> None:
    """Called when a customer is created (in the caller's transaction): a pool event
    for a customer born in the pool, the ownership clock for an owned one."""
    for name, value in new_customer_clock(customer.owner_id, customer.created_at or utcnow()).items():
        setattr(customer, name, value)
    record_created_many([(customer.id, customer.owner_id)], actor)


def record_created_many(created: list[tuple[int, int | None]], actor: User | None, **details) -> None:
    """The pool events of new (flushed) customers, given as (id, owner id), whose
    columns hold new_customer_clock's values, in one statement, with one search
    backlog write: an import's batch of rows. ``details`` go on each event.
    Only the customers' own entries: a new customer has no note in the index yet
    (notes saved with it are recorded as themselves), and redoing all notes of 50,000
    new customers was a lookup per customer in the notes index."""
    search.mark_customers([customer_id for customer_id, _ in created])
    actor_id, now = actor.id if actor else None, utcnow()
    insert_rows(PoolEvent, [
        {"customer_id": customer_id, "actor_id": actor_id, "at": now, "details": details,
         **({"kind": PoolEventKind.CREATE_IN_POOL, "to_user_id": None, "reason": ""} if owner_id is None
            else {"kind": PoolEventKind.ASSIGN, "to_user_id": owner_id, "reason": "created"})}
        for customer_id, owner_id in created])


def record_owner_change(actor: User, customer: Customer, new_owner_id: int | None) -> None:
    """A manager changed the owner in the customer form: the same as an assignment
    (or a release when the new owner is nobody), in the caller's transaction."""
    old_owner_id, now = customer.owner_id, utcnow()
    customer.owner_id = new_owner_id
    customer.recycle_locked = False
    if new_owner_id is None:
        customer.owned_since, customer.pool_reason = None, "released"
        _event(PoolEventKind.RELEASE, customer.id, actor, from_user=old_owner_id, at=now, reason="edited")
    else:
        customer.owned_since, customer.pool_reason = now, ""
        _event(PoolEventKind.ASSIGN, customer.id, actor, from_user=old_owner_id, to_user=new_owner_id, at=now)


def handover_customers(actor: User, from_user: User, to_user_id: int | None) -> int:
    """离职交接 (P7): every customer ``from_user`` owns goes to the pool (``None``) or
    to the colleague ``to_user_id``, in one transaction; one pool event each. The
    limit is not applied: a hand-over must not fail half-way. Returns the count."""
    if to_user_id is not None:
        target = db.session.get(User, to_user_id)
        if target is None or target.id == from_user.id or not policy.may_own_customers(target):
            raise DomainError(_l("Choose an active colleague, or the public pool."), "handover_to")
    now = utcnow()
    ids = list(db.session.scalars(select(Customer.id).where(Customer.owner_id == from_user.id)))
    if ids:
        db.session.execute(
            update(Customer).where(Customer.id.in_(ids), Customer.owner_id == from_user.id)
            .values(owner_id=to_user_id, owned_since=now if to_user_id else None, recycle_locked=False,
                    pool_reason="" if to_user_id else "handover")
            .execution_options(synchronize_session=False))
        for cid in ids:
            _event(PoolEventKind.HANDOVER, cid, actor, from_user=from_user.id, to_user=to_user_id, at=now)
    db.session.flush()
    return len(ids)


# How long after a claim the losers of the race are told who won. Longer would let
# anyone learn a customer's owner by claiming ids one after another.
CLAIM_RACE_SECONDS = 10


def recent_claimer(customer_id: int, now: datetime | None = None) -> User | None:
    """Who claimed ``customer_id`` within CLAIM_RACE_SECONDS before ``now`` and owns
    it still; None otherwise."""
    now = now or utcnow()
    return db.session.scalar(
        select(User).join(PoolEvent, PoolEvent.to_user_id == User.id)
        .join(Customer, (Customer.id == PoolEvent.customer_id) & (Customer.owner_id == User.id))
        .where(PoolEvent.customer_id == customer_id, PoolEvent.kind == PoolEventKind.CLAIM,
               PoolEvent.at >= now - timedelta(seconds=CLAIM_RACE_SECONDS))
        .order_by(PoolEvent.at.desc()).limit(1))


def not_claimable(customer_id: int, now: datetime | None = None) -> PoolRefusal:
    """The refusal for a customer that is not (or no longer) in the pool: already
    claimed, naming the winner, in the seconds after a claim; else not in the pool
    (archived, owned, or never there: the caller answers as for an unknown id)."""
    winner = recent_claimer(customer_id, now)
    if winner is not None:
        return PoolRefusal("already_claimed", _l("Already claimed by %(name)s.", name=winner.display_name))
    return PoolRefusal("not_in_pool", _l("This customer is not in the public pool."))


def claim_customer(actor: User, customer_id: int, *, now: datetime | None = None) -> Customer:
    """Take a pool customer (领取). Raises PoolRefusal: already claimed in the last
    seconds (naming the winner), not in the pool (also archived: the caller answers
    as for an unknown id), owned limit, daily limit, re-claim lock."""
    asked_at = now or utcnow()
    _lock_user_row(actor.id)
    # The claim's time once the lock is held (SQLite may queue for it): the losers of
    # the race, who look back CLAIM_RACE_SECONDS from when they asked, find it.
    now = now or utcnow()
    standing = claim_standing(actor, now=now)
    # The messages say the real counts: an override or a lowered limit can put them past it.
    if standing.owned >= standing.limit:
        raise PoolRefusal("limit", _l(
            "You own %(owned)d customers; the limit is %(limit)d. Release one first.",
            owned=standing.owned, limit=standing.limit))
    if standing.claimed_today >= standing.daily_limit:
        raise PoolRefusal("daily_limit", _l(
            "You have claimed %(today)d customers today; the most per day is %(limit)d.",
            today=standing.claimed_today, limit=standing.daily_limit))
    if (until := _reclaim_locked_until(actor.id, customer_id, now)) is not None:
        days = max(1, math.ceil((until - now).total_seconds() / 86400))
        raise PoolRefusal("reclaim_lock", _l(
            "You gave this customer up recently; you may claim it again in %(days)d days.", days=days))
    taken = db.session.execute(
        update(Customer)
        .where(Customer.id == customer_id, Customer.owner_id.is_(None), Customer.archived_at.is_(None))
        .values(owner_id=actor.id, owned_since=now, recycle_locked=False, pool_reason="")
        .execution_options(synchronize_session=False)
    ).rowcount
    if taken != 1:
        raise not_claimable(customer_id, asked_at)
    _event(PoolEventKind.CLAIM, customer_id, actor, to_user=actor.id, at=now)
    db.session.flush()
    customer = db.session.get(Customer, customer_id)
    db.session.refresh(customer)
    return customer


def release_to_pool(actor: User, customer: Customer, reason_code: str, reason_text: str = "",
                    *, now: datetime | None = None) -> None:
    """Return a customer to the pool (退回公海) with a required reason. The owner or a
    manager; raises DomainError for a missing reason or PoolRefusal when the customer
    is not owned."""
    if reason_code not in RELEASE_REASONS:
        raise DomainError(_l("Choose a reason."), "reason")
    if reason_code == "other" and not reason_text.strip():
        raise DomainError(_l("Say why."), "reason_text")
    owner_id = customer.owner_id
    if owner_id is None:
        raise PoolRefusal("not_owned", _l("This customer is already in the public pool."))
    now = now or utcnow()
    # What an Undo puts back (undo_release): the ownership clock and the lock.
    before = {"owned_since": customer.owned_since.isoformat() if customer.owned_since else None,
              "recycle_locked": bool(customer.recycle_locked)}
    released = db.session.execute(
        update(Customer).where(Customer.id == customer.id, Customer.owner_id == owner_id)
        .values(owner_id=None, owned_since=None, recycle_locked=False, pool_reason="released")
        .execution_options(synchronize_session=False)
    ).rowcount
    if released != 1:
        raise PoolRefusal("changed", _l("The owner changed meanwhile; reload the page."))
    # The code is stored, not its words: each reader sees the reason in their language.
    _event(PoolEventKind.RELEASE, customer.id, actor, from_user=owner_id, reason=reason_text.strip()[:250],
           at=now, reason_code=reason_code, before=before)
    db.session.flush()
    db.session.refresh(customer)


# How long the one who released a customer may take it back with Undo (the toast's button).
RELEASE_UNDO_SECONDS = 60


def undo_release(actor: User, customer: Customer, *, now: datetime | None = None) -> None:
    """Undo a release (the toast's Undo): the customer goes back to the owner it had,
    with its ownership clock and lock, as if never released. Only for the one who
    released it, within RELEASE_UNDO_SECONDS, while it is still in the pool and
    nothing happened to it since. Recorded as a pool event and in the audit log.
    Raises PoolRefusal (not_releaser, changed, too_late, limit)."""
    now = now or utcnow()
    # The newest event recorded (by id: "nothing happened since" is about order, not clocks).
    last = db.session.scalar(select(PoolEvent).where(PoolEvent.customer_id == customer.id)
                             .order_by(PoolEvent.id.desc()).limit(1))
    if last is None or last.kind != PoolEventKind.RELEASE or last.actor_id != actor.id:
        if last is not None and last.kind == PoolEventKind.RELEASE:
            raise PoolRefusal("not_releaser", _l("Only the one who released this customer may undo it."))
        raise PoolRefusal("changed", _l("This customer is no longer where you left it; nothing was undone."))
    if last.at < now - timedelta(seconds=RELEASE_UNDO_SECONDS):
        raise PoolRefusal("too_late", _l("Too late to undo: claim the customer from the pool instead."))
    owner = db.session.get(User, last.from_user_id) if last.from_user_id else None
    if owner is None or not policy.may_own_customers(owner):
        raise PoolRefusal("changed", _l("This customer is no longer where you left it; nothing was undone."))
    _lock_user_row(owner.id)
    if owned_count(owner.id) >= owner_limit(owner):
        raise PoolRefusal("limit", _l("%(name)s owns %(owned)d customers meanwhile; the limit is %(limit)d.",
                                      name=owner.display_name, owned=owned_count(owner.id), limit=owner_limit(owner)))
    before = (last.details or {}).get("before") or {}
    owned_since = datetime.fromisoformat(before["owned_since"]) if before.get("owned_since") else now
    restored = db.session.execute(
        update(Customer).where(Customer.id == customer.id, Customer.owner_id.is_(None),
                               Customer.archived_at.is_(None))
        .values(owner_id=owner.id, owned_since=owned_since, pool_reason="",
                recycle_locked=bool(before.get("recycle_locked")))
        .execution_options(synchronize_session=False)
    ).rowcount
    if restored != 1:
        raise PoolRefusal("changed", _l("This customer is no longer where you left it; nothing was undone."))
    last.details = {**(last.details or {}), "undone": True}
    _event(PoolEventKind.RELEASE_UNDONE, customer.id, actor, to_user=owner.id, at=now, release_event_id=last.id)
    audit.record("pool.release_undone", actor, target=customer, owner_id=owner.id, release_event_id=last.id)
    db.session.flush()
    db.session.refresh(customer)


def assign_customers(actor: User, customer_ids: list[int], to_user_id: int, *,
                     override_limit: bool = False, now: datetime | None = None) -> list[int]:
    """A manager assigns customers (分配) to a salesperson, in one transaction.
    Respects the owned limit unless ``override_limit`` (recorded). Returns the ids
    assigned. Raises DomainError for an unsuitable assignee or PoolRefusal("limit")."""
    target = db.session.get(User, to_user_id)
    if not policy.may_own_customers(target):
        raise DomainError(_l("Choose an active salesperson."), "to_user_id")
    now = now or utcnow()
    _lock_user_row(target.id)
    # In id order: the same order every time, and the rows locked in the same order
    # by two managers assigning at once (no deadlock on PostgreSQL).
    rows = db.session.execute(select(Customer.id, Customer.owner_id).where(
        Customer.id.in_(customer_ids), Customer.archived_at.is_(None)).order_by(Customer.id)).all()
    moving = [(cid, owner) for cid, owner in rows if owner != target.id]
    limit = owner_limit(target)
    if not override_limit and owned_count(target.id) + len(moving) > limit:
        raise PoolRefusal("limit", _l(
            "%(name)s would own more than %(n)d customers. Choose fewer, or override the limit.",
            name=target.display_name, n=limit))
    assigned = []
    for cid, owner in moving:
        condition = Customer.owner_id.is_(None) if owner is None else Customer.owner_id == owner
        if db.session.execute(
            update(Customer).where(Customer.id == cid, condition)
            .values(owner_id=target.id, owned_since=now, recycle_locked=False, pool_reason="")
            .execution_options(synchronize_session=False)
        ).rowcount == 1:
            _event(PoolEventKind.ASSIGN, cid, actor, from_user=owner, to_user=target.id, at=now,
                   override_limit=override_limit)
            assigned.append(cid)
    db.session.flush()
    return assigned


def set_recycle_lock(actor: User, customer: Customer, locked: bool) -> None:
    """The owner locks (锁定) a customer against recycling, up to the setting's
    number. Raises PoolRefusal when over it or when the customer is not owned."""
    if customer.owner_id is None:
        raise PoolRefusal("not_owned", _l("Only owned customers can be locked."))
    if locked and not customer.recycle_locked:
        _lock_user_row(customer.owner_id)
        count = db.session.scalar(select(func.count()).select_from(Customer).where(
            Customer.owner_id == customer.owner_id, Customer.recycle_locked.is_(True),
            Customer.archived_at.is_(None)))
        if count >= settings.get("pool.max_locked"):
            raise PoolRefusal("locked_limit", _l("At most %(n)d customers may be locked.",
                                                 n=settings.get("pool.max_locked")))
    customer.recycle_locked = locked
    db.session.flush()


# ---- the recycle clock --------------------------------------------------------------

@dataclass(frozen=True)
class RecycleClock:
    """Why and when an owned customer returns to the pool."""

    state: str  # "counting", "protected", "locked", "off"
    due_at: datetime | None = None
    days_left: int | None = None
    started_at: datetime | None = None
    reset_by_note_id: int | None = None


def _contact_time():
    return func.coalesce(CustomerNote.contacted_at, CustomerNote.created_at)


def _effective(kinds) -> tuple:
    """The conditions of a note that restarts its customer's clock: of one of the
    effective ``kinds`` (the setting), not deleted (ix_customer_notes_effective)."""
    return CustomerNote.kind.in_(kinds), CustomerNote.deleted_at.is_(None)


def _last_effective(customer_ids: list[int]) -> dict[int, datetime]:
    kinds = settings.get("pool.effective_kinds")
    if not customer_ids or not kinds:
        return {}
    rows = db.session.execute(
        select(CustomerNote.customer_id, func.max(_contact_time()))
        .where(CustomerNote.customer_id.in_(customer_ids), *_effective(kinds))
        .group_by(CustomerNote.customer_id)
    )
    return dict(rows.all())


def recycle_clocks(customers: list[Customer], *, now: datetime | None = None,
                   last: dict[int, datetime] | None = None) -> dict[int, RecycleClock]:
    """The clock of each owned customer, computed with one query for the lot (none
    when ``last``, the latest effective contact of each customer, is given)."""
    now = now or utcnow()
    enabled, days = settings.get("pool.recycle_enabled"), settings.get("pool.recycle_days")
    protected = set(settings.get("pool.protected_stages"))
    owned = [c for c in customers if c.owner_id is not None]
    if last is None:
        last = _last_effective([c.id for c in owned])
    clocks = {}
    for customer in owned:
        if not enabled:
            clocks[customer.id] = RecycleClock("off")
        elif customer.stage in protected:
            clocks[customer.id] = RecycleClock("protected")
        elif customer.recycle_locked:
            clocks[customer.id] = RecycleClock("locked")
        else:
            start = max(filter(None, [customer.owned_since or customer.created_at, last.get(customer.id)]))
            due = start + timedelta(days=days)
            left = math.ceil((due - now).total_seconds() / 86400)
            clocks[customer.id] = RecycleClock("counting", due, left, start)
    return clocks


def recycle_clock(customer: Customer, *, now: datetime | None = None) -> RecycleClock | None:
    """One customer's clock, with the note that last reset it. Whether the clock
    counts needs no query; a counting clock reads its latest effective note once,
    for both its time and its id."""
    clock = recycle_clocks([customer], now=now, last={}).get(customer.id)
    if clock is None or clock.state != "counting":
        return clock
    kinds = settings.get("pool.effective_kinds")
    newest = db.session.execute(
        select(CustomerNote.id, _contact_time()).where(CustomerNote.customer_id == customer.id, *_effective(kinds))
        .order_by(_contact_time().desc(), CustomerNote.id.desc()).limit(1)).first() if kinds else None
    if newest is None:
        return clock
    clock = recycle_clocks([customer], now=now, last={customer.id: newest[1]})[customer.id]
    return RecycleClock(clock.state, clock.due_at, clock.days_left, clock.started_at, newest[0])


def _candidates(now: datetime, owner_id: int | None = None, horizon_days: int = 0):
    """Owned, active, unlocked, unprotected customers whose clock ends within
    ``horizon_days``: a clock starts at the later of owning and the latest effective
    contact (recycle_clocks), so both must lie on or before the cutoff. Only those
    rows are read, not every owned customer's: a salesperson's home page asked for
    all fifty to show the two or three about to go."""
    days = settings.get("pool.recycle_days")
    cutoff = now - timedelta(days=days) + timedelta(days=horizon_days)
    query = select(Customer).where(
        Customer.owner_id.is_not(None), Customer.archived_at.is_(None),
        Customer.recycle_locked.is_(False), Customer.stage.not_in(settings.get("pool.protected_stages")),
        func.coalesce(Customer.owned_since, Customer.created_at) <= cutoff,
    )
    kinds = settings.get("pool.effective_kinds")
    if kinds:
        query = query.where(~select(CustomerNote.id).where(
            CustomerNote.customer_id == Customer.id, *_effective(kinds), _contact_time() > cutoff).exists())
    if owner_id is not None:
        query = query.where(Customer.owner_id == owner_id)
    return query.order_by(Customer.id)


def due_soon(owner_id: int, *, now: datetime | None = None, within_days: int | None = None):
    """The owner's customers that will be recycled within ``within_days`` (default:
    the warn setting), soonest first, each with its clock."""
    now = now or utcnow()
    within = settings.get("pool.warn_days") if within_days is None else within_days
    if not settings.get("pool.recycle_enabled"):
        return []
    # The customers' rows only (the home page shows names): their phones, tags and
    # owner read for every candidate were most of the home page's time.
    found = list(db.session.scalars(_candidates(now, owner_id, within).options(lazyload("*"))))
    clocks = recycle_clocks(found, now=now)
    soon = [(c, clocks[c.id]) for c in found if clocks[c.id].state == "counting" and clocks[c.id].days_left <= within]
    return sorted(soon, key=lambda pair: pair[1].due_at)


def due_for_recycling(*, now: datetime | None = None) -> list[tuple[Customer, RecycleClock]]:
    """Every customer the sweep would recycle now, with the clock that says why."""
    now = now or utcnow()
    if not settings.get("pool.recycle_enabled"):
        return []
    found = list(db.session.scalars(_candidates(now)))
    due = []
    for start in range(0, len(found), 500):
        chunk = found[start:start + 500]
        clocks = recycle_clocks(chunk, now=now)
        due += [(c, clocks[c.id]) for c in chunk if clocks[c.id].state == "counting" and clocks[c.id].due_at <= now]
    return due


def recycle_due_customers(*, now: datetime | None = None, dry_run: bool = False) -> list[tuple[Customer, RecycleClock]]:
    """The sweep (自动回收): return every due customer to the pool, one conditional
    UPDATE each, so a second sweep running at the same time recycles nothing twice.
    Records the time of the run. Returns what was recycled (or would be)."""
    now = now or utcnow()
    due = due_for_recycling(now=now)
    if dry_run:
        return due
    recycled = []
    for customer, clock in due:
        owner_id = customer.owner_id
        done = db.session.execute(
            update(Customer).where(Customer.id == customer.id, Customer.owner_id == owner_id,
                                   Customer.recycle_locked.is_(False), Customer.archived_at.is_(None))
            .values(owner_id=None, owned_since=None, pool_reason="recycled",
                    times_recycled=Customer.times_recycled + 1)
            .execution_options(synchronize_session=False)
        ).rowcount
        if done == 1:
            days = settings.get("pool.recycle_days")
            _event(PoolEventKind.RECYCLE, customer.id, None, from_user=owner_id, at=now,
                   reason=f"{days}", last_follow_up=clock.started_at.isoformat())
            recycled.append((customer, clock))
    row = db.session.get(Setting, LAST_SWEEP_KEY) or Setting(key=LAST_SWEEP_KEY)
    row.value = now.isoformat()
    db.session.add(row)
    db.session.flush()
    return recycled


def last_sweep_at() -> datetime | None:
    row = db.session.get(Setting, LAST_SWEEP_KEY)
    return datetime.fromisoformat(row.value) if row and row.value else None


def sweep_overdue(*, now: datetime | None = None) -> bool:
    """True when auto-recycling is on and the nightly sweep is overdue or its last
    run failed (services.leases): the banner for managers. Never on a fresh install,
    which has had no night yet."""
    if not settings.get("pool.recycle_enabled"):
        return False
    return leases.attention("pool_sweep", now) is not None


def event_reason(event: PoolEvent) -> str:
    """A pool event's reason in the reader's language: the release reason's label
    and the free text typed with it."""
    label = RELEASE_REASONS.get((event.details or {}).get("reason_code", ""))
    typed = event.reason if event.kind == PoolEventKind.RELEASE else ""
    if label and typed:
        return str(_l("%(reason)s: %(details)s", reason=str(label), details=typed))
    return str(label or typed or "")


def events_for(customer: Customer, limit: int = 50) -> list[PoolEvent]:
    return list(db.session.scalars(
        select(PoolEvent).where(PoolEvent.customer_id == customer.id)
        .options(joinedload(PoolEvent.actor), joinedload(PoolEvent.from_user), joinedload(PoolEvent.to_user))
        .order_by(PoolEvent.at.desc(), PoolEvent.id.desc()).limit(limit)))


