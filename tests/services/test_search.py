"""Search (S1–S4): what is found, by whom, and that the index follows every change.
A real Whoosh index on disk in each test's instance folder."""

import gc
import functools
import os
import random
import shutil
import threading
import time
from datetime import datetime

import pytest
from faker import Faker
from sqlalchemy import func, insert, select, update
from whoosh import index

from extensions import db, reading_only, refresh_statistics
from models import Customer, CustomerNote, SearchBacklog
from services import customers, merge, notes, pool, search, settings, tags
from services.customers import CustomerData
from services.notes import NoteData
from services.search import analysis, store
from tests.conftest import TEST_PASSWORD
from tests.factories import make_customer, make_note

NASTY = ['"', "'", ":", "name:张", "*", "?", "张*", "[1 TO 9]", "(", ")", "{}", "AND", "OR", "NOT",
         "a AND NOT b", "\\", "%", "_", "😀" * 500, "x" * 500, "伟" * 500, "\x00\x01\x1f", "\t\n",
         "   ", "", "<script>", "' OR 1=1 --", "+86", "0086", "+", "-", "１２３４"]


@pytest.fixture
def staff(staff):
    """tests/services/conftest.py's staff, with claims unlimited for the day."""
    settings.update(staff["admin"], {"pool.max_daily_claims": 1000})
    db.session.commit()
    return staff


# Saved as the entry forms save them: created, then committed (the index follows commits).
_customer = functools.partial(make_customer, commit=True)
_note = functools.partial(make_note, commit=True)


def _names(found):
    return [c.name for c in found.items]


def _all_ids(find, user, text, **kwargs):
    """Every id found for ``text``, through all pages."""
    ids, page = [], 1
    while True:
        found = find(user, text, page=page, per_page=50, **kwargs)
        ids += [item.id for item in found.items]
        if not found.has_next:
            return ids
        page += 1


# ---- analysis ------------------------------------------------------------------------------

def test_cjk_text_becomes_single_characters_and_pairs():
    assert list(analysis.lookup_terms("张伟强")) == ["张", "伟", "强", "张伟", "伟强"]
    assert list(analysis.note_terms("签合同")) == ["签合", "合同"]
    assert list(analysis.note_terms("价")) == ["价"]


def test_latin_words_are_indexed_with_their_prefixes():
    assert list(analysis.lookup_terms("Zhang")) == ["zh", "zha", "zhan", "zhang"]
    assert list(analysis.lookup_terms("ＡＢＣ")) == ["ab", "abc"]  # full-width folded


def test_pinyin_covers_initials_endings_and_heteronyms():
    words = analysis.pinyin_words("张伟")
    assert {"zhangwei", "wei", "zw", "w"} <= set(words)
    assert {"shantianfang", "dantianfang", "stf"} <= set(analysis.pinyin_words("单田芳"))
    assert {"zengguofan", "cengguofan"} <= set(analysis.pinyin_words("曾国藩"))
    assert analysis.pinyin_words("John Smith") == []


@pytest.mark.parametrize("typed, digits", [
    ("13812345678", "13812345678"), ("138 1234 5678", "13812345678"), ("138-1234-5678", "13812345678"),
    ("+86 138 1234 5678", "13812345678"), ("0086 13812345678", "13812345678"),
    ("8613812345678", "13812345678"), ("(+86) 138 1234 5678", "13812345678"), ("１３８１２３４５６７８", "13812345678"),
    ("(010) 6552-9988", "01065529988"),
    ("5678", "5678"), ("123", ""), ("张 5678", ""),
])
def test_a_phone_typed_any_way_is_read_as_its_digits(typed, digits):
    assert analysis.QueryWords(typed).phone == digits


def test_traditional_characters_fold_to_simplified():
    assert analysis.normalise("張偉 報價 ＡＢＣ") == "张伟 报价 abc"
    assert analysis.QueryWords("張偉").cjk == ["张伟"]
    assert list(analysis.lookup_terms("陳")) == ["陈"]
    assert "chenjing" in analysis.pinyin_words("陳靜")


def test_query_words_are_bounded_and_plain():
    words = analysis.QueryWords("a b c d e f g h i j k l " + "伟" * 500)
    assert len(words.words) + len(words.cjk) <= analysis.MAX_QUERY_WORDS
    assert not analysis.QueryWords('"*:()[]{}?\\')
    assert not analysis.QueryWords("😀" * 500)


# ---- recall on a generated set ----------------------------------------------------------------

NOTE_WORDS = ["报价", "合同", "续签", "发票", "样品", "回款", "验收", "培训"]


@pytest.fixture
def generated(app, staff):
    """60 customers (Faker zh_CN and en_US, seeded) with phones, emails, companies,
    addresses, and notes that each hold a known word inside a sentence."""
    rng = random.Random(5)
    fake_zh, fake_en = Faker("zh_CN"), Faker("en_US")
    fake_zh.seed_instance(5)
    fake_en.seed_instance(5)
    made = []
    admin = staff["admin"]
    for n in range(60):
        fake = fake_en if n % 6 == 0 else fake_zh
        phone = f"1{rng.choice('3456789')}{rng.randrange(10**9):09d}"
        customer = _customer(admin, fake.name(), company=fake_zh.company(), email=fake.email(),
                             address=fake_zh.address().replace("\n", " "), phones=[("mobile", phone)])
        word = NOTE_WORDS[n % len(NOTE_WORDS)]
        note = _note(admin, customer, f"{fake_zh.sentence()}客户提到{word}的事情，{fake_zh.sentence()}")
        made.append({"id": customer.id, "name": customer.name, "company": customer.company,
                     "email": customer.email, "address": customer.address, "phone": phone,
                     "note": note.id, "word": word})
    return made


def _cjk(text):
    return "".join(ch for ch in text if "\u4e00" <= ch <= "\u9fff")


def _queries(record):
    """(class, typed text) pairs that must find ``record``."""
    name, phone = record["name"], record["phone"]
    found = [("full name", name), ("phone whole", phone), ("phone last 4", phone[-4:]),
             ("phone last 6", phone[-6:]), ("phone spaced", f"{phone[:3]} {phone[3:7]} {phone[7:]}"),
             ("phone dashed +86", f"+86 {phone[:3]}-{phone[3:7]}-{phone[7:]}"),
             ("phone full-width", phone.translate(str.maketrans("0123456789", "０１２３４５６７８９"))),
             ("email", record["email"]), ("email part", record["email"].split("@")[0])]
    chinese = _cjk(name)
    if chinese:
        found += [("name character", chinese[-1]), ("name pair", chinese[-2:])]
        spellings = analysis.pinyin_words(chinese)
        full = max(spellings, key=len)
        initials = "".join(w for w in spellings if len(w) == len(chinese))[:len(chinese)] or full[:2]
        found += [("pinyin", full), ("pinyin initials", initials)]
    else:
        found += [("latin name part", name.split()[-1][:4])]
    company = _cjk(record["company"])
    if len(company) >= 4:
        found.append(("company part", company[1:4]))
    address = _cjk(record["address"])
    if len(address) >= 4:
        found.append(("address part", address[2:5]))
    return found


def test_every_class_of_query_finds_its_customer(app, staff, generated):
    misses = []
    admin = db.session.get(type(staff["admin"]), staff["admin"].id)
    for record in generated:
        for kind, typed in _queries(record):
            if record["id"] not in _all_ids(search.search_customers, admin, typed):
                misses.append((kind, typed, record["name"]))
    assert misses == []


