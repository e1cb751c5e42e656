"""The settings form (P8), built from services.settings.SPECS so a new setting shows
up on the page by itself: a number box for whole numbers (bounds from the spec), a
checkbox for yes/no, a group of checkboxes for list settings."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import BooleanField, IntegerField, SelectMultipleField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired
from wtforms.widgets import CheckboxInput, ListWidget

from blueprints.customers.forms import STAGE_LABELS
from blueprints.forms import Form
from blueprints.notes.forms import KIND_LABELS
from services.settings import SPECS, SettingSpec

# Human words for the members of list settings, by setting.
CHOICE_LABELS = {"pool.effective_kinds": KIND_LABELS, "pool.protected_stages": STAGE_LABELS}


def field_name(key: str) -> str:
    """``pool.max_owned`` → ``pool__max_owned`` (form field names cannot hold dots)."""
    return key.replace(".", "__")


class CheckboxGroupField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


def _field(key: str, spec: SettingSpec):
    if isinstance(spec.default, bool):
        return BooleanField(spec.label)
    if isinstance(spec.default, int):
        return IntegerField(
            spec.label, validators=[InputRequired(_l("Enter a number."))],
            description=_l("From %(min)d to %(max)d.", min=spec.minimum, max=spec.maximum),
            render_kw={"min": spec.minimum, "max": spec.maximum, "inputmode": "numeric"},
        )
    labels = CHOICE_LABELS.get(key, {})
    choices = [SelectChoice(value, labels.get(value, value)) for value in spec.choices]
    return CheckboxGroupField(spec.label, choices=choices)


class SettingsForm(Form):
    """Every office setting; ``values()`` gives them back keyed like SPECS."""

    def setting_fields(self):
        return [(key, self[field_name(key)]) for key in SPECS]

    def values(self) -> dict:
        return {key: field.data for key, field in self.setting_fields()}


for _key, _spec in SPECS.items():
    setattr(SettingsForm, field_name(_key), _field(_key, _spec))
