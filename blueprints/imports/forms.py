from flask_babel import lazy_gettext as _l
from flask_wtf.file import FileField
from wtforms import BooleanField, RadioField, SelectField
from wtforms.fields.choices import SelectChoice

from blueprints.forms import Form
from services.import_rows import FIELDS

DUPLICATE_LABELS = {
    "skip": _l("Skip them (keep the existing customer as it is)"),
    "fill": _l("Fill the existing customer's empty fields"),
    "create": _l("Create them anyway (recorded)"),
}
# The short words of the select on each duplicate row of the preview.
ROW_CHOICE_LABELS = {"skip": _l("Skip"), "fill": _l("Fill empty fields"), "create": _l("Create anyway")}
TAG_LABELS = {"create": _l("Create unknown tags"), "drop": _l("Leave unknown tags out")}


class UploadForm(Form):
    file = FileField(_l("Spreadsheet (.xlsx or .csv)"))


class OptionsForm(Form):
    """The column mapping (one select per column of the file, added by
    :func:`options_form`) and the import's choices."""

    duplicates = RadioField(_l("Rows that duplicate an existing customer"), default="skip",
                            choices=[SelectChoice(k, v) for k, v in DUPLICATE_LABELS.items()])
    tags = RadioField(_l("Tags"), default="create", choices=[SelectChoice(k, v) for k, v in TAG_LABELS.items()])
    owner = SelectField(_l("Owner of the new customers"), default="pool")
    override_limit = BooleanField(_l("Override the ownership limit (recorded)"))

    def column_fields(self):
        return [field for field in self if field.name.startswith("column_")]

    def mapping(self) -> list[str]:
        return [field.data or "" for field in self.column_fields()]


def options_form(headers: list[str], owners: list[tuple[str, str]], **kwargs) -> OptionsForm:
    """An OptionsForm with a select per column of ``headers``."""
    choices = [SelectChoice("", _l("(not imported)"))] + [SelectChoice(k, v) for k, v in FIELDS.items()]

    class Bound(OptionsForm):
        pass

    for index, header in enumerate(headers):
        setattr(Bound, f"column_{index}", SelectField(header or _l("Column %(n)d", n=index + 1), choices=choices,
                                                      default=""))
    form = Bound(**kwargs)
    form.owner.choices = [SelectChoice("pool", _l("Public pool")),
                          SelectChoice("column", _l("From the owner column"))]
    form.owner.choices += [SelectChoice(value, label) for value, label in owners]
    return form
