"""Realistic generated data for trying Deskbook out and for benchmarks. Like every
service, it flushes into the caller's transaction; the caller commits (and, after a
bulk load, runs ``extensions.refresh_statistics``)."""

from __future__ import annotations

import random
import re
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, insert, select, text

from extensions import db
from models import (
    COLOURS,
    Customer,
    CustomerNote,
    CustomerPhone,
    FollowUpTask,
    PoolEvent,
    PoolEventKind,
    Role,
    Tag,
    TagGroup,
    User,
    customer_tags,
    note_tags,
    utcnow,
)
from services import passwords, pool, settings

if TYPE_CHECKING:
    from faker import Faker

# A small office: mostly sales, a couple of front-desk staff, one manager.
ROLE_MIX = [Role.MANAGER] + [Role.SALES] * 6 + [Role.FRONTDESK] * 2


def _faker(seed: int) -> Faker:
    # Imported here: importing Faker takes about a third of a second, and only
    # the demo-data command and the benchmarks need it, not every app start.
    from faker import Faker

    fake = Faker(["zh_CN", "en_US"], use_weighting=True)
    fake.seed_instance(seed)
    return fake


def generate_users(count: int, password: str, *, seed: int = 1) -> list[User]:
    """Create ``count`` staff accounts (Chinese names, some English ones) sharing
    ``password``. Existing usernames are skipped, so running twice adds no
    duplicates. Returns the users created."""
    rng = random.Random(seed)
    fake = _faker(seed)
    taken = set(db.session.scalars(select(User.username)))
    password_hash = passwords.hash_password(password)
    created = []
    for index in range(count):
        locale = fake["en_US"] if rng.random() < 0.15 else fake["zh_CN"]
        username = re.sub(r"[^a-z0-9._-]", "", fake["en_US"].user_name().lower())[:24] or "user"
        while username in taken:
            username = f"{username[:24]}{rng.randint(10, 99)}"
        taken.add(username)
        user = User(
            username=username,
            display_name=locale.name(),
            role=ROLE_MIX[index % len(ROLE_MIX)],
            language=rng.choice([None, None, "zh", "en"]),
            password_hash=password_hash,
        )
        db.session.add(user)
        created.append(user)
    db.session.flush()
    return created


# ---- customers, notes, tags and tasks -------------------------------------------------

REGIONS = ["北京", "上海", "广州", "深圳", "杭州", "南京", "成都", "武汉", "西安", "苏州", "天津", "重庆"]
DEMO_TAGS = {
    "行业": ["制造业", "教育", "医疗", "零售", "互联网", "金融", "房地产", "物流"],
    "需求": ["报价", "试用", "售后", "续签", "定制开发", "培训"],
    "阶段": ["初次接触", "方案沟通", "商务谈判", "待回款"],
    "地区": ["华北", "华东", "华南", "西南"],
}
NOTE_PHRASES = [
    "客户来电咨询{product}的价格，已发送报价单。", "到访洽谈{product}合作，客户对方案比较满意。",
    "电话回访，客户表示下月续签合同。", "客户反馈{product}使用中遇到问题，已转技术支持。",
    "微信沟通了交付时间，客户希望提前一周。", "客户要求提供三家案例和资质证明。",
    "约好下周二上门演示{product}。", "客户预算有限，建议先试用基础版。",
    "Discussed the {product} renewal; the customer wants a discount for two years.",
    "Sent the contract draft by email, waiting for legal review.",
    "客户未接电话，稍后再联系。", "客户决策人变更，需要重新介绍{product}。",
]
PRODUCTS = ["CRM系统", "打印机", "办公家具", "云服务器", "财务软件", "安防设备", "培训课程"]
TASK_TITLES = ["回访客户", "发送报价单", "确认合同细节", "安排上门演示", "Send the renewal offer"]
KIND_WEIGHTS = [("call", 5), ("visit", 2), ("wechat", 3), ("email", 1), ("meeting", 1), ("other", 1)]


