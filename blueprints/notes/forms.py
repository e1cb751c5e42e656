"""Forms of the notes pages: the note (quick entry and edit), the comment, and the
note template that administrators edit."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import (
    BooleanField,
    DateField,
    DateTimeLocalField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import InputRequired, Optional

from blueprints.forms import Form, max_length
from models import SECTIONS, NoteKind
from services import note_templates
from services.ids import coerce_id, coerce_optional_id
from services.notes import BODY_MAX, COMMENT_MAX, SECTION_MAX

KIND_LABELS = {
    NoteKind.CALL: _l("Call"),
    NoteKind.VISIT: _l("Visit"),
    NoteKind.EMAIL: _l("Email"),
    NoteKind.MEETING: _l("Meeting"),
    NoteKind.WECHAT: _l("WeChat"),
    NoteKind.OTHER: _l("Other"),
}
SECTION_LABELS = {
    "summary": _l("Communication summary"),
    "needs": _l("Customer needs"),
    "plan": _l("Follow-up plan"),
}
# The datetime-local input sends "2026-03-01T14:30"; the first format is how it is shown.
DATETIME_LOCAL_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"]


def kind_choices(kinds: list[str]) -> list[tuple[str, str]]:
    return [(kind, KIND_LABELS[kind]) for kind in kinds]


class NoteForm(Form):
    """Quick entry and edit of a note. ``kind`` choices are set per user (the front
    desk writes calls and visits only); unknown kinds fail validation."""

    kind = SelectField(_l("Kind"), validators=[InputRequired(message=_l("Choose the kind of note."))])
    template_id = SelectField(_l("Template"), coerce=coerce_optional_id, validate_choice=False)
    body = TextAreaField(_l("Note"), validators=[max_length(BODY_MAX)])
    summary = TextAreaField(SECTION_LABELS["summary"], validators=[max_length(SECTION_MAX)])
    needs = TextAreaField(SECTION_LABELS["needs"], validators=[max_length(SECTION_MAX)])
    plan = TextAreaField(SECTION_LABELS["plan"], validators=[max_length(SECTION_MAX)])
    tags = SelectMultipleField(_l("Tags"), coerce=coerce_id, validate_choice=False)
    contacted_at = DateTimeLocalField(
        _l("Contact time"), format=DATETIME_LOCAL_FORMATS, validators=[Optional()],
        invalid_value_message=_l("Enter the date and time of the contact, e.g. 2026-03-01 14:30."),
        description=_l("Only if the contact happened earlier."),
    )
    follow_up_on = DateField(
        _l("Next follow-up"), validators=[Optional()],
        invalid_value_message=_l("Enter the follow-up date, e.g. 2026-03-01."),
        description=_l("Creates a follow-up task."),
    )
    mention = StringField(
        _l("Notify colleagues"), validators=[max_length(300)],
        description=_l("Type @ and the first letters of a name."),
    )

    # The chosen template's prompt per section, shown as the field's placeholder
    # (entry._choose_template sets it).
    section_prompts: dict[str, str] = {}

    def sections(self) -> dict[str, str]:
        return {name: getattr(self, name).data or "" for name in SECTIONS}


class CommentForm(Form):
    body = StringField(_l("Comment"), validators=[
        InputRequired(message=_l("Write a comment first.")), max_length(COMMENT_MAX)])


class NoteTemplateForm(Form):
    name = StringField(_l("Name"), validators=[
        InputRequired(message=_l("Give the template a name.")), max_length(note_templates.NAME_MAX)])
    kind = SelectField(_l("Kind of note"), choices=lambda: kind_choices([k.value for k in NoteKind]))
    prompt_summary = StringField(SECTION_LABELS["summary"], validators=[max_length(note_templates.PROMPT_MAX)])
    prompt_needs = StringField(SECTION_LABELS["needs"], validators=[max_length(note_templates.PROMPT_MAX)])
    prompt_plan = StringField(SECTION_LABELS["plan"], validators=[max_length(note_templates.PROMPT_MAX)])
    required_sections = SelectMultipleField(
        _l("Required sections"), choices=lambda: list(SECTION_LABELS.items()),
        description=_l("Notes that leave these empty show in the quality view."),
    )
    active = BooleanField(_l("Offered when writing notes"), default=True)

    def prompts(self) -> dict[str, str]:
        return {name: getattr(self, f"prompt_{name}").data or "" for name in SECTIONS}
