"""The helpers that each do one job for the whole app: a tag chip's URL, a
fragment-only response, the phone parser and matching typed % and _ literally."""

from urllib.parse import parse_qs, urlsplit

import pytest
from flask import url_for

from blueprints import htmx
from blueprints.tags.filter import toggle_tag_url
from extensions import db
from models import User
from services import customers, mentions, notes_list, phones
from services.customers import CustomerFilter
from services.notes_list import NoteFilter
from services.search import analysis
from tests.factories import make_account, make_customer, make_note


def test_a_tag_chip_adds_or_removes_its_tag_keeps_the_filter_and_goes_to_page_one(app):
    with app.test_request_context("/customers"):
        url_for_tag = toggle_tag_url("customers.index", {"stage": "deal", "tag": [7, 3], "page": 4}, [7, 3])
        added, removed = urlsplit(url_for_tag(5)), urlsplit(url_for_tag(7))
    assert added.path == "/customers"
    assert parse_qs(added.query) == {"stage": ["deal"], "tag": ["3", "5", "7"]}
    assert parse_qs(removed.query) == {"stage": ["deal"], "tag": ["3"]}


@pytest.mark.parametrize("args, selected", [
    ({}, []), ({}, [4]), ({"q": "王 小&明%", "sort": "name", "page": 2}, [2, 9]), ({"tag": [1], "archived": "1"}, [1]),
])
def test_a_tag_chips_url_is_the_one_url_for_builds(app, args, selected):
    """Every chip's URL is built from one base URL; it is exactly url_for's."""
    with app.test_request_context("/customers"):
        url_for_tag = toggle_tag_url("customers.index", args, selected)
        kept = {name: value for name, value in args.items() if name not in ("tag", "page")}
        for tag_id in (1, 2, 4, 9):
            chosen = sorted(set(selected) ^ {tag_id})
            assert url_for_tag(tag_id) == url_for("customers.index", **kept, tag=chosen), (args, tag_id)


@pytest.mark.parametrize("headers", [{}, {"HX-Request": "true"}])
def test_a_fragment_response_is_the_partial_for_every_request(app, headers):
    with app.test_request_context("/", headers=headers):
        response = htmx.fragment("notes/_deleted.html", status=202)
    assert response.status_code == 202 and "HX-Request" in response.vary
    assert b"<html" not in response.get_data()


@pytest.mark.parametrize("typed, stored", [
    ("+86 138-0013-8000", "13800138000"), ("0086 13800138000", "13800138000"),
    ("8613800138000", "13800138000"), ("（010）6552-9988", "01065529988"), ("１３８ ００１３ ８０００", "13800138000"),
])
def test_forms_and_search_read_a_typed_number_alike(typed, stored):
    assert phones.normalise(typed) == stored
    assert analysis.QueryWords(typed).phone == stored == phones.typed_digits(typed, 4)


@pytest.mark.parametrize("typed", ["138 0013 x", "+86+138", "٣٣٣٣٣٣", "1234", ""])
def test_what_is_not_a_number_is_refused_by_both(typed):
    with pytest.raises(phones.InvalidPhone):
        phones.normalise(typed)
    assert phones.typed_digits(typed, 5) == ""


def test_typed_percent_and_underscore_match_only_themselves(app):
    with app.app_context():
        sales = make_account("sales", "li_na", display_name="李娜")
        make_account("sales", "lixna", display_name="李四")
        for name in ("折扣100%客户", "折扣100元客户", "a_b", "axb"):
            make_note(sales, make_customer(sales, name), f"备注 {name}")
        db.session.commit()
        sales = db.session.get(User, sales.id)

        def listed(q):
            return sorted(c.name for c in customers.list_customers(sales, CustomerFilter(q=q)).items)

        assert listed("100%") == ["折扣100%客户"]
        assert listed("a_b") == ["a_b"]
        found = notes_list.list_notes(sales, NoteFilter(q="100%"))
        assert [n.body for n in found.notes] == ["备注 折扣100%客户"]
        assert [u.username for u in mentions.suggest_colleagues("li_")] == ["li_na"]