def _next_id(model) -> int:
    return (db.session.scalar(select(func.max(model.id))) or 0) + 1


def _bump_sequence(model) -> None:
    """After inserting explicit ids, move PostgreSQL's sequence past them."""
    if db.session.get_bind().dialect.name == "postgresql":
        table = model.__tablename__
        db.session.execute(text(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))"
        ))


def _insert(table, rows, chunk=5000) -> None:
    for start in range(0, len(rows), chunk):
        db.session.execute(insert(table), rows[start:start + chunk])


def _ensure_tags(rng) -> list[int]:
    groups = {g.name: g for g in db.session.scalars(select(TagGroup))}
    for position, (name, tag_names) in enumerate(DEMO_TAGS.items(), start=1):
        group = groups.get(name) or TagGroup(name=name, colour=COLOURS[position + 1], position=position)
        db.session.add(group)
        db.session.flush()
        existing = {t.name for t in group.tags}
        for tag_name in tag_names:
            if tag_name not in existing:
                db.session.add(Tag(group_id=group.id, name=tag_name))
    db.session.flush()
    return list(db.session.scalars(select(Tag.id)))


def generate_workspace(customers: int, notes: int, *, seed: int = 1, password: str) -> dict:
    """Customers (Faker zh_CN, some en_US) with phones and tags, notes spread over
    them (some customers with many), and open follow-up tasks. Bulk inserts with
    explicit ids: 100k customers and 500k notes take a few minutes. Returns counts.

    The data keeps the office's pool rules as they are set now: each salesperson
    owns fewer customers than their limit (room to claim at once), owned customers
    have a recent effective follow-up except a handful the owner is being warned
    about, and the rest wait in the public pool."""
    rng = random.Random(seed)
    fake = _faker(seed)
    sales = [u for u in db.session.scalars(select(User).where(User.role == Role.SALES, User.active.is_(True)))]
    if len(sales) < 3:
        generate_users(9, password, seed=seed + 1)
        sales = list(db.session.scalars(select(User).where(User.role == Role.SALES)))
    authors = list(db.session.scalars(select(User).where(User.active.is_(True))))
    tag_ids = _ensure_tags(rng)
    names = [fake["zh_CN"].name() for _ in range(3000)] + [fake["en_US"].name() for _ in range(500)]
    companies = [fake["zh_CN"].company() for _ in range(2000)] + [fake["en_US"].company() for _ in range(300)]
    addresses = [fake["zh_CN"].address().replace("\n", " ") for _ in range(2000)]
    now = utcnow()
    owners = _OwnerQuota(sales)
    first_customer = _next_id(Customer)
    customer_rows: list[dict] = []
    phone_rows: list[dict] = []
    tag_rows: list[dict] = []
    last_contact: dict[int, datetime] = {}
    for offset in range(customers):
        cid = first_customer + offset
        created = now - timedelta(days=rng.uniform(0, 730))
        has_company = rng.random() < 0.6
        customer_rows.append({
            "id": cid, "name": rng.choice(names), "company": rng.choice(companies) if has_company else "",
            "email": f"c{cid}@example.cn" if rng.random() < 0.4 else "", "address": rng.choice(addresses),
            "region": rng.choice(REGIONS), "type": rng.choice(["individual", "sme", "sme", "key_account"]),
            "stage": rng.choice(["potential", "potential", "intent", "deal", "lost"]),
            "importance": rng.choice("ABBCC"), "source": rng.choice(["call", "visit", "referral", "web", "other"]),
            "owner_id": owners.pick(rng) if rng.random() < 0.7 else None,
            "created_by_id": rng.choice(authors).id, "created_at": created, "updated_at": created,
            "owned_since": None, "pool_reason": "", "times_recycled": 0,
        })
        phone_rows.append({"customer_id": cid, "kind": "mobile", "position": 0,
                           "digits": f"1{rng.choice('3456789')}{rng.randrange(10**9):09d}"})
        if rng.random() < 0.15:
            phone_rows.append({"customer_id": cid, "kind": "landline", "position": 1,
                               "digits": f"0{rng.choice(['10', '21', '755', '571'])}{rng.randrange(10**8):08d}"})
        for tag_id in rng.sample(tag_ids, k=min(len(tag_ids), rng.choice([0, 1, 1, 2, 2, 3]))):
            tag_rows.append({"customer_id": cid, "tag_id": tag_id})
    note_rows = _note_rows(rng, customer_rows, notes, authors, last_contact, now)
    _keep_pool_rules(rng, customer_rows, note_rows, now)
    event_rows = _pool_event_rows(rng, customer_rows, sales, now)
    last_contact.clear()
    for row in note_rows:
        if row["created_at"] > (last_contact.get(row["customer_id"]) or row["created_at"] - timedelta(1)):
            last_contact[row["customer_id"]] = row["created_at"]
    for row in customer_rows:
        row["last_contact_at"] = last_contact.get(row["id"])
    _insert(Customer.__table__, customer_rows)
    _insert(CustomerPhone.__table__, phone_rows)
    _insert(customer_tags, tag_rows)
    _insert(CustomerNote.__table__, note_rows)
    _insert(note_tags, [{"note_id": r["id"], "tag_id": rng.choice(tag_ids)}
                        for r in note_rows if rng.random() < 0.2])
    task_rows = [
        {"customer_id": r["id"], "assignee_id": r["owner_id"], "created_by_id": r["owner_id"],
         "title": rng.choice(TASK_TITLES), "due_date": (now + timedelta(days=rng.randint(-5, 20))).date(),
         "created_at": now}
        for r in customer_rows if r["owner_id"] and rng.random() < 0.3
    ]
    _insert(FollowUpTask.__table__, task_rows)
    _insert(PoolEvent.__table__, event_rows)
    for model in (Customer, CustomerNote):
        _bump_sequence(model)
    return {"customers": len(customer_rows), "notes": len(note_rows), "tasks": len(task_rows)}