def test_initials_find_the_name():
    # pinyin_words lists the initials of the whole name among its spellings
    assert "zw" in analysis.pinyin_words("张伟")


def test_the_obvious_match_comes_first(app, staff, generated):
    admin = db.session.get(type(staff["admin"]), staff["admin"].id)
    for record in generated:
        assert search.search_customers(admin, record["phone"]).items[0].id == record["id"]
        top = search.search_customers(admin, record["name"]).items[0]
        assert top.name == record["name"]


def test_note_words_inside_sentences_are_found(app, staff, generated):
    admin = db.session.get(type(staff["admin"]), staff["admin"].id)
    for word in NOTE_WORDS:
        expected = {r["note"] for r in generated if r["word"] == word}
        assert expected <= set(_all_ids(search.search_notes, admin, word)), word
    assert search.search_notes(admin, "不存在的词").total == 0


def test_short_names_rank_before_longer_ones_with_the_same_part(app, staff):
    admin = staff["admin"]
    for name in ("李伟强", "张伟", "王伟明"):
        _customer(admin, name)
    assert _names(search.search_customers(admin, "张伟"))[0] == "张伟"
    assert set(_names(search.search_customers(admin, "伟"))) == {"李伟强", "张伟", "王伟明"}
    assert _names(search.search_customers(admin, "zw")) == ["张伟"]
    assert _names(search.search_customers(admin, "zhang wei")) == ["张伟"]
    assert _names(search.search_customers(admin, "张 伟")) == ["张伟"]


def test_tags_are_found_on_customers_and_notes(app, staff):
    admin = staff["admin"]
    group = tags.create_group(admin, "行业")
    db.session.commit()
    tag = tags.create_tag(admin, group.id, "医疗器械")
    db.session.commit()
    customer = _customer(admin, "赵敏")
    customers.set_tags(admin, customer, [tag.id])
    db.session.commit()
    note = _note(admin, customer, "电话沟通", tag_ids=[tag.id])
    assert _names(search.search_customers(admin, "医疗")) == ["赵敏"]
    assert [n.id for n in search.search_notes(admin, "器械").items] == [note.id]
    assert _names(search.search_customers(admin, "赵", tag_ids=[tag.id])) == ["赵敏"]
    assert search.search_customers(admin, "赵", tag_ids=[tag.id + 999]).items == []


@pytest.mark.parametrize("typed", NASTY)
def test_any_typed_text_gives_results_or_nothing(app, staff, typed):
    _customer(staff["admin"], "张伟", phones=[("mobile", "13812345678")])
    for find in (search.search_customers, search.search_notes):
        found = find(staff["sales"], typed)
        assert isinstance(found.items, list) and found.total >= len(found.items)


# ---- permissions ------------------------------------------------------------------------------

@pytest.fixture
def owned(app, staff):
    """A pool customer, one owned by each salesperson, notes by each on each."""
    made = {
        "pool": _customer(staff["admin"], "池中客户甲"),
        "mine": _customer(staff["admin"], "我的客户甲", owner_id=staff["sales"].id),
        "theirs": _customer(staff["admin"], "别人客户甲"),
    }
    _note(staff["sales"], made["theirs"], "我写在别人客户上的报价")  # while it was in the pool
    _note(staff["frontdesk"], made["theirs"], "前台登记报价")
    pool.claim_customer(staff["sales2"], made["theirs"].id)
    db.session.commit()
    for key, customer in made.items():
        _note(staff["sales2"] if key == "theirs" else staff["admin"], customer, f"{key}记录报价")
    return {key: c.id for key, c in made.items()}


def test_sales_find_only_pool_and_own_customers_not_even_as_a_count(app, staff, owned):
    found = search.search_customers(staff["sales"], "客户甲")
    assert sorted(c.id for c in found.items) == sorted([owned["pool"], owned["mine"]])
    assert found.total == 2
    assert search.search_customers(staff["sales"], "别人").total == 0
    assert search.search_customers(staff["sales2"], "客户甲").total == 2


def test_notes_follow_the_policy_for_every_role(app, staff, owned):
    def bodies(user):
        found = search.search_notes(user, "报价", per_page=50)
        assert found.total == len(found.items)
        return sorted(n.body for n in found.items)

    everything = sorted(["pool记录报价", "mine记录报价", "theirs记录报价", "我写在别人客户上的报价", "前台登记报价"])
    assert bodies(staff["admin"]) == everything
    assert bodies(staff["manager"]) == everything
    assert bodies(staff["sales"]) == sorted(["pool记录报价", "mine记录报价", "我写在别人客户上的报价"])
    # the owner reads every note on their customer, whoever wrote it
    assert bodies(staff["sales2"]) == sorted(
        ["pool记录报价", "theirs记录报价", "我写在别人客户上的报价", "前台登记报价"])
    assert bodies(staff["frontdesk"]) == ["前台登记报价"]


def test_nobody_finds_anything_when_signed_out_or_deactivated(app, staff, owned):
    assert search.search_customers(None, "客户甲").total == 0
    user = staff["sales"]
    user.active = False
    db.session.commit()
    assert search.search_customers(user, "客户甲").total == 0
    assert search.search_notes(user, "报价").total == 0


def test_archived_only_when_asked_and_allowed(app, staff, owned):
    customer = db.session.get(Customer, owned["pool"])
    customers.archive(staff["admin"], customer)
    db.session.commit()
    assert owned["pool"] not in [c.id for c in search.search_customers(staff["manager"], "客户甲").items]
    assert [c.id for c in search.search_customers(staff["manager"], "客户甲", archived=True).items] == [owned["pool"]]
    assert search.search_notes(staff["manager"], "pool记录").total == 0
    assert search.search_notes(staff["manager"], "pool记录", archived=True).total == 1
    # sales may not search the archive: the flag is ignored
    assert owned["pool"] not in [c.id for c in search.search_customers(staff["sales"], "客户甲", archived=True).items]


def test_a_stale_index_entry_shows_nothing_the_policy_forbids(app, staff, owned):
    # The owner changes behind the index's back (no backlog row): the index still
    # says "pool", the database says someone else's.
    db.session.execute(update(Customer).where(Customer.id == owned["pool"]).values(owner_id=staff["sales2"].id))
    db.session.commit()
    assert owned["pool"] not in [c.id for c in search.search_customers(staff["sales"], "池中").items]


# ---- always in sync -----------------------------------------------------------------------------

def _ids(user, text, **kwargs):
    return [c.id for c in search.search_customers(user, text, **kwargs).items]


def test_edits_show_at_once(app, staff):
    admin = staff["admin"]
    customer = _customer(admin, "周杰", phones=[("mobile", "13900001111")])
    customers.update_customer(admin, customer, CustomerData(name="周杰伦", phones=[("mobile", "13700002222")]),
                              acknowledge_duplicates=True)
    db.session.commit()
    assert _ids(admin, "杰伦") == [customer.id]
    assert _ids(admin, "1111") == [] and _ids(admin, "2222") == [customer.id]
    assert _ids(admin, "zjl") == [customer.id]


def test_archive_restore_and_purge(app, staff):
    admin = staff["admin"]
    customer = _customer(admin, "孙悟空")
    note_id = _note(admin, customer, "花果山报价").id
    customers.archive(admin, customer)
    db.session.commit()
    assert _ids(admin, "悟空") == [] and search.search_notes(admin, "花果山").total == 0
    customers.restore(admin, customer)
    db.session.commit()
    assert _ids(admin, "悟空") == [customer.id]
    assert [n.id for n in search.search_notes(admin, "花果山").items] == [note_id]
    customers.archive(admin, customer)
    db.session.commit()
    customers.purge(admin, customer, "孙悟空")
    db.session.commit()
    assert _ids(admin, "悟空", archived=True) == []
    assert search.search_notes(admin, "花果山", archived=True).total == 0
    assert search.check().ok


