"""The search views (S1–S4): the dropdown while typing and the results page, as
fragments and as pages; highlights that stay escaped; what each role may find; bad
input that never errors."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import inspect

from extensions import db
from models import Customer, Tag, TagGroup
from services import accounts, customers, notes, search
from services.customers import CustomerData
from services.notes import NoteData
from tests.conftest import TEST_PASSWORD, login, make_tag, statements_run
from tests.factories import make_customer, make_note

HX = {"HX-Request": "true"}


@pytest.fixture
def office(app):
    """Two salespeople with a customer each, a pool customer, an archived customer, a
    front desk clerk and a manager; notes by s1, s2 and the front desk."""
    with app.app_context():
        s1 = accounts.create_user("s1", TEST_PASSWORD, "sales")
        s2 = accounts.create_user("s2", TEST_PASSWORD, "sales")
        desk = accounts.create_user("desk", TEST_PASSWORD, "frontdesk")
        boss = accounts.create_user("boss", TEST_PASSWORD, "manager")

        own = make_customer(s1, "张伟", phone="13812345678", company="东方贸易")
        theirs = make_customer(s2, "张伟明", phone="13900001111", company="西山机械")
        pool = make_customer(boss, "张三丰")
        hidden = make_customer(s1, "张伟国")
        customers.archive(boss, hidden)
        make_note(s1, own, "张伟 要报价，下周签合同")
        make_note(s2, theirs, "机密报价：只给张伟明")
        make_note(desk, theirs, "前台来电：报价问题")
        db.session.commit()
        return {"own": own.id, "theirs": theirs.id, "pool": pool.id, "hidden": hidden.id}


def sign_in(client, username: str) -> None:
    assert login(client, username).status_code == 303


def suggest(client, q: str):
    return client.get("/search/suggest", query_string={"q": q}, headers=HX)


def total(page: str, tab: str) -> int:
    return int(re.search(rf'data-testid="total-{tab}">(\d+)<', page).group(1))


# ---- the dropdown -----------------------------------------------------------------------

def test_suggest_groups_customers_and_notes_with_highlights(client, office):
    sign_in(client, "boss")
    response = suggest(client, "张伟")
    assert response.status_code == 200 and "HX-Request" in response.headers["Vary"]
    html = response.data.decode()
    assert "<html" not in html
    customers_part, notes_part = html.split('id="suggest-notes-head"')
    assert customers_part.count('data-testid="suggest-customer"') == 2  # not the archived one
    assert "<mark>张伟</mark>明" in customers_part
    assert f'href="/customers/{office["theirs"]}?focus=note"' in customers_part
    assert "138 1234 5678" in customers_part and "东方贸易" in customers_part
    assert notes_part.count('data-testid="suggest-note"') == 2
    assert f'href="/customers/{office["own"]}#note-' in notes_part
    assert 'href="/search?q=%E5%BC%A0%E4%BC%9F"' in html  # see all results


def test_suggest_marks_phone_numbers_across_their_spaces(client, office):
    sign_in(client, "s1")
    html = suggest(client, "138-1234-5678").data.decode()
    assert "<mark>138 1234 5678</mark>" in html
    assert "<mark>5678</mark>" in suggest(client, "5678").data.decode()


def test_suggest_shows_owner_or_pool(client, office):
    sign_in(client, "boss")
    html = suggest(client, "张").data.decode()
    assert ">s2<" in html and "Public pool" in html


def test_traditional_text_is_marked_for_a_simplified_query_and_back(app, client, office):
    with app.app_context():
        s1 = accounts.get_by_username("s1")
        customers.create_customer(s1, CustomerData(name="陳國華"), acknowledge_duplicates=True)
        db.session.commit()
    sign_in(client, "s1")
    assert "<mark>陳國</mark>華" in suggest(client, "陈国").data.decode()
    assert "<mark>张伟</mark>" in suggest(client, "張偉").data.decode()


def test_highlight_escapes_html_in_customer_data(app, client, office):
    with app.app_context():
        s1 = accounts.get_by_username("s1")
        customer = customers.create_customer(
            s1, CustomerData(name="<b>张伟</b>", company="<script>x</script>"), acknowledge_duplicates=True)
        notes.create_note(s1, customer, NoteData(kind="call", body="<i>张伟</i> & 报价"))
        db.session.commit()
    sign_in(client, "s1")
    for html in (suggest(client, "张伟").data.decode(),
                 client.get("/search?q=张伟").data.decode(),
                 client.get("/search?q=张伟&tab=notes").data.decode()):
        assert "<b>" not in html and "<i>" not in html and "<script>x" not in html
    assert "&lt;b&gt;<mark>张伟</mark>&lt;/b&gt;" in suggest(client, "张伟").data.decode()
    assert "&lt;i&gt;<mark>张伟</mark>&lt;/i&gt; &amp; 报价" in client.get("/search?q=张伟&tab=notes").data.decode()


def test_empty_query_gives_an_empty_fragment(client, office):
    sign_in(client, "s1")
    for q in ("", "   ", "a", "*", '"'):
        response = suggest(client, q)
        assert response.status_code == 200 and response.data.strip() == b""


def test_suggest_as_a_full_page_goes_to_the_results_page(client, office):
    sign_in(client, "s1")
    response = client.get("/search/suggest?q=张伟")
    assert response.status_code == 303
    assert response.headers["Location"] == "/search?q=%E5%BC%A0%E4%BC%9F"


@pytest.mark.parametrize("q, expected", [
    ("139 0000 2222", "/customers/new?phone=13900002222"),
    ("+86 139-0000-2222", "/customers/new?phone=13900002222"),
    ("王小二", "/customers/new?name=%E7%8E%8B%E5%B0%8F%E4%BA%8C"),
])
def test_nothing_found_offers_a_new_customer_prefilled(client, office, q, expected):
    sign_in(client, "desk")
    html = suggest(client, q).data.decode()
    assert "No customer found" in html
    link = re.search(r'href="([^"]+)"[^>]*data-testid="suggest-new-customer"', html).group(1)
    assert link.replace("&amp;", "&") == expected
    page = client.get(f"/search?q={q.replace('+', '%2B')}").data.decode()
    assert 'data-testid="search-new-customer"' in page and expected in page.replace("&amp;", "&")
    form = client.get(expected).data.decode()
    prefilled = "13900002222" if "phone" in expected else "王小二"
    assert f'value="{prefilled}"' in form


# ---- who finds what ---------------------------------------------------------------------

@pytest.mark.parametrize("endpoint", ["/search/suggest?q=张伟", "/search?q=张伟"])
def test_login_required_plain_and_htmx(client, office, endpoint):
    plain = client.get(endpoint)
    assert plain.status_code == 303 and plain.headers["Location"].startswith("/login?next=")
    htmx = client.get(endpoint, headers=HX)
    assert htmx.status_code == 204 and htmx.headers["HX-Redirect"] == "/login"
    assert "张伟".encode() not in plain.data + htmx.data


def test_sales_does_not_find_a_colleagues_customer(client, office):
    sign_in(client, "s1")
    html = suggest(client, "张伟").data.decode()
    assert "张伟</mark>明" not in html and "13900001111" not in html and "139 0000 1111" not in html
    assert "西山" not in html and "机密" not in html
    page = client.get("/search?q=张伟").data.decode()
    assert total(page, "customers") == 1 and "张伟</mark>明" not in page
    assert total(page, "notes") == 1  # own note only
    by_phone = client.get("/search?q=13900001111").data.decode()
    assert total(by_phone, "customers") == 0
    pool = client.get("/search?q=张三丰").data.decode()
    assert total(pool, "customers") == 1  # the pool is open to sales


def test_frontdesk_finds_every_customer_but_only_its_own_notes(client, office):
    sign_in(client, "desk")
    page = client.get("/search?q=张伟").data.decode()
    assert total(page, "customers") == 2
    notes_page = client.get("/search?q=报价&tab=notes").data.decode()
    assert total(notes_page, "notes") == 1
    assert "前台来电" in notes_page and "机密" not in notes_page and "签合同" not in notes_page
    assert 'data-testid="search-archived"' not in page


@pytest.mark.parametrize("user, sees_archived", [("boss", True), ("s1", False), ("desk", False)])
def test_archived_only_when_asked_and_allowed(client, office, user, sees_archived):
    sign_in(client, user)
    normal = client.get("/search?q=张伟国").data.decode()
    assert total(normal, "customers") == 0
    asked = client.get("/search?q=张伟国&archived=1").data.decode()
    assert total(asked, "customers") == (1 if sees_archived else 0)
    assert ('data-testid="search-archived"' in normal) is sees_archived
    if sees_archived:
        assert "Archived</span>" in asked
    assert 'data-testid="suggest-customer"' not in suggest(client, "张伟国").data.decode()


def test_admin_sees_the_archived_checkbox(client, office, login_as):
    login_as("admin")
    page = client.get("/search?q=张伟国&archived=1").data.decode()
    assert 'data-testid="search-archived"' in page and total(page, "customers") == 1


# ---- the results page -------------------------------------------------------------------

def test_results_page_full_and_fragment(client, office):
    sign_in(client, "boss")
    page = client.get("/search?q=报价")
    fragment = client.get("/search?q=报价", headers=HX)
    assert page.status_code == fragment.status_code == 200
    assert b"<html" in page.data and b'id="search-form"' in page.data
    assert b"<html" not in fragment.data and b'id="search-form"' not in fragment.data
    assert "HX-Request" in page.headers["Vary"] and "HX-Request" in fragment.headers["Vary"]
    text = fragment.data.decode()
    assert total(text, "notes") == 3 and 'aria-current="page" data-testid="tab-customers"' in text
    notes_tab = client.get("/search?q=报价&tab=notes", headers=HX).data.decode()
    assert notes_tab.count("<mark>报价</mark>") == 3 and ">s2<" in notes_tab  # author shown
    empty = client.get("/search").data.decode()
    assert 'data-testid="search-empty"' in empty


def test_a_page_of_results_is_read_in_the_same_few_queries_however_long(app, client, office):
    """Phones, tags and owner of the customers, customer and author of the notes come
    with the rows: one more result is not one more round trip to the database."""
    with app.app_context():
        boss = accounts.get_by_username("boss")
        tags = [make_tag("重点", "级别"), make_tag("老客户", "来源")]
        for number, mark in enumerate("甲乙丙丁戊己庚辛壬"):
            customer = customers.create_customer(
                boss, CustomerData(name=f"询价客户{mark}", company="询价公司",
                                   phones=[("mobile", f"1391234{number:04d}"), ("landline", f"0105555{number:04d}")]),
                acknowledge_duplicates=True)
            customers.set_tags(boss, customer, [tag.id for tag in tags])
            db.session.commit()
            notes.create_note(boss, customer, NoteData(kind="call", body=f"询价客户{mark}来电"))
        db.session.commit()
    sign_in(client, "boss")
    assert search.sync.wait_for_background(30)  # its statements would be counted too

    def selects(url: str, shown: int, marker='class="search-result"') -> list[str]:
        with app.app_context(), statements_run(db.engine) as statements:
            html = client.get(url, headers=HX).data.decode()
        assert html.count(marker) == shown
        return [statement for statement in statements if statement.lstrip().upper().startswith("SELECT")]

    many, one = selects("/search?q=询价客户", 9), selects("/search?q=询价客户甲", 1)
    assert len(many) == len(one) and any("customer_tags" in statement for statement in many)
    assert len(selects("/search?q=询价客户&tab=notes", 9)) == len(selects("/search?q=询价客户甲&tab=notes", 1))
    # The dropdown shows no tags: it does not read them.
    many = selects("/search/suggest?q=询价客户", 6, 'data-testid="suggest-customer"')
    one = selects("/search/suggest?q=询价客户甲", 1, 'data-testid="suggest-customer"')
    assert len(many) == len(one) and not any("customer_tags" in statement for statement in many)


def test_tags_are_read_only_when_asked_for(app, office):
    with app.app_context():
        boss = accounts.get_by_username("boss")
        customer = customers.create_customer(boss, CustomerData(name="标签客户"), acknowledge_duplicates=True)
        db.session.commit()
        customers.set_tags(boss, customer, [make_tag("重点", "级别").id])
        db.session.commit()
        db.session.expunge_all()
        boss = accounts.get_by_username("boss")
        [found] = search.search_customers(boss, "标签客户", with_tags=True).items
        assert [tag.name for tag in found.tags] == ["重点"]
        db.session.expunge(found)
        [found] = search.search_customers(boss, "标签客户").items
        assert "tags" in inspect(found).unloaded


def test_paging(app, client, office):
    with app.app_context():
        boss = accounts.get_by_username("boss")
        for number in range(25):
            customers.create_customer(boss, CustomerData(name=f"测试客户{number:02d}"), acknowledge_duplicates=True)
            db.session.commit()
    sign_in(client, "boss")
    first = client.get("/search?q=测试", headers=HX).data.decode()
    assert total(first, "customers") == 25 and first.count('class="search-result"') == 20
    assert "/search?q=%E6%B5%8B%E8%AF%95&amp;page=2" in first and "Page 1 of 2" in first
    second = client.get("/search?q=测试&page=2", headers=HX).data.decode()
    assert second.count('class="search-result"') == 5 and "Page 2 of 2" in second
    names = set(re.findall(r"测试客户\d\d", first.replace("<mark>", "").replace("</mark>", "")))
    names |= set(re.findall(r"测试客户\d\d", second.replace("<mark>", "").replace("</mark>", "")))
    assert len(names) == 25


def test_tag_filter(app, client, office):
    with app.app_context():
        boss = accounts.get_by_username("boss")
        group = TagGroup(name="行业")
        db.session.add(group)
        db.session.flush()
        tag = Tag(group_id=group.id, name="制造")
        db.session.add(tag)
        db.session.commit()
        customers.set_tags(boss, db.session.get(Customer, office["theirs"]), [tag.id])
        db.session.commit()
        tag_id = tag.id
    sign_in(client, "boss")
    unfiltered = client.get("/search?q=张伟").data.decode()
    assert total(unfiltered, "customers") == 2 and f'data-tag-id="{tag_id}"' in unfiltered
    filtered = client.get(f"/search?q=张伟&tag={tag_id}", headers=HX).data.decode()
    assert total(filtered, "customers") == 1 and "西山机械" in filtered
    assert 'aria-pressed="true"' in filtered
    assert f'<input type="hidden" name="tag" value="{tag_id}" form="search-form">' in filtered
    assert tag_count(unfiltered, tag_id) == 1 and tag_count(filtered, tag_id) == 1
    assert tag_count(client.get("/search?q=东方&tab=customers").data.decode(), tag_id) == 0
    # counts are of what one may see: s1 does not see s2's customer, not even as a count
    client.post("/logout")
    sign_in(client, "s1")
    assert tag_count(client.get("/search?q=张伟").data.decode(), tag_id) == 0


def tag_count(page: str, tag_id: int) -> int:
    chip = re.search(rf'data-tag-id="{tag_id}">[^<]*<span class="tag-count">(\d+)</span>', page)
    return int(chip.group(1))


NASTY = [
    '"', "'", '"张伟', "name:张伟", "phone:138*", "*", "?", "张?", "(张伟", "[1 TO 9]", "{a}", "a AND b",
    "OR", "NOT 张伟", "张伟 OR 1=1", "AND OR NOT", "\\", "%", "_", "%_%", "' OR '1'='1", "<script>",
    "😀" * 500, "张" * 500, "a" * 500, "1" * 500, "\x00\x01\x1f", "张\x00伟", "\u200b", "ｚｈａｎｇ", "+", "-",
    "~2", "^3", "title:", ":", "/", "//", "张伟/", "!", "&&", "||", "+86", "0086", "()", "（）", "\ud7ff",
]


BAD_ARGUMENTS = [
    "page=abc", "page=-1", "page=0", "page=99999999999999999999999", "page=" + "9" * 5000, "page=1.5",
    "page=²", "tag=x", "tag=-3", "tag=0", "tag=99999999999999999999", "tag=²", "tag=1&tag=1&tag=2",
    "tab=nothing", "tab=", "archived=yes", "archived=1", "tab=notes&page=50", "q=a&q=b",
]


def test_nasty_queries_never_error(client, office):
    # One sign-in for the whole list: the office is the slow part.
    sign_in(client, "s1")
    for q in NASTY:
        for response in (suggest(client, q), client.get("/search", query_string={"q": q}),
                         client.get("/search", query_string={"q": q, "tab": "notes"}, headers=HX)):
            assert response.status_code == 200, repr(q)
    assert "<mark>张伟</mark>" in suggest(client, '"张伟"').data.decode()


def test_bad_arguments_never_error(client, office):
    sign_in(client, "boss")
    for args in BAD_ARGUMENTS:
        assert client.get(f"/search?q=张伟&{args}").status_code == 200, args
        fragment = client.get(f"/search?q=张伟&{args}", headers=HX)
        assert fragment.status_code == 200, args
        if "tab=notes" not in args and "tag=" not in args:
            assert total(fragment.data.decode(), "customers") >= 1, args


def test_front_desk_search_page_shows_no_customer_tags(app, client):
    from services import accounts, customers, tags
    from services.customers import CustomerData
    from tests.conftest import TEST_PASSWORD, login

    with app.app_context():
        boss = accounts.create_user("boss.t", TEST_PASSWORD, "manager")
        accounts.create_user("desk.t", TEST_PASSWORD, "frontdesk")
        tag = tags.create_tag(boss, tags.create_group(boss, "等级").id, "战略客户")
        customer = customers.create_customer(boss, CustomerData(name="周四"))
        customers.set_tags(boss, customer, [tag.id])
        db.session.commit()
    assert login(client, "desk.t").status_code == 303
    page = client.get("/search?q=周四").get_data(as_text=True)
    assert "周四" in page and "战略客户" not in page


FOLD_ALPHABET = "aZ09 -.@张偉伟報，。（）：ＡＢ１２ß İﬁé\u0301ｶﾞ㈱Ⅻ가\u302a、"


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=FOLD_ALPHABET, max_size=12))
def test_text_folded_whole_maps_back_like_character_by_character(text):
    """Marking folds shown text whole when every character folds one for one
    (ASCII, CJK, full-width ASCII); the result and the way back to the original
    characters are those of folding each character alone."""
    from blueprints.search import highlight
    from services.search.analysis import fold

    folded, origin = [], []
    for index, char in enumerate(text):
        for out in fold(char):
            folded.append(out)
            origin.append(index)
    assert highlight._normalised(text) == ("".join(folded), origin)
