"""Forms of the tag management page. Shape only; the rules (unique names, known
colours) live in services.tags and come back as field errors."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import SelectField, StringField
from wtforms.validators import InputRequired

from blueprints.forms import Form, max_length
from models import COLOURS
from services.ids import coerce_id
from services.tags import NAME_MAX

COLOUR_LABELS = {
    "grey": _l("Grey"),
    "red": _l("Red"),
    "orange": _l("Orange"),
    "amber": _l("Amber"),
    "green": _l("Green"),
    "teal": _l("Teal"),
    "blue": _l("Blue"),
    "indigo": _l("Indigo"),
    "purple": _l("Purple"),
    "pink": _l("Pink"),
}


def _strip(value):
    return value.strip() if isinstance(value, str) else value


def _name_field():
    return StringField(
        _l("Name"),
        filters=[_strip],
        validators=[InputRequired(_l("Enter a name.")), max_length(NAME_MAX)],
        render_kw={"autocomplete": "off"},
    )


def _colour_choices():
    return [(colour, COLOUR_LABELS.get(colour, colour)) for colour in COLOURS]


def _tag_colour_choices():
    return [("", _l("Group colour")), *_colour_choices()]


class GroupForm(Form):
    name = _name_field()
    colour = SelectField(_l("Colour"), choices=_colour_choices, default="grey")


class TagForm(Form):
    name = _name_field()
    colour = SelectField(_l("Colour"), choices=_tag_colour_choices, default="")


class MergeForm(Form):
    target_id = SelectField(_l("Merge into"), coerce=coerce_id, validate_choice=True)

    def offer(self, groups, source) -> MergeForm:
        """Offer every tag but ``source``, grouped like the page (optgroups)."""
        self.target_id.choices = {
            group.name: [(tag.id, tag.name) for tag in group.tags if tag.id != source.id]
            for group in groups
            if any(tag.id != source.id for tag in group.tags)
        }
        return self
