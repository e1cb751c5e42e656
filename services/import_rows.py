"""The customer import's columns and rows (D3): which customer field a header means
(Chinese or English), and one row of the file checked and turned into
:class:`services.customers.CustomerData`, with its problems named per field.

Problems are codes (:data:`PROBLEMS` holds their messages), so that a check's report
can be stored and shown later in the reader's language.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from extensions import db
from models import CustomerType, Importance, Source, Stage, Tag, User
from services import import_files, phones, policy
from services.customers import CustomerData

# Fields a column may be mapped to, in the order the mapping form lists them. The
# ones marked many may come from several columns (two phone columns, say).
FIELDS = {
    "name": _l("Name"), "company": _l("Company"), "phone": _l("Mobile"), "landline": _l("Landline"),
    "email": _l("Email"), "address": _l("Address"), "region": _l("Region"), "type": _l("Type"),
    "stage": _l("Stage"), "importance": _l("Importance"), "source": _l("Source"),
    "birthday": _l("Birthday"), "owner": _l("Owner"), "tags": _l("Tags"), "note": _l("First note"),
}
MANY = frozenset({"phone", "landline", "tags", "note"})
LENGTHS = {"name": 100, "company": 200, "email": 254, "address": 300, "region": 50}
TAG_LENGTH = 32

HEADERS = {
    "name": ("姓名", "客户名称", "客户姓名", "联系人", "客户", "名称", "name", "customer", "customername",
             "contact", "contactname", "fullname"),
    "company": ("公司", "单位", "公司名称", "单位名称", "企业", "企业名称", "company", "companyname",
                "organisation", "organization"),
    "phone": ("手机", "手机号", "手机号码", "电话", "联系电话", "电话号码", "移动电话", "联系方式", "mobile",
              "phone", "mobilephone", "cellphone", "tel", "telephone"),
    "landline": ("座机", "固话", "固定电话", "办公电话", "landline", "officephone"),
    "email": ("邮箱", "电子邮箱", "电子邮件", "邮件", "email", "e-mail", "mail"),
    "address": ("地址", "联系地址", "详细地址", "通讯地址", "address"),
    "region": ("地区", "区域", "城市", "省份", "所在地区", "region", "area", "city"),
    "type": ("类型", "客户类型", "type", "customertype"),
    "stage": ("阶段", "客户阶段", "跟进阶段", "stage"),
    "importance": ("重要程度", "等级", "客户等级", "级别", "重要性", "importance", "level", "grade"),
    "source": ("来源", "渠道", "客户来源", "来源渠道", "source", "channel"),
    "birthday": ("生日", "出生日期", "birthday", "dateofbirth", "dob"),
    "owner": ("负责人", "业务员", "销售", "销售员", "归属人", "跟进人", "owner", "salesperson", "sales"),
    "tags": ("标签", "tags", "tag", "labels"),
    "note": ("备注", "说明", "备注信息", "note", "notes", "remark", "remarks", "comment", "comments"),
}
_BY_HEADER = {word: name for name, words in HEADERS.items() for word in words}

# Values of the choice fields as offices write them (lower case, no spaces).
VALUES: dict[str, dict[str, str]] = {
    "type": {"个人": CustomerType.INDIVIDUAL, "individual": CustomerType.INDIVIDUAL,
             "中小企业": CustomerType.SME, "企业": CustomerType.SME, "sme": CustomerType.SME,
             "smallbusiness": CustomerType.SME, "大客户": CustomerType.KEY_ACCOUNT,
             "keyaccount": CustomerType.KEY_ACCOUNT, "key_account": CustomerType.KEY_ACCOUNT,
             "ka": CustomerType.KEY_ACCOUNT},
    "stage": {"潜在": Stage.POTENTIAL, "潜在客户": Stage.POTENTIAL, "potential": Stage.POTENTIAL,
              "意向": Stage.INTENT, "意向客户": Stage.INTENT, "intent": Stage.INTENT,
              "成交": Stage.DEAL, "已成交": Stage.DEAL, "成交客户": Stage.DEAL, "deal": Stage.DEAL, "won": Stage.DEAL,
              "流失": Stage.LOST, "已流失": Stage.LOST, "lost": Stage.LOST},
    "importance": {"a": Importance.A, "b": Importance.B, "c": Importance.C, "重要": Importance.A,
                   "一般": Importance.B, "次要": Importance.C},
    "source": {"来电": Source.CALL, "电话": Source.CALL, "call": Source.CALL, "phonecall": Source.CALL,
               "到访": Source.VISIT, "上门": Source.VISIT, "visit": Source.VISIT, "walk-in": Source.VISIT,
               "转介绍": Source.REFERRAL, "介绍": Source.REFERRAL, "referral": Source.REFERRAL,
               "网络": Source.WEB, "网站": Source.WEB, "web": Source.WEB, "online": Source.WEB,
               "其他": Source.OTHER, "其它": Source.OTHER, "other": Source.OTHER},
}
DEFAULTS = {"type": CustomerType.INDIVIDUAL.value, "stage": Stage.POTENTIAL.value,
            "importance": Importance.B.value, "source": Source.OTHER.value}

PROBLEMS = {
    "name_missing": _l("The name is missing."),
    "too_long": _l("Too long."),
    "phone_invalid": _l("Not a phone number."),
    "phone_number_changed": _l("Not a phone number: Excel changed it into a number with decimals "
                               "(rounded). Format the column as text in Excel and type the number again."),
    "email_invalid": _l("Not an email address."),
    "owner_unknown": _l("No colleague who may own customers has this name."),
    "type_unknown": _l("Unknown type: use 个人, 中小企业 or 大客户."),
    "stage_unknown": _l("Unknown stage: use 潜在, 意向, 成交 or 流失."),
    "importance_unknown": _l("Unknown importance: use A, B or C."),
    "source_unknown": _l("Unknown source: use 来电, 到访, 转介绍, 网络 or 其他."),
    "birthday_invalid": _l("Not a date: use e.g. 2026-01-02."),
    "tag_too_long": _l("A tag is longer than 32 characters."),
}

_TAG_SPLIT = re.compile(r"[,，;；、/]")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")


def _word(header: str) -> str:
    """A header as compared: NFKC, lower case, without spaces, stars, colons and
    a bracketed remark (手机号（必填） → 手机号)."""
    word = unicodedata.normalize("NFKC", header or "").lower()
    word = re.sub(r"\(.*?\)", "", word)
    return re.sub(r"[\s*:_]", "", word)


def guess_mapping(headers: list[str]) -> list[str]:
    """For each column the field its header names, or "" (ignored). A field that
    may come from one column only takes the first column naming it."""
    mapping, taken = [], set()
    for header in headers:
        name = _BY_HEADER.get(_word(header), "")
        if name and name not in MANY and name in taken:
            name = ""
        taken.add(name)
        mapping.append(name)
    return mapping


def headers_key(headers: list[str]) -> str:
    """The key a header row's remembered mapping is stored under."""
    return hashlib.sha256("\x1f".join(_word(h) for h in headers).encode()).hexdigest()


