"""The customer list's and the pool page's total, page and tag counts are the same
whichever way they are computed: from a short list of ids (a narrow filter), by a
count and a lookup per matching customer, or as every customer's tag counts less
those of the customers the filter leaves out (a filter matching most customers)."""

from collections import Counter

import pytest
from sqlalchemy import select

from extensions import db
from services import customers, merge, pool, pool_list, search
from services.customers import CustomerData, CustomerFilter
from services.pool_list import PoolFilter
from models import Customer, Tag, User
from tests.conftest import make_tag, sqlite_plan

FILTERS = [
    {}, {"stage": "intent"}, {"owner": "mine"}, {"owner": "pool"}, {"q": "客户"}, {"q": "乙"},
    {"importance": "A"}, {"archived": True}, {"sort": "name"}, {"page": 2, "per_page": 2},
    {"stage": "intent", "sort": "name", "per_page": 1},
    {"importance": "A", "sort": "created", "page": 2, "per_page": 1},
    {"sort": "last_contact", "page": 3, "per_page": 2}, {"sort": "stale", "page": 2, "per_page": 2},
]


def _expected(user, flt):
    """The reference: every customer of the filter, counted in Python."""
    every = list(db.session.scalars(customers.filtered_query(user, flt)))
    counts = Counter(tag.id for customer in every for tag in customer.tags)
    return len(every), dict(counts)


def _row_tags(page) -> list:
    """Each row's tags as the page shows them, and as the customer's Tag objects say."""
    shown = [[(tag.id, tag.name, tag.shown_colour) for tag in page.tags_of(c)] for c in page.items]
    loaded = [[(tag.id, tag.name, tag.shown_colour) for tag in sorted(c.tags, key=lambda t: (t.name, t.id))]
              for c in page.items]
    return [shown, loaded]


def _strategies(monkeypatch, call):
    """``call()`` with the ids read up front (SMALL_SET large), and without (0):
    tags counted per matching customer (LARGE_SHARE 2) or as every customer's less
    those left out (0); the page sorted (SORT_WALK 0) or, on SQLite, read by walking
    the order and testing the filter on each customer met (SORT_WALK huge)."""
    results = []
    for small_set, large_share, sort_walk in ((1000, 0.5, 1.0), (0, 2, 0), (0, 0, 0), (0, 2, 10**9)):
        monkeypatch.setattr(customers, "SMALL_SET", small_set)
        monkeypatch.setattr(customers, "LARGE_SHARE", large_share)
        monkeypatch.setattr(customers, "SORT_WALK", sort_walk)
        results.append(call())
    return results


def _check(monkeypatch, users):
    for user in users:
        for args in FILTERS:
            flt = CustomerFilter(**args)
            total, counts = _expected(user, customers.allowed_filter(user, flt))
            pages = _strategies(monkeypatch, lambda flt=flt, user=user: customers.list_customers(user, flt))
            shown = {"tags"} <= customers.policy.visible_fields(user)
            for page in pages:
                assert (page.total, page.tag_counts) == (total, counts if shown else {}), (user.role, args)
                assert [c.id for c in page.items] == [c.id for c in pages[0].items], (user.role, args)
                rows_shown, rows_loaded = _row_tags(page)
                assert rows_shown == rows_loaded, (user.role, args)
            query = customers.filtered_query(user, flt)
            # The direct count and the complement (forced: a total above every id).
            assert customers.tag_counts(query) == customers.tag_counts(query, total=10**9) == counts
        pools = _strategies(monkeypatch, lambda user=user: pool_list.list_pool(user, PoolFilter()))
        total, counts = _expected(user, CustomerFilter(owner="pool"))
        assert [(p.total, p.tag_counts) for p in pools] == [(total, counts)] * 4
        assert all([c.id for c in p.items] == [c.id for c in pools[0].items] for p in pools)
        assert all(_row_tags(p)[0] == _row_tags(p)[1] for p in pools)