def test_note_edit_and_delete(app, staff):
    admin = staff["admin"]
    customer = _customer(admin, "唐僧")
    note = _note(admin, customer, "取经合同")
    notes.edit_note(admin, note, NoteData(kind="call", body="取经发票"))
    db.session.commit()
    assert search.search_notes(admin, "合同").total == 0
    assert search.search_notes(admin, "发票").total == 1
    notes.delete_note(admin, note)
    db.session.commit()
    assert search.search_notes(admin, "发票").total == 0


def test_claim_and_release_move_customers_and_their_notes_in_and_out_of_view(app, staff):
    sales, sales2 = staff["sales"], staff["sales2"]
    customer = _customer(staff["admin"], "猪八戒")
    _note(staff["admin"], customer, "高老庄回款")
    pool.claim_customer(sales2, customer.id)
    db.session.commit()
    assert _ids(sales, "八戒") == [] and search.search_notes(sales, "回款").total == 0
    pool.release_to_pool(sales2, db.session.get(Customer, customer.id), "no_need")
    db.session.commit()
    assert _ids(sales, "八戒") == [customer.id] and search.search_notes(sales, "回款").total == 1


def test_merge_moves_notes_to_the_kept_customer_and_undo_moves_them_back(app, staff):
    admin = staff["admin"]
    keep, drop = _customer(admin, "沙和尚", owner_id=staff["sales"].id), _customer(admin, "沙悟净")
    note_id = _note(admin, drop, "流沙河验收").id
    merge.merge_customers(admin, keep, drop)
    db.session.commit()
    assert _ids(admin, "悟净") == []
    assert search.search_notes(staff["sales2"], "验收").total == 0  # now on sales' own customer
    assert search.search_notes(staff["sales"], "验收").items[0].id == note_id
    merge.undo_merge(admin, db.session.get(Customer, drop.id))
    db.session.commit()
    assert _ids(admin, "悟净") == [drop.id]
    assert search.search_notes(staff["sales2"], "验收").total == 1
    assert search.check().ok


def test_tag_rename_merge_and_delete_show_at_once(app, staff):
    admin = staff["admin"]
    group = tags.create_group(admin, "来源")
    db.session.commit()
    old, other = tags.create_tag(admin, group.id, "展会"), tags.create_tag(admin, group.id, "朋友")
    db.session.commit()
    customer = _customer(admin, "白龙马")
    customers.set_tags(admin, customer, [old.id])
    db.session.commit()
    _note(admin, customer, "电话", tag_ids=[old.id])
    tags.rename_tag(admin, old, "博览会")
    db.session.commit()
    assert _ids(admin, "博览") == [customer.id] and _ids(admin, "展会") == []
    assert search.search_notes(admin, "博览").total == 1
    tags.merge_tags(admin, db.session.get(type(old), old.id), other)
    db.session.commit()
    assert _ids(admin, "博览") == [] and _ids(admin, "朋友") == [customer.id]
    tags.delete_tag(admin, db.session.get(type(other), other.id))
    db.session.commit()
    assert _ids(admin, "朋友") == [] and search.search_notes(admin, "朋友").total == 0
    assert search.check().ok


def test_a_failed_transaction_leaves_the_index_alone(app, staff):
    admin = staff["admin"]
    customer = Customer(name="牛魔王", created_by_id=admin.id)
    db.session.add(customer)
    db.session.flush()
    db.session.rollback()
    assert _ids(admin, "牛魔") == []
    assert db.session.scalar(select(func.count()).select_from(SearchBacklog)) == 0


def test_a_busy_index_keeps_the_change_for_the_next_writer(app, staff):
    admin = staff["admin"]
    _customer(admin, "先有客户")  # the index exists
    app.config["SEARCH_LOCK_TIMEOUT"] = 0.05
    with store.locked("write.lock", 1):
        customer = _customer(admin, "红孩儿")  # saved; its index write had to wait
    assert db.session.scalar(select(func.count()).select_from(SearchBacklog)) >= 1
    assert _ids(admin, "红孩") == []
    db.session.commit()  # outside a request, a read holds SQLite's write lock until then
    assert search.drain() >= 1
    assert _ids(admin, "红孩") == [customer.id]
    assert db.session.scalar(select(func.count()).select_from(SearchBacklog)) == 0


def test_a_save_settles_its_backlog_and_leftovers_in_one_writing_statement(app, staff):
    """Applying a save's backlog: one read, then one statement that deletes the rows
    applied and, no rebuild running, the rows a stopped rebuild left marked as
    applied to the live index — not a transaction more to look for them."""
    from tests.conftest import statements_run

    admin = staff["admin"]
    customer = _customer(admin, "铁扇公主")  # the index exists
    db.session.execute(insert(SearchBacklog), [{"kind": "customer", "ref_id": customer.id, "applied_live": True}])
    db.session.commit()  # a leftover of a stopped rebuild; nothing waits to be applied
    with statements_run(db.engine) as statements:
        _note(admin, customer, "芭蕉扇报价")
    backlog = [s.split()[0].upper() for s in statements if "search_backlog" in s]
    assert backlog == ["INSERT", "SELECT", "DELETE"]
    assert db.session.scalar(select(func.count()).select_from(SearchBacklog)) == 0
    assert search.search_notes(admin, "芭蕉扇").total == 1


def test_a_drain_with_nothing_to_apply_still_forgets_leftovers(app, staff):
    admin = staff["admin"]
    customer = _customer(admin, "铁扇公主")
    db.session.execute(insert(SearchBacklog), [{"kind": "customer", "ref_id": customer.id, "applied_live": True}])
    db.session.commit()
    assert search.drain() == 0
    assert db.session.scalar(select(func.count()).select_from(SearchBacklog)) == 0


def _segments(which: str) -> int:
    return len(store.open_index(which, store.current_generation())._segments())


def test_a_bulk_write_replaces_changed_entries_once_each_in_one_segment(app, staff, monkeypatch):
    """A bulk drain (an import's) reads the backlog a few rows at a time into one
    writer per index: a changed customer's old entry goes, a note named twice (as
    itself and among its customer's notes) is added once, new entries come in."""
    from services.search import sync

    admin = staff["admin"]
    old = _customer(admin, "白骨精", phone="13700001111")
    note = _note(admin, old, "初次报价")
    segments = {which: _segments(which) for which in (store.CUSTOMERS, store.NOTES)}
    monkeypatch.setattr(sync, "BATCH", 1)
    with search.deferred():  # applied once, at the end of the block
        db.session.execute(update(Customer).where(Customer.id == old.id).values(name="白龙马"))
        sync.mark(sync.NOTE, [note.id])
        sync.mark_customers([old.id], with_notes=True)
        new = [make_customer(admin, f"沙和尚{n}") for n in range(3)]
        db.session.commit()
        assert _ids(admin, "沙和尚") == []  # not yet
        db.session.commit()  # outside a request, a read holds SQLite's write lock until then
    assert db.session.scalar(select(func.count()).select_from(SearchBacklog)) == 0
    assert _ids(admin, "白骨精") == [] and _ids(admin, "白龙马") == [old.id] and _ids(admin, "1111") == [old.id]
    assert [n.id for n in search.search_notes(admin, "报价").items] == [note.id]
    assert search.search_notes(admin, "报价").total == 1
    assert sorted(_ids(admin, "沙和尚")) == sorted(c.id for c in new)
    assert {which: _segments(which) for which in segments} == {which: n + 1 for which, n in segments.items()}
    assert search.check().ok


