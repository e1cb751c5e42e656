"""services.ids: what an id, an id list, a page number and a paging cursor may look
like. Everything else is None (or the default), never an exception."""

from datetime import datetime

import pytest

from services import ids

# Zero, signs, past 32 and 64 bits, Unicode digits (str.isdigit() accepts '²' and '٣',
# int() reads '٣' as 3 and ' 5' and '1_0' too), spaces inside, words, empties.
NOT_IDS = ["", " ", "0", "00", "-1", "+1", str(2**31), str(2**63), "9" * 20, "²", "٣", "１",
           "1_0", "1 0", "1.0", "0x10", "abc", "1e3", "\x00", None, 5, [], "99999999999"]


@pytest.mark.parametrize("text", NOT_IDS)
def test_what_is_not_an_id(text):
    assert ids.parse_id(text) is None


def test_ids_and_their_bounds():
    assert ids.parse_id("1") == 1
    assert ids.parse_id(" 42 ") == 42  # pasted with a space
    assert ids.parse_id("007") == 7
    assert ids.parse_id(str(ids.MAX_ID)) == ids.MAX_ID == 2**31 - 1
    assert ids.parse_id(str(ids.MAX_ID + 1)) is None


def test_is_id_takes_ints_only():
    assert ids.is_id(1) and ids.is_id(ids.MAX_ID)
    for value in (0, -1, ids.MAX_ID + 1, 2**63, True, "1", 1.0, None):
        assert not ids.is_id(value)


def test_id_lists_keep_the_order_drop_junk_and_repeats_and_stop_at_the_limit():
    assert ids.parse_ids(["3", "3", " 7 ", "", "a", "0", "99999999999", "²", "٣", 9]) == [3, 7, 9]
    assert ids.parse_ids(None) == [] and ids.parse_ids([]) == []
    assert ids.parse_ids([str(n) for n in range(1, 20)], limit=5) == [1, 2, 3, 4, 5]
    assert len(ids.parse_ids([str(n) for n in range(1, 2000)])) == ids.MAX_IDS


def test_coerce_for_forms_raises_value_error():
    assert ids.coerce_id("12") == 12 and ids.coerce_id(12) == 12
    assert ids.coerce_optional_id("") is None and ids.coerce_optional_id(None) is None
    assert ids.coerce_optional_id("5") == 5
    for bad in ("0", "²", "٣", "9" * 20, "x", 0, 2**40):
        with pytest.raises(ValueError):
            ids.coerce_id(bad)
        with pytest.raises(ValueError):
            ids.coerce_optional_id(bad)


@pytest.mark.parametrize(("text", "page"), [
    (None, 1), ("", 1), ("0", 1), ("-3", 1), ("²", 1), ("٣", 1), ("x", 1), ("1", 1), ("17", 17),
    (" 2 ", 2), (str(ids.MAX_PAGE + 1), ids.MAX_PAGE), ("9" * 20, ids.MAX_PAGE), ("9" * 21, 1),
    ("9" * 5000, 1),  # int() refuses such a string outright (ValueError), so it is not read
])
def test_page_numbers(text, page):
    assert ids.parse_page(text) == page


def test_page_numbers_up_to_a_given_maximum():
    assert ids.parse_page("500", maximum=50) == 50


def test_bounded_numbers():
    assert ids.parse_bounded("30", 7, 1, 365) == 30
    assert ids.parse_bounded("0", 7, 1, 365) == 1
    assert ids.parse_bounded("9" * 20, 7, 1, 365) == 365
    assert ids.parse_bounded("٣", 7, 1, 365) == 7
    assert ids.parse_bounded(None, 7, 1, 365) == 7


def test_a_cursor_reads_back_what_was_written():
    stamp = datetime(2026, 3, 1, 14, 30, 0, 123456)
    cursor = ids.format_cursor(stamp, 42)
    assert cursor == "2026-03-01T14:30:00.123456,42"
    assert ids.parse_cursor(cursor) == (stamp, 42)
    assert ids.parse_cursor("2026-03-01T14:30:00+08:00,42") == (datetime(2026, 3, 1, 14, 30), 42)


@pytest.mark.parametrize("cursor", [
    None, "", ",", "2026-03-01T14:30:00", "2026-03-01T14:30:00,", "2026-03-01T14:30:00,0",
    "2026-03-01T14:30:00,-1", f"2026-03-01T14:30:00,{2**63}", "2026-03-01T14:30:00,²",
    "2026-03-01T14:30:00,٣", "2026-13-01T14:30:00,5", "yesterday,5", "２０２６-03-01,5",
    "2026-03-01T14:30:00,5,6", 42,
])
def test_a_cursor_it_did_not_write_is_none(cursor):
    assert ids.parse_cursor(cursor) is None
