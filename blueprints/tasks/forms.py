from flask_babel import lazy_gettext as _l
from wtforms import DateField, IntegerField, SelectField, StringField
from wtforms.validators import DataRequired, InputRequired, NumberRange, Optional

from blueprints.forms import Form, max_length
from services.ids import coerce_id


class TaskForm(Form):
    """A standalone follow-up on a customer. The assignee's choices are set by the
    view; the service decides whether a submitted colleague may take it."""

    title = StringField(
        _l("What to follow up"),
        validators=[DataRequired(message=_l("Say what to follow up.")), max_length(200)],
    )
    due_date = DateField(
        _l("Due"), validators=[InputRequired(message=_l("Choose a due date."))],
        invalid_value_message=_l("Choose a due date."),
    )
    assignee_id = SelectField(_l("Assignee"), coerce=coerce_id, validate_choice=False)


class SnoozeForm(Form):
    """Snooze by a number of days (the +1/+3/+7 buttons) or to a chosen date."""

    days = IntegerField(validators=[Optional(), NumberRange(
        min=1, max=365, message=_l("Snooze by 1 to 365 days."))],
        invalid_value_message=_l("Snooze by 1 to 365 days."))
    until = DateField(_l("Snooze until"), validators=[Optional()],
                      invalid_value_message=_l("Choose the day to snooze until."))


class ReassignForm(Form):
    assignee_id = IntegerField(
        _l("Reassign to"), validators=[InputRequired(message=_l("Choose a colleague."))],
        invalid_value_message=_l("Choose a colleague."),
    )