def test_a_large_bulk_write_indexes_half_its_customers_in_a_second_process(app, staff, monkeypatch):
    """An import of many customers: the later half of them is indexed by a second
    process (a real one) while this one indexes the rest; its segment comes in with
    this one's, old entries of the customers it wrote are deleted, and its folder goes."""
    from services.search import build, sync

    admin = staff["admin"]
    old = _customer(admin, "白骨精", phone="13700001111")
    segments = _segments(store.CUSTOMERS)
    started = []
    real_start = build.start_customers_aside
    monkeypatch.setattr(build, "start_customers_aside",
                        lambda ids, folder: started.append(ids) or real_start(ids, folder))
    monkeypatch.setattr(sync, "ASIDE_MIN", 4)
    monkeypatch.setattr(sync, "BATCH", 3)
    with search.deferred():
        new = [make_customer(admin, f"沙和尚{n}", phone=f"1390000{n:04d}") for n in range(9)]
        db.session.commit()
        db.session.execute(update(Customer).where(Customer.id == old.id).values(name="白龙马"))
        sync.mark_customers([old.id])
        db.session.commit()
    assert started == [sorted(c.id for c in [old, *new])[5:]]  # the later half, the changed customer too
    assert db.session.scalar(select(func.count()).select_from(SearchBacklog)) == 0
    assert sorted(_ids(admin, "沙和尚")) == sorted(c.id for c in new)
    assert _ids(admin, "13900000008") == [new[8].id]
    assert _ids(admin, "白骨精") == [] and _ids(admin, "白龙马") == [old.id]
    assert _segments(store.CUSTOMERS) == segments + 2  # this process's and the other's
    assert not os.path.exists(os.path.join(store.root(), store.current_generation(), "adding-customers"))
    assert search.check().ok


def test_a_customer_both_processes_indexed_is_kept_once_as_this_one_read_it(app, staff):
    """A customer changed again after the second process was given it is read by
    this one too: the entry this one wrote stays, the other process's is dropped."""
    from services.search.backlog import BulkWriters, Changes, reading_session

    admin = staff["admin"]
    customer = _customer(admin, "猪八戒")
    other = _customer(admin, "沙悟净")
    generation = store.current_generation()
    folder = os.path.join(store.root(), generation, "adding-customers")
    os.makedirs(folder)
    side = store.writer(index.create_in(folder, store.SCHEMAS[store.CUSTOMERS]()))
    with reading_only(), reading_session() as session:
        stale = Changes.load(session, {("customer", customer.id), ("customer", other.id)})
    keys = list(stale.add[store.CUSTOMERS])
    for key in keys:
        side.add_document(**stale.add[store.CUSTOMERS][key])
    store.commit(side, merge=False)
    db.session.execute(update(Customer).where(Customer.id == customer.id).values(name="天蓬元帅"))
    db.session.commit()
    with reading_only(), reading_session() as session:
        fresh = Changes.load(session, {("customer", customer.id), ("customer", other.id)})
    fresh.add[store.CUSTOMERS].pop(f"c{other.id}")  # only the changed one read here
    with BulkWriters(generation) as writers:
        writers.write(fresh)
    with BulkWriters(generation) as apart:
        apart.add_segment(store.CUSTOMERS, folder, keys, drop=writers.added[store.CUSTOMERS])
    assert _ids(admin, "猪八戒") == [] and _ids(admin, "天蓬元帅") == [customer.id]
    assert _ids(admin, "沙悟净") == [other.id]
    assert search.search_customers(admin, "天蓬元帅").total == 1


def test_a_second_process_that_fails_leaves_its_customers_to_this_one(app, staff, monkeypatch):
    from services.search import build, sync

    class Failed:
        def __init__(self, ids, folder):
            self.ids, self.folder, self.stopped = ids, folder, False

        def keys(self, timeout):
            raise RuntimeError("indexing customers in a second process failed: killed")

        def stop(self):
            self.stopped = True

    admin = staff["admin"]
    monkeypatch.setattr(build, "start_customers_aside", Failed)
    monkeypatch.setattr(sync, "ASIDE_MIN", 2)
    with search.deferred():
        new = [make_customer(admin, f"哪吒{n}") for n in range(4)]
        db.session.commit()
    assert sorted(_ids(admin, "哪吒")) == sorted(c.id for c in new)
    assert db.session.scalar(select(func.count()).select_from(SearchBacklog)) == 0
    assert search.check().ok


def test_delete_terms_deletes_what_holds_a_term_and_skips_absent_ones(app, staff):
    from services.search.backlog import delete_terms

    admin = staff["admin"]
    kept, gone = _customer(admin, "猪八戒"), _customer(admin, "孙悟空")
    _customer(admin, "唐三藏")  # a second segment
    ix = store.open_index(store.CUSTOMERS)
    writer = store.writer(ix)
    assert delete_terms(writer, {("key", f"c{gone.id}"), ("key", "c999999"), ("name", "没有")}) == 1
    assert delete_terms(writer, {("key", f"c{gone.id}")}) == 0  # deleted already
    store.commit(writer, merge=False)
    assert _ids(admin, "孙悟空") == [] and _ids(admin, "猪八戒") == [kept.id]


def test_saves_never_merge_and_a_background_merge_keeps_every_change(app, staff, monkeypatch):
    from services.search import sync

    monkeypatch.setattr(sync, "MERGE_AFTER", 4)
    admin = staff["admin"]
    customer = _customer(admin, "唐三藏")
    started = []
    with monkeypatch.context() as patched:
        patched.setattr(sync, "start_merge", lambda: started.append(_segments(store.NOTES)))
        before = _segments(store.NOTES)
        made = [_note(admin, customer, f"取经第{i}站报价") for i in range(6)]
        assert _segments(store.NOTES) == before + 6  # each save only added its own segment
    assert started and min(started) >= sync.MERGE_FANIN  # a full tier at least
    sync.merge_small()
    assert _segments(store.NOTES) < before + 6
    assert sorted(n.id for n in search.search_notes(admin, "报价", per_page=50).items) == [n.id for n in made]
    # in the background, while more notes are saved: none is lost
    made += [_note(admin, customer, f"取经第{i}站报价") for i in range(6, 20)]
    assert sync.wait_for_background(30)
    db.session.commit()
    search.drain()
    assert sorted(n.id for n in search.search_notes(admin, "报价", per_page=50).items) == [n.id for n in made]
    assert sync.wait_for_background(30)
    assert _segments(store.NOTES) < 4 + 5
    assert db.session.scalar(select(func.count()).select_from(SearchBacklog)) == 0