@pytest.fixture
def office(staff):
    a, b, c = make_tag("制造业", "行业"), make_tag("报价", "需求"), make_tag("华东", "地区")
    made = []
    for n, (owner, stage, importance, tags) in enumerate([
        ("sales", "intent", "A", [a, b]), ("sales", "potential", "B", [a]), ("sales2", "intent", "A", [b, c]),
        (None, "intent", "C", [a, c]), (None, "deal", "A", []), (None, "potential", "B", [a, b, c]),
        ("sales", "lost", "C", [c]),
    ]):
        actor = staff[owner] if owner else staff["frontdesk"]
        customer = customers.create_customer(actor, CustomerData(
            name=f"客户{'甲乙丙丁戊己庚'[n]}", stage=stage, importance=importance))
        customers.set_tags(staff["manager"], customer, [t.id for t in tags])
        made.append(customer)
    return {"tags": (a, b, c), "customers": made}


def test_list_and_pool_counts_agree_whatever_the_strategy(staff, office, monkeypatch):
    users = [staff[r] for r in ("sales", "sales2", "manager", "frontdesk")]
    _check(monkeypatch, users)
    a, b, c = office["tags"]
    first, second, third, fourth, fifth, sixth, seventh = office["customers"]
    # Tagging and untagging.
    customers.set_tags(staff["manager"], fifth, [b.id])
    customers.set_tags(staff["manager"], first, [])
    _check(monkeypatch, users)
    # Claiming a pool customer, archiving one, merging two.
    mine_before, _ = _expected(staff["sales"], CustomerFilter(owner="mine"))
    pool.claim_customer(staff["sales"], fourth.id)
    assert _expected(staff["sales"], CustomerFilter(owner="mine"))[0] == mine_before + 1
    customers.archive(staff["manager"], seventh)
    merge.merge_customers(staff["manager"], second, sixth)
    _check(monkeypatch, users)
    # More customers arrive (as an import would add them).
    for n in range(3):
        extra = customers.create_customer(staff["frontdesk"], CustomerData(name=f"新客户{n}"))
        customers.set_tags(staff["manager"], extra, [a.id, c.id])
    _check(monkeypatch, users)
    assert customers.list_customers(staff["manager"], CustomerFilter(q="新客户")).total == 3


def test_the_rows_show_their_tags_from_the_snapshot_without_loading_tag_objects(staff, office):
    from sqlalchemy import inspect

    from services import tags

    (a, a_name), (b, b_name), (c, c_name) = ((tag.id, tag.name) for tag in office["tags"])
    manager_id, admin_id = staff["manager"].id, staff["admin"].id
    db.session.commit()
    db.session.expunge_all()  # nothing loaded yet, as at the start of a request
    manager, admin = db.session.get(User, manager_id), db.session.get(User, admin_id)
    for page in (customers.list_customers(manager, CustomerFilter()),
                 pool_list.list_pool(manager, PoolFilter())):
        assert page.items and all("tags" not in inspect(row).dict for row in page.items)
        by_name = {row.name: [tag.name for tag in page.tags_of(row)] for row in page.items}
        assert all(names == sorted(names) for names in by_name.values())
        assert ("客户丁" not in by_name or by_name["客户丁"] == sorted([a_name, c_name]))
    assert by_name["客户己"] == sorted([a_name, b_name, c_name]) and by_name["客户戊"] == []
    b_colour = db.session.get(Tag, b).shown_colour
    # A renamed or deleted tag is shown as it is now.
    tags.update_tag(admin, db.session.get(Tag, a), name="机械", colour="red")
    tags.delete_tag(admin, db.session.get(Tag, c))
    page = pool_list.list_pool(manager, PoolFilter())
    shown = {row.name: [(tag.name, tag.shown_colour) for tag in page.tags_of(row)] for row in page.items}
    assert shown["客户己"] == sorted([("机械", "red"), (b_name, b_colour)])
    assert shown["客户丁"] == [("机械", "red")]


