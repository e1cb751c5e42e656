"""The front desk's path (U4, F2, S1, N3, U3): the home page's lookup is the header's
search box, a customer opened from a search has the cursor in the note box, the card
and the quick note come first, and the front desk is told the truth about notes it
may not read."""

from __future__ import annotations

import re

import pytest

from extensions import db
from models import Customer, CustomerNote, User
from services import customers, notes, pool
from services.customers import CustomerData
from services.notes import NoteData
from tests.conftest import login

HX = {"HX-Request": "true"}


@pytest.fixture
def office(app, make_user):
    """A salesperson owning 张伟华 (138 0013 8000) with a note the front desk may not
    read, a pool customer with a note, a customer with no note, and a front desk."""
    seller = make_user("sales", display_name="李销售")
    desk = make_user("frontdesk", display_name="前台小陈")
    with app.app_context():
        owner = db.session.get(User, seller.id)
        zhang = customers.create_customer(owner, CustomerData(
            name="张伟华", company="华信科技", phones=[("mobile", "13800138000")]), acknowledge_duplicates=True)
        notes.create_note(owner, zhang, NoteData(kind="call", body="机密报价八折"))
        pooled = customers.create_customer(owner, CustomerData(name="公海客户"), acknowledge_duplicates=True)
        notes.create_note(owner, pooled, NoteData(kind="call", body="公海里的秘密"))
        db.session.flush()
        pool.release_to_pool(owner, pooled, "other", "测试")
        quiet = customers.create_customer(owner, CustomerData(name="无记录客户"), acknowledge_duplicates=True)
        db.session.commit()
        ids = {"zhang": zhang.id, "pooled": pooled.id, "quiet": quiet.id}
    return {"sales": seller, "desk": desk, **ids}


def _page(client, url, **kwargs):
    response = client.get(url, **kwargs)
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


# ---- one search ----------------------------------------------------------------

def test_front_desk_home_lookup_is_the_search_box(client, office):
    login(client, office["desk"].username)
    html = _page(client, "/")
    box = re.search(r'<input type="search" id="lookup-search".*?>', html, re.S).group(0)
    assert 'hx-get="/search/suggest"' in box and 'aria-controls="lookup-search-results"' in box
    assert "data-search-primary" in box and "autofocus" in box and 'role="combobox"' in box
    assert 'id="lookup-search-results"' in html
    # The header's box is the same macro: same search, same attributes, other ids.
    header = re.search(r'<input type="search" id="global-search".*?>', html, re.S).group(0)
    assert 'hx-get="/search/suggest"' in header and "data-search-primary" not in header
    assert 'action="/customers"' not in html.split('id="lookup-title"')[1].split("</section>")[0]


@pytest.mark.parametrize("typed", ["zwh", "+86 138-0013-8000", "8000", "华信"])
def test_lookup_finds_what_the_header_finds(client, office, typed):
    login(client, office["desk"].username)
    lookup = _page(client, "/search/suggest", query_string={"q": typed, "box": "lookup"}, headers=HX)
    header = _page(client, "/search/suggest", query_string={"q": typed}, headers=HX)
    assert "张伟华" in re.sub(r"</?mark>", "", lookup)
    assert f'id="lookup-suggest-customer-{office["zhang"]}"' in lookup
    assert f'id="suggest-customer-{office["zhang"]}"' in header  # the header's ids stay as they were
    assert f'href="/customers/{office["zhang"]}?focus=note"' in lookup
    assert "机密报价" not in lookup  # the front desk finds no note it may not read


def test_unknown_box_names_fall_back_to_the_headers_ids(client, office):
    login(client, office["desk"].username)
    html = _page(client, "/search/suggest", query_string={"q": "zwh", "box": '"><script>'}, headers=HX)
    assert f'id="suggest-customer-{office["zhang"]}"' in html and "<script>" not in html


def test_sales_home_has_no_lookup_box_but_the_header(client, office):
    login(client, office["sales"].username)
    html = _page(client, "/")
    assert 'id="lookup-search"' not in html and 'id="global-search"' in html


# ---- the customer page ---------------------------------------------------------

def test_opened_from_a_lookup_the_cursor_is_in_the_note_box(client, office):
    login(client, office["desk"].username)
    focused = _page(client, f"/customers/{office['zhang']}?focus=note")
    body = re.search(r'<textarea[^>]*name="body"[^>]*>', focused).group(0)
    assert "autofocus" in body
    plain = _page(client, f"/customers/{office['zhang']}")
    assert "autofocus" not in re.search(r'<textarea[^>]*name="body"[^>]*>', plain).group(0)