def test_the_merge_point_is_the_smallest_full_tier_once_enough_segments_pile_up(monkeypatch):
    from services.search import sync

    monkeypatch.setattr(sync, "MERGE_AFTER", 8)
    monkeypatch.setattr(sync, "MERGE_FANIN", 4)
    assert sync.merge_point([500_000, 1, 1, 1, 1, 1, 1]) == 0  # 7 segments: not yet
    assert sync.merge_point([500_000, 1, 1, 1, 1, 1, 1, 1]) == 7  # the whole tier of 1-3 documents
    assert sync.merge_point([500_000, 4, 5, 6, 7, 1, 1, 2]) == 7  # 4-15 is full: with the three below it
    assert sync.merge_point([500_000, 4, 5, 6, 16, 1, 1, 2]) == 0  # no tier holds four
    assert sync.merge_point([1, 3, 40, 40, 40, 40, 40, 500_000]) == 7  # similar sizes end merged
    assert sync.merge_point([500_000, 300_000, 1, 4, 20, 20, 70, 70]) == 0  # no tier holds four
    # a bulk import's segments: left alone, however many (a merge runs in a web worker)
    assert sync.merge_point([500_000, 3_000, 3_000, 3_000, 3_000, 1, 1, 1]) == 0
    assert sync.merge_point([500_000, 3_000, 3_000, 3_000, 1, 1, 1, 1]) == 4  # the small ones still go


def test_saves_go_on_during_a_merge_and_what_they_delete_stays_deleted(app, staff, monkeypatch):
    """The merge copies segments without the write lock; an edit or a deletion saved
    meanwhile (which deletes from the segments being copied) is carried over."""
    from services.search import sync

    monkeypatch.setattr(sync, "MERGE_AFTER", 4)
    monkeypatch.setattr(sync, "start_merge", lambda: None)
    app.config["SEARCH_LOCK_TIMEOUT"] = 0.5
    admin = staff["admin"]
    customer = _customer(admin, "沙悟净")
    made = [_note(admin, customer, f"流沙河第{i}次报价") for i in range(6)]
    edited, deleted = made[1], made[4]
    edited_id, deleted_id = edited.id, deleted.id
    before = _segments(store.NOTES)
    copy, during = sync._copy, []

    def copy_then_save(*args):
        result = copy(*args)
        notes.edit_note(admin, edited, NoteData(kind="call", body="流沙河改成合同"))
        db.session.commit()
        notes.delete_note(admin, deleted)
        db.session.commit()
        during.append(_note(admin, customer, "流沙河新的报价"))
        during.append(db.session.scalar(select(func.count()).select_from(SearchBacklog)))
        return result

    monkeypatch.setattr(sync, "_copy", copy_then_save)
    sync.merge_small()
    assert during[1] == 0  # the saves wrote to the index at once: no lock held (their timeout is 0.5 s)
    assert _segments(store.NOTES) < before + 3
    found = sorted(n.id for n in search.search_notes(admin, "报价", per_page=50).items)
    assert found == sorted([n.id for n in made if n.id not in (edited_id, deleted_id)] + [during[0].id])
    assert [n.id for n in search.search_notes(admin, "合同").items] == [edited_id]
    assert search.check().ok


def _notes_in_small_segments(monkeypatch, admin, name: str) -> int:
    """Five notes to ``name``, each in a segment of its own, that background merges
    leave alone (merge_small merges them when called). Returns the segment count."""
    from services.search import sync

    monkeypatch.setattr(sync, "MERGE_AFTER", 2)
    customer = _customer(admin, name)
    with monkeypatch.context() as patched:
        patched.setattr(sync, "start_merge", lambda: None)
        for n in range(5):
            _note(admin, customer, f"第{n}次来电")
    return _segments(store.NOTES)


def test_a_merge_waits_for_the_write_lock_and_gives_up_without_harm(app, staff, monkeypatch):
    from services.search import sync

    admin = staff["admin"]
    count = _notes_in_small_segments(monkeypatch, admin, "孙悟空")
    with store.locked("write.lock", 1), pytest.raises(store.LockTimeout):
        sync.merge_small(timeout=0.05)
    assert _segments(store.NOTES) == count
    assert len(search.search_notes(admin, "来电").items) == 5
    generation = os.path.join(store.root(), store.current_generation())
    assert not [name for name in os.listdir(generation) if name.startswith("merging")]


def test_one_process_merges_at_a_time_and_another_waits_for_it_for_a_while(app, staff, monkeypatch):
    from services.search import sync

    count = _notes_in_small_segments(monkeypatch, staff["admin"], "猪八戒")
    with store.locked("merge.lock", 1):  # another process is merging (and will merge what is left)
        sync.merge_small(timeout=0.05)
    assert _segments(store.NOTES) == count
    holding, base = threading.Event(), store.root()

    def another_merge():
        with store.locked("merge.lock", 1, base):
            holding.set()
            time.sleep(0.3)

    other = threading.Thread(target=another_merge)
    other.start()
    assert holding.wait(10)
    sync.merge_small(timeout=30)  # waits for it, then merges
    other.join()
    assert _segments(store.NOTES) < count


def test_a_searcher_opened_before_a_merge_still_reads_what_it_opened(app, staff, monkeypatch):
    """Another process may merge (and commit) between a searcher's opening and its
    reading of a segment's stored fields: the files it names stay until
    KEEP_REPLACED has passed, and tidy removes them only then."""
    from services.search import sync

    admin = staff["admin"]
    _notes_in_small_segments(monkeypatch, admin, "白龙马")
    ix = store.open_index(store.NOTES)
    searcher = ix.searcher()  # stored fields not read yet
    try:
        sync.merge_small()
        assert ix.latest_generation() > searcher.reader().generation()  # merged and committed meanwhile
        keys = [searcher.stored_fields(docnum)["key"] for docnum in range(searcher.doc_count_all())]
        assert len(keys) == 5
    finally:
        searcher.close()
    folder = ix.storage.folder
    before = set(os.listdir(folder))
    with store.locked("write.lock", 1):
        store.tidy(ix)
        assert set(os.listdir(folder)) == before  # not yet: replaced just now
        store.tidy(ix, now=time.time() + store.KEEP_REPLACED + 1)
    left = set(os.listdir(folder))
    assert [name for name in left if name.endswith(".toc")] == [f"_MAIN_{ix.latest_generation()}.toc"]
    named = {segment.segment_id() for segment in ix._segments()}
    assert {name.split(".")[0] for name in left if name.startswith("MAIN_") and "." in name} == named
    assert len(search.search_notes(admin, "来电").items) == 5


def test_a_failed_commit_leaves_no_temporary_file(app, staff, monkeypatch):
    import errno

    from whoosh.filedb.filestore import FileStorage

    admin = staff["admin"]
    customer = _customer(admin, "红孩儿")
    folder = os.path.join(store.root(), store.current_generation(), store.NOTES)
    before = set(os.listdir(folder))

    def disk_full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patched:
        patched.setattr(FileStorage, "rename_file", disk_full)  # the new TOC, written, cannot be put in place
        _note(admin, customer, "火云洞报价")  # saved; its index entry stays in the backlog
    assert db.session.scalar(select(func.count()).select_from(SearchBacklog)) == 1
    db.session.commit()
    assert not [name for name in os.listdir(folder) if name.endswith(".tmp") or ".toc." in name]
    search.drain()
    assert search.search_notes(admin, "火云洞").total == 1 and search.check().ok
    assert set(os.listdir(folder)) - before  # the note's segment


def test_a_search_that_fails_once_is_tried_again_on_a_fresh_searcher(app, staff, monkeypatch):
    from services.search import matching, sync

    admin = staff["admin"]
    customer = _customer(admin, "铁扇公主")
    search_once, calls = matching.search, []

    def failing_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise TypeError("'NoneType' object is not subscriptable")  # as a segment gone under it did
        return search_once(*args, **kwargs)

    monkeypatch.setattr(matching, "search", failing_once)
    found = search.search_customers(admin, "铁扇")
    assert not found.from_database and [c.id for c in found.items] == [customer.id] and len(calls) == 2
    # failing twice: the database answers, and an intact index is not rebuilt
    rebuilds = []
    monkeypatch.setattr(matching, "search", lambda *args, **kwargs: 1 / 0)
    monkeypatch.setattr(sync, "start_rebuild", lambda **kwargs: rebuilds.append(kwargs))
    found = search.search_customers(admin, "铁扇")
    assert found.from_database and [c.id for c in found.items] == [customer.id] and rebuilds == []


