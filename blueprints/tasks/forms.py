from flask_babel import lazy_gettext as _l
from wtforms import DateField, IntegerField, SelectField, StringField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from blueprints.forms import Form
from services.ids import coerce_id


class TaskForm(Form):
    """A standalone follow-up on a customer. The assignee's choices are set by the
    view; the service decides whether a submitted colleague may take it."""

    title = StringField(
        _l("What to follow up"),
        validators=[DataRequired(message=_l("Say what to follow up.")), Length(max=200)],
    )
    due_date = DateField(
        _l("Due"), validators=[InputRequired(message=_l("Choose a due date."))],
    )
    assignee_id = SelectField(_l("Assignee"), coerce=coerce_id, validate_choice=False)


class SnoozeForm(Form):
    """Snooze by a number of days (the +1/+3/+7 buttons) or to a chosen date."""

    days = IntegerField(validators=[Optional(), NumberRange(min=1, max=365)])
    until = DateField(_l("Snooze until"), validators=[Optional()])


class ReassignForm(Form):
    assignee_id = IntegerField(
        _l("Reassign to"), validators=[InputRequired(message=_l("Choose a colleague."))],
    )