def test_card_and_quick_note_come_before_the_notes_pool_and_follow_ups(client, office):
    login(client, office["sales"].username)
    html = _page(client, f"/customers/{office['zhang']}?focus=note")
    order = [html.index(marker) for marker in (
        'id="customer-card"', 'id="note-form"', 'id="notes-list"', 'id="pool-panel"', 'id="customer-tasks"')]
    assert order == sorted(order)


def test_a_customer_one_may_not_see_stays_404_from_a_lookup(client, office, make_user):
    other = make_user("sales")
    login(client, other.username)
    assert client.get(f"/customers/{office['zhang']}?focus=note").status_code == 404


def test_tag_chooser_is_folded_and_works_as_checkboxes(client, office, app):
    from services import tags

    with app.app_context():
        admin = db.session.get(User, office["sales"].id)
        group = tags.create_group(admin, "地区")
        tag = tags.create_tag(admin, group.id, "华南区")
        db.session.commit()
        tag_id = tag.id
    login(client, office["sales"].username)
    html = _page(client, f"/customers/{office['zhang']}")
    chooser = re.search(r'<details class="tag-picker tag-chooser" id="note-new-tags-picker".*?</details>',
                        html, re.S).group(0)
    assert "data-tag-chooser" in chooser and " open" not in chooser.split(">")[0]
    assert f'name="tags" value="{tag_id}"' in chooser and "none chosen" in chooser
    response = client.post(f"/customers/{office['zhang']}/notes", headers=HX,
                           data={"kind": "call", "body": "带标签", "tags": [str(tag_id)]})
    assert response.status_code == 200
    with app.app_context():
        note = db.session.scalars(db.select(CustomerNote).filter_by(body="带标签")).one()
        assert [t.name for t in note.tags] == ["华南区"]


# ---- what the front desk is told about notes ------------------------------------

def test_front_desk_is_told_who_reads_the_notes_and_when_the_last_contact_was(client, office):
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "zh"
    login(client, office["desk"].username)
    html = _page(client, f"/customers/{office['zhang']}")
    assert "暂无跟进记录" not in html and "请在上方填写第一条" not in html
    assert "同事写的跟进记录由负责人李销售和主管查看。" in html
    assert "最近联系：" in html and "最近联系</dt>" in html  # in the message and on the card
    assert "机密报价" not in html


def test_front_desk_on_a_pool_customer_hears_of_sales_staff(client, office):
    login(client, office["desk"].username)
    html = _page(client, f"/customers/{office['pooled']}")
    assert "for sales staff and managers to read: the customer is in the public pool." in html
    assert "公海里的秘密" not in html and "No notes yet." not in html


def test_with_no_note_at_all_the_empty_state_says_write_the_first(client, office):
    login(client, office["desk"].username)
    html = _page(client, f"/customers/{office['quiet']}")
    assert "No notes yet. Write the first one above." in html and 'data-testid="notes-hidden"' not in html


def test_front_desk_sees_its_own_notes_and_hears_of_the_others(client, office, app):
    with app.app_context():
        desk = db.session.get(User, office["desk"].id)
        customer = db.session.get(Customer, office["zhang"])
        notes.create_note(desk, customer, NoteData(kind="call", body="前台接的电话"))
        db.session.commit()
    login(client, office["desk"].username)
    html = _page(client, f"/customers/{office['zhang']}")
    assert "前台接的电话" in html and 'data-testid="notes-hidden"' in html and "机密报价" not in html


def test_sales_who_read_everything_hear_nothing_of_hidden_notes(client, office):
    login(client, office["sales"].username)
    html = _page(client, f"/customers/{office['zhang']}")
    assert "机密报价" in html and 'data-testid="notes-hidden"' not in html


def test_hidden_notes_service_tells_only_whether(app, office):
    with app.app_context():
        desk, seller = db.session.get(User, office["desk"].id), db.session.get(User, office["sales"].id)
        zhang = db.session.get(Customer, office["zhang"])
        quiet = db.session.get(Customer, office["quiet"])
        assert notes.has_unreadable_notes(desk, zhang) is True
        assert notes.has_unreadable_notes(desk, quiet) is False
        assert notes.has_unreadable_notes(seller, zhang) is False