# ---- rebuild, check, a missing or broken index ---------------------------------------------------

def test_check_finds_and_fix_repairs_every_kind_of_difference(app, staff):
    admin = staff["admin"]
    kept, changed = _customer(admin, "观音"), _customer(admin, "如来")
    note = _note(admin, kept, "紫竹林培训")
    note_id, changed_id = note.id, changed.id
    assert search.check().ok
    writer = store.open_index(store.NOTES).writer()
    writer.delete_by_term("key", f"n{note_id}")  # lost from the index
    writer.add_document(key="n999999", body=["幽灵"], scope=[], when=0, stamp="x")  # not in the database
    writer.commit()
    db.session.execute(update(Customer).where(Customer.id == changed.id).values(name="玉帝"))
    db.session.commit()  # changed behind the index's back
    report = search.check()
    assert (report.missing, report.extra, report.stale) == ([f"n{note_id}"], ["n999999"], [f"c{changed_id}"])
    assert search.fix(report) == 3
    assert search.check().ok
    assert _ids(admin, "玉帝") == [changed_id]
    assert search.search_notes(admin, "培训").items[0].id == note_id


def test_rebuild_swaps_in_a_fresh_index(app, staff):
    admin = staff["admin"]
    customer = _customer(admin, "哪吒")
    before = store.current_generation()
    report = search.rebuild(procs=1)
    assert report.customers == 1 and store.current_generation() != before
    assert _ids(admin, "哪吒") == [customer.id]
    # the old one stays a while for searchers of other processes that had read CURRENT
    store.remove_replaced_generations()
    assert os.path.exists(os.path.join(store.root(), before))
    store.remove_replaced_generations(now=time.time() + store.KEEP_REPLACED + 1)
    assert not os.path.exists(os.path.join(store.root(), before))


def test_a_build_whose_process_died_is_cleared_by_the_next_build(app, staff):
    _customer(staff["admin"], "哪吒")
    abandoned = store.new_generation()
    store.mark_building(abandoned, True)  # and then the process was killed
    before = store.current_generation()
    search.rebuild(procs=1)
    assert not os.path.exists(os.path.join(store.root(), abandoned))
    assert sorted(entry for entry in os.listdir(store.root()) if entry.startswith("gen-")) == sorted(
        [before, store.current_generation()])


def test_a_build_cut_off_with_its_process_is_cleared_when_the_app_starts(app, staff, make_app):
    _customer(staff["admin"], "哪吒")
    abandoned, base = store.new_generation(), store.root()
    store.mark_building(abandoned, True)  # and then the worker was stopped
    with store.locked("rebuild.lock", 1):  # while a build runs, its folder stays
        make_app(SEARCH_INDEX_DIR=base)
    assert os.path.exists(os.path.join(base, abandoned))
    make_app(SEARCH_INDEX_DIR=base)
    assert not os.path.exists(os.path.join(base, abandoned))
    assert os.path.exists(os.path.join(base, store.current_generation()))


def test_rebuild_in_two_processes(app, staff):
    admin = staff["admin"]
    customer = _customer(admin, "杨戬")
    _note(admin, customer, "二郎神样品")
    report = search.rebuild(procs=2)
    assert (report.customers, report.notes) == (1, 1)
    assert _ids(admin, "杨戬") == [customer.id] and search.search_notes(admin, "样品").total == 1


def test_a_missing_index_is_rebuilt_and_search_answers_meanwhile(app, staff):
    admin = staff["admin"]
    customer = _customer(admin, "太白金星", phones=[("mobile", "13600003333")])
    shutil.rmtree(store.root())
    store.forget_searchers()
    assert _ids(admin, "金星") == [customer.id]  # rebuilt at once: a small database
    assert store.current_generation() is not None and search.check().ok


def test_a_large_missing_index_answers_from_the_database_while_it_rebuilds(app, staff):
    admin = staff["admin"]
    customer = _customer(admin, "太上老君", phones=[("mobile", "13600004444")])
    _note(admin, customer, "炼丹炉发票")
    shutil.rmtree(store.root())
    store.forget_searchers()
    app.config["SEARCH_INLINE_REBUILD_MAX"] = 0
    with store.locked("rebuild.lock", 1):  # a rebuild is already on its way
        found = search.search_customers(admin, "老君")
        assert found.from_database and [c.id for c in found.items] == [customer.id]
        assert [c.id for c in search.search_customers(admin, "4444").items] == [customer.id]
        assert search.search_notes(admin, "炼丹").total == 1
    assert search.search_customers(staff["sales2"], "老君", archived=True).total == 1