def clean_mapping(mapping: list[str], width: int) -> list[str]:
    """``mapping`` made valid for ``width`` columns: unknown fields ignored, a
    one-column field kept on its first column only."""
    cleaned, taken = [], set()
    for name in (list(mapping) + [""] * width)[:width]:
        name = name if name in FIELDS else ""
        if name and name not in MANY and name in taken:
            name = ""
        taken.add(name)
        cleaned.append(name)
    return cleaned


# ---- rows ---------------------------------------------------------------------------

@dataclass
class CheckedRow:
    """One row of the file: the customer it would become (None when it has
    problems), the owner asked for ("" none, else a user id), tags, note text, its
    problems {field: code}, and the cells as text for the preview and the rejected
    file."""

    number: int
    cells: list[str]
    shown: dict[str, str]
    data: CustomerData | None = None
    owner_id: int | None = None
    tags: list[str] = field(default_factory=list)
    note: str = ""
    problems: dict[str, str] = field(default_factory=dict)


class Lookups:
    """Colleagues and tags by name, read once per check or import."""

    def __init__(self):
        users = db.session.scalars(select(User)).all()
        self.owners: dict[str, int] = {}
        for user in users:
            if policy.may_own_customers(user):
                for name in (user.username, user.display_name):
                    if name:
                        self.owners.setdefault(_word(name), user.id)
        self.tags: dict[str, int] = {}
        for tag_id, name in db.session.execute(select(Tag.id, Tag.name).order_by(Tag.id)):
            self.tags.setdefault(tag_word(name), tag_id)


