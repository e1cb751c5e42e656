from flask_babel import lazy_gettext as _l
from wtforms import BooleanField, DateField, SelectField, SelectMultipleField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Email, InputRequired, Optional, ValidationError

from blueprints.forms import Form, max_length
from models import CustomerType, Importance, Source, Stage
from services import phones
from services.ids import coerce_id
from services.office_time import office_today

BIRTHDAY_FIRST_YEAR = 1900

TYPE_LABELS = {
    CustomerType.INDIVIDUAL: _l("Individual"),
    CustomerType.SME: _l("Small business"),
    CustomerType.KEY_ACCOUNT: _l("Key account"),
}
STAGE_LABELS = {
    Stage.POTENTIAL: _l("Potential"),
    Stage.INTENT: _l("Intent"),
    Stage.DEAL: _l("Deal"),
    Stage.LOST: _l("Lost"),
}
SOURCE_LABELS = {
    Source.CALL: _l("Phone call"),
    Source.VISIT: _l("Walk-in"),
    Source.REFERRAL: _l("Referral"),
    Source.WEB: _l("Online"),
    Source.OTHER: _l("Other"),
}
IMPORTANCE_LABELS = {Importance.A: "A", Importance.B: "B", Importance.C: "C"}


def choices(labels):
    return lambda: [SelectChoice(key.value, label) for key, label in labels.items()]


def valid_phone(_form, field):
    if field.data and field.data.strip():
        try:
            phones.normalise(field.data)
        except phones.InvalidPhone:
            raise ValidationError(_l("Not a phone number: use digits, e.g. 138 0013 8000.")) from None


def past_birthday(_form, field):
    """A birthday is a day in the past, after 1900 (a typo such as 2099 or 1800 is
    caught here, next to the field)."""
    if field.data and not (field.data.year > BIRTHDAY_FIRST_YEAR and field.data < office_today()):
        raise ValidationError(_l("Enter a birthday in the past, after %(year)d.", year=BIRTHDAY_FIRST_YEAR))


class CustomerForm(Form):
    name = StringField(_l("Name"), validators=[
        InputRequired(message=_l("Enter the customer's name.")), max_length(100)])
    company = StringField(_l("Company"), validators=[max_length(200)])
    mobile = StringField(_l("Mobile"), validators=[max_length(40), valid_phone])
    mobile_2 = StringField(_l("Second mobile"), validators=[max_length(40), valid_phone])
    landline = StringField(_l("Landline"), validators=[max_length(40), valid_phone])
    email = StringField(_l("Email"), validators=[Optional(), max_length(254), Email(
        message=_l("Enter an email address such as name@example.com."), check_deliverability=False)])
    address = StringField(_l("Address"), validators=[max_length(300)])
    region = StringField(_l("Region"), validators=[max_length(50)])
    type = SelectField(_l("Type"), choices=choices(TYPE_LABELS), default=CustomerType.INDIVIDUAL.value)
    stage = SelectField(_l("Stage"), choices=choices(STAGE_LABELS), default=Stage.POTENTIAL.value)
    importance = SelectField(_l("Importance"), choices=choices(IMPORTANCE_LABELS), default="B")
    source = SelectField(_l("Source"), choices=choices(SOURCE_LABELS), default=Source.OTHER.value)
    birthday = DateField(
        _l("Birthday"), validators=[Optional(), past_birthday],
        invalid_value_message=_l("Enter the birthday as a date, e.g. 1985-06-30."),
        description=_l("Optional: a day in the past, after %(year)d.", year=BIRTHDAY_FIRST_YEAR))
    owner_id = SelectField(_l("Owner"), coerce=str, validate_choice=True)
    tag_ids = SelectMultipleField(_l("Tags"), coerce=coerce_id, validate_choice=True)
    acknowledge_duplicates = BooleanField(_l("Save anyway"))

    PHONE_FIELDS = (("mobile", "mobile"), ("mobile_2", "mobile"), ("landline", "landline"))

    def phone_list(self) -> list[tuple[str, str]]:
        """(kind, digits) for each phone field filled in, without repeats."""
        found, seen = [], set()
        for name, kind in self.PHONE_FIELDS:
            raw = getattr(self, name).data
            if raw and raw.strip():
                digits = phones.normalise(raw)
                if digits not in seen:
                    seen.add(digits)
                    found.append((kind, digits))
        return found


class PurgeForm(Form):
    confirm_name = StringField(_l("Type the customer's name to confirm"), validators=[
        InputRequired(message=_l("Type the customer's name to confirm."))])