# Whoosh leaves the damaged file open when it fails to read it (a reader it opened
# before the failure is not closed); the file is collected at the end of this test.
@pytest.mark.filterwarnings("ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_corrupt_index_is_rebuilt(app, staff):
    admin = staff["admin"]
    customer = _customer(admin, "嫦娥")
    folder = os.path.join(store.root(), store.current_generation(), store.CUSTOMERS)
    for name in os.listdir(folder):
        if not name.endswith(".toc"):
            with open(os.path.join(folder, name), "wb") as damaged:
                damaged.write(b"garbage")
    store.forget_searchers()
    assert _ids(admin, "嫦娥") == [customer.id]
    _customer(admin, "后羿")  # the next write rebuilds it
    assert search.check().ok and _ids(admin, "后羿") != []
    store.forget_searchers()
    gc.collect()


@pytest.fixture(params=["sets", "dense", "mixed"])
def kept_as(request, monkeypatch):
    """How matching holds frequent terms: never (the small indexes of most tests), every
    term, or terms in a sixteenth of a segment or more (as at full size)."""
    from services.search import matching

    floor, share = {"sets": (10**9, 16), "dense": (0, 10**9), "mixed": (0, 16)}[request.param]
    monkeypatch.setattr(matching, "DENSE_FLOOR", floor)
    monkeypatch.setattr(matching, "DENSE_SHARE", share)
    return request.param


def test_totals_are_exact_and_paging_reaches_every_match(app, staff, kept_as):
    from services import demo
    from services.search import fallback

    demo.generate_workspace(1500, 0, seed=3, password=TEST_PASSWORD)
    db.session.commit()
    refresh_statistics()
    search.rebuild(procs=1)
    for user in (staff["admin"], staff["sales"]):
        for text in ("张", "有限"):
            # the plain LIKE scan over the same fields is the reference
            rows, _total = fallback.customers(user, analysis.QueryWords(text), archived=False, per_page=5000)
            expected = {c.id for c in rows}
            assert len(expected) > 50
            assert search.search_customers(user, text).total == len(expected), (user.role, text)
            assert set(_all_ids(search.search_customers, user, text)) == expected


# ---- matching and order ----------------------------------------------------------------

def test_name_and_phone_matches_come_before_other_fields_shorter_names_first(app, staff):
    admin = staff["admin"]
    by_name = _customer(admin, "张伟")
    longer = _customer(admin, "欧阳伟")
    by_company = _customer(admin, "王强", company="伟业科技")  # added last: no head start
    assert _names(search.search_customers(admin, "伟")) == ["张伟", "欧阳伟", "王强"]
    by_phone = _customer(admin, "刘洋", phones=[("mobile", "13900005678")])
    by_address = _customer(admin, "陈静", address="人民路5678号")
    assert [c.id for c in search.search_customers(admin, "5678").items] == [by_phone.id, by_address.id]
    # among matches through other fields only, the newer record comes first, even
    # when the older one was changed (indexed) since
    customers.update_customer(admin, by_name, CustomerData(name="张伟", company="伟业"))
    db.session.commit()
    assert [c.id for c in search.search_customers(admin, "伟业").items] == [by_company.id, by_name.id]
    assert longer.id in _ids(admin, "欧阳")


def test_notes_come_newest_first_whatever_order_they_were_indexed_in(app, staff):
    admin = staff["admin"]
    customer = _customer(admin, "白骨精")
    made = [_note(admin, customer, f"第{i}次报价") for i in range(3)]
    for days, note in zip((3, 1, 2), made):
        db.session.execute(update(type(note)).where(type(note).id == note.id)
                           .values(created_at=func.datetime("now", f"-{days} days")
                                   if db.engine.dialect.name == "sqlite"
                                   else func.now() - func.make_interval(0, 0, 0, days)))
    db.session.commit()
    search.rebuild(procs=1)
    assert [n.id for n in search.search_notes(admin, "报价").items] == [made[1].id, made[2].id, made[0].id]
    notes.edit_note(admin, made[0], NoteData(kind="call", body="第0次报价，已改"))  # indexed again, last
    db.session.commit()
    assert [n.id for n in search.search_notes(admin, "报价").items] == [made[1].id, made[2].id, made[0].id]


def test_pages_keep_their_records_when_a_merge_reorders_the_segments(app, staff, monkeypatch):
    """Equal matches (names of one length, notes of one second) come newest record
    first, wherever they lie: a merge puts the oldest segments' documents after the
    newer ones, and no record may change pages for it."""
    from services.search import sync

    monkeypatch.setattr(sync, "start_merge", lambda: None)  # merged below, between two readings
    admin = staff["admin"]
    made = [_customer(admin, f"测试客户{i:02d}") for i in range(12)]
    for _ in range(12):
        _note(admin, made[0], "同一秒的报价")
    db.session.execute(update(CustomerNote).values(created_at=datetime(2026, 3, 1, 9, 30)))
    db.session.commit()
    sync.mark_customers([made[0].id], with_notes=True)
    db.session.commit()
    search.drain()
    searches = ((search.search_customers, "测试"), (search.search_notes, "报价"))

    def pages():
        return [[item.id for item in find(admin, text, page=page, per_page=5).items]
                for find, text in searches for page in (1, 2, 3)]

    before = pages()
    assert before[0] == [c.id for c in made[:-6:-1]]  # the newest customers first
    assert sum(before[3:], []) == sorted(sum(before[3:], []), reverse=True)  # the newest notes first
    monkeypatch.setattr(sync, "MERGE_AFTER", 4)
    segments = (_segments(store.CUSTOMERS), _segments(store.NOTES))
    sync.merge_small()
    assert _segments(store.CUSTOMERS) < segments[0] and _segments(store.NOTES) < segments[1]
    assert pages() == before


@pytest.mark.parametrize("where", ["first", "spread", "last", "few"])
def test_the_first_matches_are_the_same_wherever_they_lie_in_the_order(where):
    """Walked in the segment's order, or (too few, or late in it) taken from a heap:
    the same first ten, for sets and for kept terms."""
    from array import array

    from services.search import matching

    count, rng = 5000, random.Random(7)
    span = count + 1
    keys = array("q", [-(2 if d % 3 else 3) * span + d for d in range(count)])  # shorter names first
    order = array("q", sorted(range(count), key=keys.__getitem__, reverse=True))
    members = {"first": list(order[:400]), "spread": rng.sample(range(count), 400),
               "last": list(order[-400:]), "few": list(order[-3:])}[where]
    for docs in (set(members), matching._Dense.of_members(members, count)):
        assert matching._top(docs, 10, count, keys, order) == sorted(members, key=keys.__getitem__,
                                                                      reverse=True)[:10]
        assert matching._top(docs, 10, count) == sorted(members, reverse=True)[:10]


def test_order_and_totals_agree_across_segments_pages_and_roles(app, staff, kept_as):
    from services import demo

    demo.generate_workspace(400, 1200, seed=5, password=TEST_PASSWORD)
    db.session.commit()
    refresh_statistics()
    search.rebuild(procs=1)
    admin, sales = staff["admin"], staff["sales"]
    extra = _customer(admin, "张三丰", company="有限公司")
    for i in range(3):  # new segments beside the rebuilt one, and deletions in it
        _note(admin, extra, f"有限公司第{i}次报价")
    for user in (admin, sales):
        for find, text in ((search.search_customers, "张"), (search.search_customers, "有限"),
                           (search.search_notes, "客户"), (search.search_notes, "报价")):
            whole = find(user, text, per_page=2000)
            assert whole.total == len(whole.items) > 0, (user.role, text)
            assert _all_ids(find, user, text) == [item.id for item in whole.items], (user.role, text)
        dates = [n.created_at for n in search.search_notes(user, "客户", per_page=2000).items]
        assert dates == sorted(dates, reverse=True)


def test_postings_read_a_block_at_a_time_are_whoosh_own(app, staff, kept_as):
    from services import demo

    demo.generate_workspace(300, 2500, seed=7, password=TEST_PASSWORD)
    db.session.commit()
    refresh_statistics()
    search.rebuild(procs=1)
    admin = staff["admin"]
    victim = db.session.scalars(select(Customer).order_by(Customer.id).limit(5)).all()
    for customer in victim:  # deletions in the big segment
        customers.update_customer(admin, customer, CustomerData(name=customer.name + "改"))
        db.session.commit()
    with store.searching(store.NOTES) as searcher:
        checked = _check_postings(searcher)
    assert checked > 20


def _check_postings(searcher) -> int:
    from services.search import matching

    checked = 0
    for reader, _offset in searcher.reader().leaf_readers():
        for field_name, term in [("scope", "archived:0"), ("body", "客户")] + list(reader.all_terms())[:300:7]:
            if (field_name, term) not in reader or field_name not in ("body", "scope"):
                continue
            term = term.decode() if isinstance(term, bytes) else term
            expected = set(reader.postings(field_name, term).all_ids())
            assert set(matching._postings(reader, field_name, term)) - reader.deleted_docs_set == expected
            count = reader.doc_count_all()
            for among in ({d for d in (0, 5, 700, 2100) if d < count},
                          set(random.Random(checked).sample(range(count), min(12, count))),
                          set(range(count))):  # a few blocks decoded, or all of them
                found = matching._postings(reader, field_name, term, among=among)
                assert found - reader.deleted_docs_set == expected & among
            checked += 1
    assert searcher.reader().doc_frequency("scope", "archived:0") > 2 * 1024  # several blocks
    return checked


def test_an_index_of_an_older_layout_is_rebuilt(app, staff):
    from whoosh import fields, index

    admin = staff["admin"]
    customer = _customer(admin, "哪吒")
    old = store.new_generation()
    path = os.path.join(store.root(), old, store.CUSTOMERS)
    shutil.rmtree(path)
    os.makedirs(path)
    index.create_in(path, fields.Schema(key=fields.ID(unique=True, stored=True), name=fields.TEXT))
    store.publish(old)
    store.forget_searchers()
    found = search.search_customers(admin, "哪吒")
    assert [c.id for c in found.items] == [customer.id]
    assert store.current_generation() != old and search.check().ok  # rebuilt at once: small
    assert not search.search_customers(admin, "哪吒").from_database


def test_traditional_and_simplified_find_each_other(app, staff):
    admin = staff["admin"]
    written_traditional = _customer(admin, "張偉", company="東方貿易")
    written_simplified = _customer(admin, "陈静")
    note = _note(admin, written_simplified, "客戶要報價")
    assert _ids(admin, "张伟") == [written_traditional.id] == _ids(admin, "zhangwei")
    assert _ids(admin, "东方") == [written_traditional.id]
    assert _ids(admin, "陳靜") == [written_simplified.id]
    assert [n.id for n in search.search_notes(admin, "报价").items] == [note.id]


def test_an_index_made_before_traditional_characters_were_folded_is_rebuilt(app, staff):
    admin = staff["admin"]
    customer = _customer(admin, "張偉")
    os.remove(os.path.join(store.root(), store.current_generation(), "LAYOUT"))  # as made by the older code
    store.forget_searchers()
    meanwhile = search.search_customers(admin, "張偉")  # the database's LIKE scan: as typed
    assert meanwhile.from_database and [c.id for c in meanwhile.items] == [customer.id]
    assert os.path.exists(os.path.join(store.root(), store.current_generation(), "LAYOUT"))
    assert search.check().ok and not search.search_customers(admin, "张伟").from_database
    assert _ids(admin, "张伟") == [customer.id]


def test_the_open_files_limit_is_raised_within_the_hard_limit():
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        store.allow_open_files(4096)
        raised, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        assert raised == (4096 if hard == resource.RLIM_INFINITY else min(4096, hard))
        store.allow_open_files(512)  # never lowered
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == raised
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_threads_share_searchers_one_at_a_time(app, staff):
    import threading

    admin = staff["admin"]
    names = ["张伟", "李娜", "王芳", "刘洋"]
    made = {name: _customer(admin, name).id for name in names}
    errors, barrier = [], threading.Barrier(4)

    def look(name):
        try:
            with app.app_context(), reading_only():  # as in a GET request
                barrier.wait(timeout=10)
                for _ in range(30):
                    assert [c.id for c in search.search_customers(admin, name).items] == [made[name]]
                    db.session.rollback()
                db.session.remove()
        except Exception as error:  # reported below
            errors.append(repr(error))

    threads = [threading.Thread(target=look, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert len(store._idle[(store.root(), store.CUSTOMERS)]) <= store.MAX_IDLE


def test_every_reading_of_a_surname_is_kept_before_rare_readings_of_later_characters():
    # 沈 shen/chen/tan, 平 ping/pian/bing/beng: the first eight spellings in
    # product order were all shen…/chen…, and "tanping" was lost
    assert {"shenping", "chenping", "tanping"} <= set(analysis.pinyin_words("沈平"))
    assert "taojianping" in analysis.pinyin_words("姚建平")
    assert analysis.pinyin_words("北京长城科技有限公司单曾乐行重")  # long names stay bounded


@pytest.mark.parametrize("via_database", [False, True])
def test_front_desk_finds_customers_by_basic_card_fields_only(staff, via_database):
    """What front desk searches by is the basic card (policy.BASIC_CARD_FIELDS): its
    search must not confirm an email or address the card hides; neither through the
    index nor through the database scan that answers while it is unavailable."""
    from services.search import fallback

    def names(user, text):
        if via_database:
            return [c.name for c in fallback.customers(user, analysis.QueryWords(text), archived=False)[0]]
        return _names(search.search_customers(user, text))

    tag = tags.create_tag(staff["manager"], tags.create_group(staff["manager"], "行业").id, "制造业")
    card = _customer(staff["sales"], "赵一", company="星辰科技", phones=[("mobile", "13800138000")],
                     email="lucky@example.com", address="北京市海淀区中关村")
    customers.set_tags(staff["sales"], card, [tag.id])
    db.session.commit()
    for text in ("赵一", "星辰", "13800138000", "8000"):
        assert names(staff["frontdesk"], text) == ["赵一"], text
    hidden = ("lucky@example.com", "中关村", "海淀") + (() if via_database else ("lucky", "制造业"))
    for text in hidden:
        assert names(staff["frontdesk"], text) == [], text
        assert names(staff["manager"], text) == ["赵一"], text


def test_archived_customers_and_notes_are_searched_only_by_those_who_archive(staff):
    customer = _customer(staff["sales"], "归档的钱二")
    _note(staff["sales"], customer, "钱二的来电记录")
    customers.archive(staff["manager"], customer)
    db.session.commit()
    for user in (staff["sales"], staff["frontdesk"]):
        assert search.search_customers(user, "钱二", archived=True).items == []
        assert search.search_notes(user, "来电记录", archived=True).items == []
    assert _names(search.search_customers(staff["manager"], "钱二", archived=True)) == ["归档的钱二"]


def test_front_desk_cannot_filter_customers_by_the_tags_its_card_hides(staff):
    tag = tags.create_tag(staff["manager"], tags.create_group(staff["manager"], "等级").id, "大客户")
    tagged = _customer(staff["sales"], "孙三甲")
    _customer(staff["sales"], "孙三乙")
    customers.set_tags(staff["sales"], tagged, [tag.id])
    db.session.commit()
    assert _names(search.search_customers(staff["manager"], "孙三", tag_ids=[tag.id])) == ["孙三甲"]
    found = search.search_customers(staff["frontdesk"], "孙三", tag_ids=[tag.id], count_tags=[tag.id])
    assert sorted(_names(found)) == ["孙三乙", "孙三甲"] and not found.tag_counts


def test_a_request_never_rebuilds_a_large_index_itself_but_asks_for_it(app, staff):
    """At full size a rebuild takes minutes: a request that finds the index missing
    records that a rebuild is wanted and answers from the database; the next
    command that saves (the nightly pool recycle) or ``search rebuild`` runs it."""
    from services.search import sync

    admin = staff["admin"]
    customer = _customer(admin, "镇元大仙", phones=[("mobile", "13600005555")])
    shutil.rmtree(store.root())
    store.forget_searchers()
    app.config["SEARCH_INLINE_REBUILD_MAX"] = 0
    with app.test_request_context("/search?q=大仙"):
        found = search.search_customers(admin, "大仙")
        assert found.from_database and [c.id for c in found.items] == [customer.id]
        assert sync.drain() == 0  # a save in a request does not rebuild either
    assert store.rebuild_wanted() and store.current_generation() is None
    assert not [thread for thread in threading.enumerate() if thread.name == "search-rebuild"]
    sync.drain()  # outside a request: the nightly job's drain
    assert store.current_generation() is not None and not store.rebuild_wanted()
    found = search.search_customers(admin, "大仙")
    assert not found.from_database and [c.id for c in found.items] == [customer.id]


def test_a_request_rebuilds_a_small_missing_index_at_once(app, staff):
    admin = staff["admin"]
    customer = _customer(admin, "赤脚大仙")
    shutil.rmtree(store.root())
    store.forget_searchers()
    with app.test_request_context("/search?q=赤脚"):
        assert _ids(admin, "赤脚") == [customer.id]
    assert store.current_generation() is not None and not store.rebuild_wanted()


def test_search_rebuild_does_what_a_request_asked_for(app, staff):
    admin = staff["admin"]
    customer = _customer(admin, "托塔天王")
    store.want_rebuild()
    search.rebuild(procs=1)
    assert not store.rebuild_wanted() and _ids(admin, "天王") == [customer.id]