def tag_word(name: str) -> str:
    """A tag name as compared (NFKC, lower case, trimmed)."""
    return unicodedata.normalize("NFKC", name).strip().lower()


def _choice(row: CheckedRow, name: str, raw: str) -> str:
    if not raw:
        return DEFAULTS[name]
    value = VALUES[name].get(_word(raw)) or VALUES[name].get(raw.strip().lower())
    if value is None and raw in {member.value for member in VALUES[name].values()}:
        value = raw
    if value is None:
        row.problems[name] = f"{name}_unknown"
        return DEFAULTS[name]
    return str(value)


def _phones(row: CheckedRow, values: dict[str, list]) -> list[tuple[str, str]]:
    found, seen = [], set()
    for name in ("phone", "landline"):
        for value in values.get(name, []):
            if import_files.not_whole_number(value):
                row.problems[name] = "phone_number_changed"
                continue
            raw = import_files.phone_text(value)
            for part in (p for p in re.split(r"[,，;；、/]", raw) if p.strip()):
                try:
                    digits = phones.normalise(part)
                except phones.InvalidPhone:
                    row.problems[name] = "phone_invalid"
                    continue
                kind = "mobile" if name == "phone" and phones.is_mobile(digits) else "landline"
                if digits not in seen:
                    seen.add(digits)
                    found.append((kind, digits))
    return found


def check_row(number: int, cells: list, mapping: list[str], lookups: Lookups) -> CheckedRow:
    """Row ``number`` of the file (its ``cells`` as read) checked against
    ``mapping``. Never raises: what is wrong is in the row's ``problems``."""
    values: dict[str, list] = {}
    for index, name in enumerate(mapping):
        if name and index < len(cells):
            values.setdefault(name, []).append(cells[index])
    texts = {name: " ".join(t for t in map(import_files.text, raw) if t) for name, raw in values.items()}
    row = CheckedRow(number, [import_files.text(c) for c in cells], shown=dict(texts))
    one = lambda name: texts.get(name, "")  # noqa: E731
    if not one("name"):
        row.problems["name"] = "name_missing"
    for name, limit in LENGTHS.items():
        if len(one(name)) > limit:
            row.problems[name] = "too_long"
    email = one("email").lower()
    if email and not _EMAIL.match(email):
        row.problems["email"] = "email_invalid"
    found_phones = _phones(row, values)
    row.shown["phone"] = ", ".join(phones.display(d) for _, d in found_phones) or one("phone")
    choices = {name: _choice(row, name, one(name)) for name in DEFAULTS}
    birthday = _birthday(row, values.get("birthday", [None])[0])
    owner = one("owner")
    if owner:
        row.owner_id = lookups.owners.get(_word(owner))
        if row.owner_id is None:
            row.problems["owner"] = "owner_unknown"
    row.tags = list(dict.fromkeys(t.strip() for t in _TAG_SPLIT.split(one("tags")) if t.strip()))
    if any(len(tag) > TAG_LENGTH for tag in row.tags):
        row.problems["tags"] = "tag_too_long"
    row.note = "\n".join(t for t in map(import_files.text, values.get("note", [])) if t)
    if not row.problems:
        row.data = CustomerData(name=one("name"), company=one("company"), phones=found_phones, email=email,
                                address=one("address"), region=one("region"), birthday=birthday, **choices)
    return row


def _birthday(row: CheckedRow, value):
    try:
        birthday = import_files.to_date(value)
    except (ValueError, OverflowError):
        row.problems["birthday"] = "birthday_invalid"
        return None
    if birthday is not None:
        row.shown["birthday"] = birthday.isoformat()
        if not 1900 <= birthday.year <= 2999:
            row.problems["birthday"] = "birthday_invalid"
    return birthday


def problem_text(code: str) -> str:
    return str(PROBLEMS.get(code, code))
