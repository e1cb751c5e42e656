from flask_babel import lazy_gettext as _l
from wtforms import PasswordField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import EqualTo, InputRequired, Length

from blueprints.forms import Form
from services.passwords import MAX_LENGTH

LANGUAGE_CHOICES = [
    SelectChoice("", _l("Browser default")),
    SelectChoice("zh", "中文"),
    SelectChoice("en", "English"),
]


class LoginForm(Form):
    username = StringField(_l("Username"), validators=[InputRequired(), Length(max=64)])
    password = PasswordField(_l("Password"), validators=[InputRequired(), Length(max=MAX_LENGTH)])


class ChangePasswordForm(Form):
    current_password = PasswordField(
        _l("Current password"), validators=[InputRequired(), Length(max=MAX_LENGTH)]
    )
    new_password = PasswordField(
        _l("New password"), validators=[InputRequired(), Length(max=MAX_LENGTH)]
    )
    confirm = PasswordField(
        _l("New password again"),
        validators=[InputRequired(), EqualTo("new_password", message=_l("The two passwords differ."))],
    )


class LanguageForm(Form):
    language = SelectField(_l("Language"), choices=LANGUAGE_CHOICES)