def test_a_filter_matching_nobody_reads_no_page(staff, office, monkeypatch):
    statements = []
    monkeypatch.setattr(customers, "SMALL_SET", 1000)
    from sqlalchemy import event

    def seen(conn, cursor, statement, *rest):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", seen)
    try:
        page = customers.list_customers(staff["manager"], CustomerFilter(owner="mine"))
    finally:
        event.remove(db.engine, "before_cursor_execute", seen)
    assert (page.total, page.pages, page.items, page.tag_counts) == (0, 1, [], {})
    assert len(statements) == 1  # the ids: no count, no page, no tag counts


def test_the_complement_counts_a_customer_the_filter_cannot_judge_as_left_out(staff, office):
    """owner = me is NULL (not false) for a pool customer: it is still outside."""
    sales = staff["sales"]
    query = customers.filtered_query(sales, CustomerFilter(owner="mine"))
    a, b, c = office["tags"]
    assert customers.tag_counts(query, total=10**9) == customers.tag_counts(query) == {a.id: 2, b.id: 1, c.id: 1}


@pytest.fixture
def texts(staff):
    """Customers for the list's text filter: names, companies, phone numbers, owners."""
    rows = [("sales", "王小明", "华东机械", "13800135678"), ("sales2", "李华", "明光电子", "13900001234"),
            (None, "张明", "", "02188885678"), (None, "赵六", "百分之100%公司", ""),
            (None, "孙_八", None, ""), (None, "周九", "Acme 贸易", ""),
            ("sales", "钱七", "机械厂", "13700009999")]
    made = []
    for owner, name, company, phone in rows:
        actor = staff[owner] if owner else staff["frontdesk"]
        made.append(customers.create_customer(actor, CustomerData(
            name=name, company=company, phones=[("mobile", phone)] if phone else [])))
    customers.archive(staff["manager"], customers.create_customer(
        staff["manager"], CustomerData(name="明档案", phones=[("mobile", "13600005678")])))
    return made


def test_a_fragment_without_ascii_letters_is_found_with_instr_on_sqlite(staff):
    """Chinese and digits are matched by instr() on SQLite (no pattern to match: half
    the time of LIKE on a scan of every customer); ASCII letters, which SQLite's LIKE
    matches in either case, and PostgreSQL keep LIKE."""
    sqlite = db.session.get_bind().dialect.name == "sqlite"
    for q, instr in (("王芳", sqlite), ("5678", sqlite), ("100%", sqlite), ("Acme", False), ("王a", False)):
        sql = str(customers._holds(Customer.name, q).compile(db.session.get_bind()))
        assert ("instr(" in sql, "LIKE" in sql) == (instr, not instr), (q, sql)


def _answers_of(monkeypatch, name):
    """The answers ``search.<name>`` gives from now on (None: the scan decides)."""
    answers = []
    asked = getattr(search, name)
    monkeypatch.setattr(search, name, lambda text: answers.append(asked(text)) or answers[-1])
    return answers


