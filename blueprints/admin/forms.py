from flask_babel import lazy_gettext as _l
from wtforms import IntegerField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, NumberRange, Optional

from blueprints.access import ROLE_LABELS
from blueprints.auth.forms import LANGUAGE_CHOICES
from blueprints.forms import Form, max_length
from models import Role


def role_choices():
    return [SelectChoice(role.value, ROLE_LABELS[role]) for role in Role]


class UserEditForm(Form):
    display_name = StringField(_l("Display name"), validators=[max_length(64)])
    role = SelectField(_l("Role"), choices=role_choices, validators=[InputRequired(message=_l("Choose a role."))])
    language = SelectField(_l("Language"), choices=LANGUAGE_CHOICES)
    claim_limit = IntegerField(
        _l("Claim limit"),
        description=_l("Empty: the office-wide limit of the public pool applies."),
        validators=[Optional(), NumberRange(min=0, max=100000, message=_l(
            "Enter a whole number from 0 to 100000, or leave it empty."))],
        invalid_value_message=_l("Enter a whole number from 0 to 100000, or leave it empty."),
    )


class UserCreateForm(UserEditForm):
    username = StringField(_l("Username"), validators=[
        InputRequired(message=_l("Enter a username.")), max_length(32, minimum=2)])
    # The least powerful common role by default: an admin is made on purpose, not by
    # forgetting the select.
    role = SelectField(
        _l("Role"), choices=role_choices, default=Role.SALES.value,
        validators=[InputRequired(message=_l("Choose a role."))]
    )
