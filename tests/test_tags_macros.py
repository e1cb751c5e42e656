"""The tag macros other pages call (templates/tags/_macros.html): the filter (T2),
the picker, and the CSS class behind every colour."""

import re
from pathlib import Path

import pytest
from flask import render_template_string

from extensions import db
from models import COLOURS, User
from services import tags

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def seeded(app, make_user):
    owner = make_user("manager")
    with app.app_context():
        actor = db.session.get(User, owner.id)
        group = tags.create_group(actor, "需求", "green")
        tags.create_group(actor, "空组", "grey")  # no tags: not shown
        made = {"quote": tags.create_tag(actor, group.id, "报价").id,
                "enquiry": tags.create_tag(actor, group.id, "询价", "red").id}
        db.session.commit()
        return made


FILTER = ('{% from "tags/_macros.html" import tag_filter %}'
          '{{ tag_filter(groups, selected, counts, toggle, "#results", clear_url=clear) }}')


def _render_filter(app, selected, counts, clear=None):
    with app.test_request_context("/customers", headers={"Accept-Language": "en"}):
        return render_template_string(
            FILTER, groups=tags.all_groups(), selected=selected, counts=counts,
            toggle=lambda tag_id: "/customers?" + "&".join(
                f"tag={i}" for i in tags.toggled(selected, tag_id)),
            clear=clear,
        )


def _chip(html, tag_id):
    return re.search(rf'<(a|span) [^>]*data-tag-id="{tag_id}"[^>]*>', html).group(0)


def test_tag_filter_chips_link_with_htmx_and_counts(app, seeded):
    quote, enquiry = seeded["quote"], seeded["enquiry"]
    html = _render_filter(app, [quote], {quote: 4, enquiry: 2}, clear="/customers")
    chip = _chip(html, quote)
    assert chip.startswith("<a ") and 'href="/customers?"' in chip
    assert 'aria-pressed="true"' in chip and "is-selected" in chip
    assert 'hx-target="#results"' in chip and 'hx-push-url="true"' in chip
    assert 'hx-get="/customers?"' in chip and 'hx-swap="innerHTML"' in chip
    other = _chip(html, enquiry)
    assert f'href="/customers?tag={quote}&amp;tag={enquiry}"' in other
    assert 'aria-pressed="false"' in other and "is-selected" not in other
    assert re.search(rf'data-tag-id="{quote}"[^>]*>报价 <span class="tag-count">4</span>', html)
    assert "Clear tags" in html and 'aria-label="Filter by tags"' in html
    assert "空组" not in html  # a group without tags offers nothing to filter by


def test_tag_filter_mutes_tags_without_matches(app, seeded):
    quote, enquiry = seeded["quote"], seeded["enquiry"]
    html = _render_filter(app, [enquiry], {quote: 0})
    idle = _chip(html, quote)
    assert idle.startswith("<span ") and "is-empty" in idle and 'aria-disabled="true"' in idle
    selected_but_empty = _chip(html, enquiry)
    assert selected_but_empty.startswith("<a ") and "is-empty" in selected_but_empty
    assert 'aria-pressed="true"' in selected_but_empty
    assert "Clear tags" not in html  # no clear_url given


def test_tag_filter_escapes_names(app, make_user):
    owner = make_user("manager")
    with app.app_context():
        actor = db.session.get(User, owner.id)
        group = tags.create_group(actor, "<i>g</i>", "grey")
        tag_id = tags.create_tag(actor, group.id, "<script>x</script>").id
        db.session.commit()
    html = _render_filter(app, [], {tag_id: 1})
    assert "<script>x" not in html and "&lt;script&gt;x&lt;/script&gt;" in html
    assert "<i>g</i>" not in html


def test_tag_picker_marks_the_selected(app, seeded):
    source = '{% from "tags/_macros.html" import tag_picker %}{{ tag_picker("tag_ids", groups, sel, "c") }}'
    with app.test_request_context("/"):
        html = render_template_string(source, groups=tags.all_groups(), sel=[seeded["enquiry"]])
    assert re.search(rf'id="c-{seeded["enquiry"]}" name="tag_ids" value="{seeded["enquiry"]}" checked>', html)
    assert re.search(rf'value="{seeded["quote"]}">', html)
    assert '<label class="tag-option" for="c-' in html


def test_every_colour_has_a_css_class():
    css = (ROOT / "static/css/tags.css").read_text(encoding="utf-8")
    for colour in COLOURS:
        assert re.search(rf"^\.tag-{colour}\s*\{{\s*--tag-bg:", css, re.M), colour