@pytest.mark.parametrize("indexed", [False, True])
@pytest.mark.parametrize("one_snapshot", [True, False])
def test_the_text_filter_matches_names_companies_and_phone_ends_in_each_scope(staff, texts, monkeypatch,
                                                                               one_snapshot, indexed):
    """Each user's matches of a name or company fragment or a phone number's end:
    only customers in their scope, never an archived one; the same total and page
    whether the page re-applies the filter (PostgreSQL) or not (SQLite's one snapshot),
    and whether the search index names the candidates (committed: the index has
    every customer) or every customer is tested (not yet in the index)."""
    monkeypatch.setattr(customers, "_one_snapshot", lambda: one_snapshot)
    if indexed:
        db.session.commit()
    named = _answers_of(monkeypatch, "customers_possibly_named")
    ending = _answers_of(monkeypatch, "customers_possibly_with_phone_ending")
    wang, li, zhang, zhao, sun, zhou, qian = texts
    pool_ = {zhang, zhao, sun, zhou}
    everyone = {"manager": {wang, li, qian} | pool_, "sales": {wang, qian} | pool_,
                "sales2": {li} | pool_, "frontdesk": {wang, li, qian} | pool_}
    cases = {"明": {wang, li, zhang}, "机械": {wang, qian}, "5678": {wang, zhang}, "0000": set(),
             "100%": {zhao}, "%": {zhao}, "1234": {li}, "_": {sun}, "孙_": {sun}, "0%公": {zhao},
             "Acme": {zhou}, "me 贸": {zhou}, "x": set(),
             # SQLite's LIKE matches ASCII letters in either case; PostgreSQL's does not.
             "ACME": {zhou} if db.session.get_bind().dialect.name == "sqlite" else set()}
    for role, visible in everyone.items():
        for q, matches in cases.items():
            expected = matches & visible
            pages = _strategies(monkeypatch, lambda q=q, role=role: customers.list_customers(
                staff[role], CustomerFilter(q=q, sort="name", per_page=2)))
            for page in pages:
                assert page.total == len(expected), (role, q)
                assert {c.id for c in page.items} <= {c.id for c in expected}, (role, q)
                assert [c.id for c in page.items] == [c.id for c in pages[0].items], (role, q)
            every = [c.id for p in range(1, pages[0].pages + 1) for c in customers.list_customers(
                staff[role], CustomerFilter(q=q, sort="name", per_page=2, page=p)).items]
            assert sorted(every) == sorted(c.id for c in expected), (role, q)
    # Chinese texts and phone numbers' ends were narrowed by the index when it had
    # every customer, and never before; other texts never.
    assert any(a is not None for a in named) == indexed and any(a is not None for a in ending) == indexed


def test_the_index_names_candidates_only_for_chinese_text_and_phone_ends(staff, texts):
    """Every customer whose name or company holds a Chinese text is among the
    index's candidates, and every one with a phone number ending in the digits
    (the candidates may hold more: a number beginning with them, a customer of
    another owner, an archived one, which the database then leaves out). Other
    texts (Latin letters, digits, mixed) get no candidates: the index holds
    prefixes of their words, not every fragment."""
    db.session.commit()
    wang, li, zhang, zhao, sun, zhou, qian = texts
    archived = db.session.scalar(select(Customer.id).where(Customer.name == "明档案"))
    assert search.customers_possibly_named("明") == {wang.id, li.id, zhang.id, archived}
    assert search.customers_possibly_named("机械") == {wang.id, qian.id}
    assert search.customers_possibly_named("貿易") == {zhou.id}  # traditional 貿, folded as the index is
    assert search.customers_possibly_named("小明光") == set()
    assert search.customers_possibly_with_phone_ending("5678") == {wang.id, zhang.id, archived}
    assert wang.id in search.customers_possibly_with_phone_ending("1380")  # 13800135678 begins with it
    for text in ("Acme", "王a", "5678", "明 档", "孙_", ""):
        assert search.customers_possibly_named(text) is None, text
    for digits in ("567", "56a8", ""):
        assert search.customers_possibly_with_phone_ending(digits) is None, digits
    assert customers.list_customers(staff["manager"], CustomerFilter(q="1380")).total == 0


def test_a_change_not_yet_in_the_index_is_found_by_testing_every_customer(staff, texts):
    """A rename waiting in the search backlog (here: flushed in the open transaction,
    as a change committed by another process is until its index update) makes the
    index unable to say: the list tests every customer and finds the new name."""
    db.session.commit()
    wang = texts[0]
    assert search.customers_possibly_named("大明") == set()
    customers.update_customer(staff["manager"], wang, CustomerData(
        name="王大明", company=wang.company, phones=[("mobile", "13800135678")]))
    db.session.flush()
    assert search.customers_possibly_named("大明") is None
    assert search.customers_possibly_with_phone_ending("5678") is None
    found = customers.list_customers(staff["manager"], CustomerFilter(q="大明"))
    assert [c.id for c in found.items] == [wang.id]
    assert customers.list_customers(staff["manager"], CustomerFilter(q="小明")).total == 0
    db.session.commit()  # now in the index
    assert search.customers_possibly_named("大明") == {wang.id}