def _note_rows(rng, customer_rows, count, authors, last_contact, now) -> list[dict]:
    """``count`` notes; a tenth of the customers get most of them, as in real life."""
    if not customer_rows or not count:
        return []
    busy = customer_rows[: max(1, len(customer_rows) // 10)]
    kinds = [kind for kind, weight in KIND_WEIGHTS for _ in range(weight)]
    first_note = _next_id(CustomerNote)
    rows = []
    for offset in range(count):
        customer = rng.choice(busy) if rng.random() < 0.6 else rng.choice(customer_rows)
        created = customer["created_at"] + (now - customer["created_at"]) * rng.random()
        body = rng.choice(NOTE_PHRASES).format(product=rng.choice(PRODUCTS))
        rows.append({
            "id": first_note + offset, "customer_id": customer["id"],
            "author_id": customer["owner_id"] or rng.choice(authors).id, "kind": rng.choice(kinds),
            "body": body, "sections": {}, "created_at": created,
        })
        if created > (last_contact.get(customer["id"]) or created - timedelta(1)):
            last_contact[customer["id"]] = created
    return rows


# ---- the pool rules: limits, recycling clocks, pool history ----------------------------

class _OwnerQuota:
    """Hands out owners so that nobody ends up at their limit: each salesperson gets
    at most their limit minus a margin (a fifth, at least two), counting what they
    own already; once everybody is full, customers go to the pool."""

    def __init__(self, sales: list[User]):
        self.room = {}
        for user in sales:
            limit = pool.owner_limit(user)
            self.room[user.id] = max(0, limit - max(2, limit // 5) - pool.owned_count_all(user.id))

    def pick(self, rng) -> int | None:
        open_ = [user_id for user_id, room in self.room.items() if room > 0]
        if not open_:
            return None
        user_id = rng.choice(open_)
        self.room[user_id] -= 1
        return user_id


def _keep_pool_rules(rng, customer_rows, note_rows, now) -> None:
    """Owned customers get an owner since (a day or more ago, so today's claims are
    free) and a recent effective follow-up, except about one in twelve (at most three
    per owner), whose last follow-up leaves 1 to warn_days days before recycling."""
    days, warn = settings.get("pool.recycle_days"), settings.get("pool.warn_days")
    kinds = [k for k in settings.get("pool.effective_kinds") if k in dict(KIND_WEIGHTS)] or ["call"]
    protected = set(settings.get("pool.protected_stages"))
    owned = {r["id"]: r for r in customer_rows if r["owner_id"]}
    notes_of: dict[int, list[dict]] = {}
    for note in note_rows:
        if note["customer_id"] in owned:
            notes_of.setdefault(note["customer_id"], []).append(note)
    warned: dict[int, int] = {}
    for cid, row in owned.items():
        age = (now - row["created_at"]).total_seconds() / 86400
        row["owned_since"] = row["created_at"] + timedelta(days=age * rng.uniform(0.3, 0.9))
        row["owned_since"] = max(row["created_at"], min(row["owned_since"], now - timedelta(days=1)))
        if row["stage"] in protected:
            continue
        left = rng.randint(1, max(1, warn))
        reset_at = now - timedelta(days=days - left, hours=1)
        if (warn and warned.get(row["owner_id"], 0) < 3 and rng.random() < 1 / 12
                and row["created_at"] < reset_at - timedelta(days=1)):
            warned[row["owner_id"]] = warned.get(row["owner_id"], 0) + 1
        else:
            reset_at = now - timedelta(days=rng.uniform(1, max(1.1, days - warn - 1)))  # before today's claims
        _reset_clock(rng, row, notes_of.get(cid, []), reset_at, kinds)


def _reset_clock(rng, row, notes, reset_at, kinds) -> None:
    """Make ``reset_at`` the customer's last effective follow-up (its newest note,
    made an effective kind), or — without notes — the moment the owner got it."""
    reset_at = max(reset_at, row["created_at"])
    for note in notes:
        if note["created_at"] > reset_at:
            note["created_at"] = row["created_at"] + (reset_at - row["created_at"]) * rng.random()
    if notes:
        newest = max(notes, key=lambda note: note["created_at"])
        newest["created_at"], newest["kind"] = reset_at, rng.choice(kinds)
        row["owned_since"] = min(row["owned_since"], reset_at)
    else:
        row["owned_since"] = reset_at


def _event_row(customer_id, kind, at, *, actor=None, from_user=None, to_user=None, reason="") -> dict:
    return {"customer_id": customer_id, "kind": kind, "at": at, "actor_id": actor, "from_user_id": from_user,
            "to_user_id": to_user, "reason": reason, "details": {}}


def _pool_event_rows(rng, customer_rows, sales, now) -> list[dict]:
    """A pool history: owned customers were claimed; pool customers entered the pool
    new, or were recycled from a salesperson (longer ago than a reclaim lock lasts)."""
    days = str(settings.get("pool.recycle_days"))
    long_ago = int(days) + settings.get("pool.reclaim_lock_days") + 15  # recycled, and the lock over
    rows = []
    for row in customer_rows:
        if row["owner_id"]:
            rows.append(_event_row(row["id"], PoolEventKind.CLAIM, row["owned_since"],
                                   actor=row["owner_id"], to_user=row["owner_id"]))
            continue
        rows.append(_event_row(row["id"], PoolEventKind.CREATE_IN_POOL, row["created_at"], actor=row["created_by_id"]))
        row["pool_reason"] = "new"
        if sales and (now - row["created_at"]).days > long_ago and rng.random() < 0.3:
            owner = rng.choice(sales).id
            claimed = row["created_at"] + timedelta(days=rng.uniform(1, 10))
            rows.append(_event_row(row["id"], PoolEventKind.CLAIM, claimed, actor=owner, to_user=owner))
            rows.append(_event_row(row["id"], PoolEventKind.RECYCLE, claimed + timedelta(days=int(days) + 1),
                                   from_user=owner, reason=days))
            row["pool_reason"], row["times_recycled"] = "recycled", 1
    return rows
