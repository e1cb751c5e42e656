from flask_babel import lazy_gettext as _l
from werkzeug.datastructures import MultiDict
from wtforms import DateField, IntegerField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, NumberRange, Optional, ValidationError

from blueprints.access import ROLE_LABELS
from blueprints.admin import audit_text
from blueprints.auth.forms import LANGUAGE_CHOICES
from blueprints.forms import Form, max_length
from models import Role
from services import accounts, audit
from services.audit import AuditFilter
from services.ids import parse_id


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


class AuditFilterForm(Form):
    """The audit page's filter, read from the URL (a GET form: no CSRF token). A bad
    date or id gets a message next to its field."""

    class Meta:
        csrf = False

    kind = SelectField(_l("Event"), choices=[], default="", validate_choice=True)
    user = SelectField(_l("Who"), choices=[], default="", validate_choice=True)
    customer = StringField(_l("Customer no."), validators=[Optional(), Length(max=10)])
    date_from = DateField(_l("From"), validators=[Optional()])
    date_to = DateField(_l("To"), validators=[Optional()])

    def validate_customer(self, field):
        if field.data and parse_id(field.data) is None:
            raise ValidationError(_l("Enter a customer number, e.g. 42."))

    def validate_date_to(self, field):
        if field.data and self.date_from.data and field.data < self.date_from.data:
            raise ValidationError(_l("The end date is before the start date."))


def parse_audit_filter(args) -> tuple[AuditFilterForm, AuditFilter]:
    """The form (with its errors) and the filter it holds; a field in error is left
    out of the filter."""
    form = AuditFilterForm(MultiDict(args))
    form.kind.choices = [("", _l("All events"))] + audit_text.kind_choices(audit.kinds_in_use())
    form.user.choices = [("", _l("Everyone"))] + [(str(u.id), u.display_name) for u in accounts.list_users()]
    form.validate()

    def clean(name):
        return None if form[name].errors else form[name].data

    flt = AuditFilter(kind=clean("kind") or "", user_id=parse_id(clean("user") or ""),
                      customer_id=parse_id(clean("customer") or ""),
                      date_from=clean("date_from"), date_to=clean("date_to"))
    return form, flt