def test_too_many_candidates_or_no_index_leave_the_scan_to_answer(staff, texts, monkeypatch):
    """More candidates than LIST_CANDIDATES_MAX, or an index that cannot be read:
    no candidates, and the list is the same."""
    from services.search import store

    db.session.commit()
    expected = customers.list_customers(staff["manager"], CustomerFilter(q="明")).total
    assert expected == 3  # and an archived customer: four candidates
    monkeypatch.setattr(search, "LIST_CANDIDATES_MAX", 4)
    assert search.customers_possibly_named("明") is not None
    monkeypatch.setattr(search, "LIST_CANDIDATES_MAX", 3)
    assert search.customers_possibly_named("明") is None
    assert customers.list_customers(staff["manager"], CustomerFilter(q="明")).total == expected
    monkeypatch.setattr(search, "LIST_CANDIDATES_MAX", 2000)

    def unavailable(*_args):
        raise store.IndexUnavailable("gone")

    monkeypatch.setattr(store, "search", unavailable)
    assert search.customers_possibly_named("明") is None
    assert search.customers_possibly_with_phone_ending("5678") is None
    assert customers.list_customers(staff["manager"], CustomerFilter(q="明")).total == expected


def test_a_text_with_a_digit_reads_only_the_customers_with_a_digit_in_name_or_company(staff, texts):
    """A name or company holding a text with a digit holds a digit: the name and
    company scan of such a text reads the partial index of those customers (on
    SQLite, the plan says so; PostgreSQL's plan depends on its statistics). The
    condition holds for exactly the customers with an ASCII digit in either field."""

    zhao = texts[3]  # 百分之100%公司
    customers.update_customer(staff["manager"], texts[6], CustomerData(name="钱7", company="机械厂"))
    with_a_digit = set(db.session.scalars(select(Customer.id).where(customers._with_a_digit(Customer))))
    assert with_a_digit == {zhao.id, texts[6].id}
    assert customers.list_customers(staff["manager"], CustomerFilter(q="7")).total == 1  # the name
    if db.engine.dialect.name != "sqlite":
        return
    for q in ("5678", "100%", "0%公", "A1"):
        query = customers.filtered_query(staff["manager"], CustomerFilter(q=q)).with_only_columns(Customer.id)
        plan = sqlite_plan(query)
        assert "INDEX ix_customers_digit_text" in plan, (q, plan)
    query = customers.filtered_query(staff["manager"], CustomerFilter(q="机械")).with_only_columns(Customer.id)
    assert "ix_customers_digit_text" not in sqlite_plan(query)


@pytest.mark.parametrize("flt", [CustomerFilter(stage="intent"), CustomerFilter(importance="A")])
@pytest.mark.parametrize("role", ["sales", "manager"])
def test_a_stage_or_importance_filter_groups_its_customers_by_tags_without_sorting(staff, office, flt, role):
    """The tag counts of a stage or importance filter read its covering index, where
    the filter's customers come in tag_key order: no temporary tree to group them
    (on SQLite, the plan says so; PostgreSQL's depends on its statistics). The
    groups add up to the filter's total."""

    from extensions import refresh_statistics

    refresh_statistics()
    query = customers.filtered_query(staff[role], flt)
    groups = db.session.execute(customers.tag_key_groups_query(query)).all()
    assert sum(n for _key, n in groups) == customers.list_customers(staff[role], flt).total
    if db.engine.dialect.name != "sqlite":
        return
    plan = sqlite_plan(customers.tag_key_groups_query(query))
    index = "ix_customers_stage_archived_tags" if flt.stage else "ix_customers_importance_archived_tags"
    assert f"COVERING INDEX {index}" in plan and "TEMP B-TREE" not in plan, plan


@pytest.mark.parametrize("role", ["sales", "manager"])
def test_a_tag_filters_customers_are_judged_and_grouped_from_a_narrow_index(staff, office, role):
    """A tag filter finds its customers by id in customer_tags; their scope and tags
    come from ix_customers_id_scope, not the customers' rows (on SQLite; PostgreSQL
    has no such index; SQLite's planner picks it from the statistics, which ANALYZE
    keeps nightly and after imports). The groups add up to the filter's total."""

    from extensions import refresh_statistics

    refresh_statistics()
    flt = CustomerFilter(tag_ids=[office["tags"][0].id])
    query = customers.filtered_query(staff[role], flt)
    groups = db.session.execute(customers.tag_key_groups_query(query)).all()
    assert sum(n for _key, n in groups) == customers.list_customers(staff[role], flt).total > 0
    if db.engine.dialect.name != "sqlite":
        return
    plan = sqlite_plan(customers.tag_key_groups_query(query))
    assert "SEARCH customers USING COVERING INDEX ix_customers_id_scope" in plan, plan


def test_the_whole_pool_is_counted_as_every_customer_less_the_owned_and_archived(staff, office, monkeypatch):
    """The unfiltered pool's total is every customer less those owned or archived
    (neither counted twice), the same as counting the pool, for whoever sees it all."""
    monkeypatch.setattr(customers, "SMALL_SET", 0)
    made = office["customers"]
    customers.archive(staff["manager"], made[3])  # a pool customer, archived
    customers.archive(staff["manager"], made[0])  # an owned one, archived: outside once
    in_pool = len(list(db.session.scalars(customers.filtered_query(staff["manager"], CustomerFilter(owner="pool")))))
    assert in_pool == 2
    for role in ("manager", "sales", "sales2"):
        page = pool_list.list_pool(staff[role], PoolFilter())
        assert page.total == in_pool, role
        assert len(page.items) == in_pool, role


def _statements_of(call):
    """``call()``'s result and the SQL statements it ran."""
    from sqlalchemy import event

    statements = []

    def seen(conn, cursor, statement, *rest):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", seen)
    try:
        return call(), statements
    finally:
        event.remove(db.engine, "before_cursor_execute", seen)


def test_a_salespersons_whole_list_is_every_customer_less_the_archived_and_the_colleagues(
        staff, office, monkeypatch):
    """The unfiltered list of a salesperson (their own customers and the pool's) is
    counted as every customer less those archived or owned by a colleague (neither
    counted twice), by index: no pass over the customers it shows (the pool is most
    customers: LARGE_SHARE 0 makes it so here)."""
    monkeypatch.setattr(customers, "SMALL_SET", 0)
    monkeypatch.setattr(customers, "LARGE_SHARE", 0)
    made = office["customers"]
    customers.archive(staff["manager"], made[2])  # a colleague's, archived: left out once
    customers.archive(staff["manager"], made[3])  # a pool customer, archived
    for role in ("sales", "sales2"):
        user = staff[role]
        total, counts = _expected(user, CustomerFilter())
        page, statements = _statements_of(lambda user=user: customers.list_customers(user, CustomerFilter()))
        assert (page.total, page.tag_counts) == (total, counts), role
        assert total == len([c for c in made if c.archived_at is None and c.owner_id in (None, user.id)])
        assert any("UNION" in s and "count(" in s for s in statements), role
        assert not any("GROUP BY customers.tag_key" in s for s in statements), role


def test_a_filtered_list_reads_its_matches_once_for_the_total_and_the_tag_counts(staff, office, monkeypatch):
    """Beyond a short list of ids, the total of a filtered list is the sum of its
    tag counts' groups: one statement over the matches, no count of its own."""
    monkeypatch.setattr(customers, "SMALL_SET", 0)
    for role in ("sales", "manager"):
        flt = CustomerFilter(stage="intent")
        total, counts = _expected(staff[role], flt)
        page, statements = _statements_of(lambda role=role, flt=flt: customers.list_customers(staff[role], flt))
        assert (page.total, page.tag_counts) == (total, counts), role
        over_matches = [s for s in statements if "customers.stage = " in s and "count(" in s]
        assert len(over_matches) == 1 and "GROUP BY customers.tag_key" in over_matches[0], (role, over_matches)
