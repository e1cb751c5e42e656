"""A service's refusal (DomainError) shown on a form: next to the field it names,
or above the form when it names none the form has, never a 500 (Form.refuse)."""

from flask import render_template
from wtforms import StringField

from blueprints.customers.forms import CustomerForm
from blueprints.forms import Form
from services.errors import DomainError


class NameForm(Form):
    name = StringField()


def test_a_refusal_goes_next_to_the_field_it_names(app):
    with app.test_request_context(method="POST", data={"name": "x"}):
        form = NameForm()
        form.validate()
        form.refuse(DomainError("This name is taken.", "name"))
        assert form.name.errors == ["This name is taken."]
        assert form.form_errors == []


def test_a_refusal_may_be_put_next_to_another_field(app):
    with app.test_request_context():
        form = NameForm()  # not validated: its fields' errors are still a tuple
        form.refuse(DomainError("Type the name exactly.", None), "name")
        assert list(form.name.errors) == ["Type the name exactly."]


def test_a_refusal_naming_no_field_goes_above_the_form(app):
    with app.test_request_context():
        form = NameForm()
        form.refuse(DomainError("This customer was merged."))
        form.refuse(DomainError("Choose an active colleague.", "owner_id"))  # a field this form lacks
        assert form.form_errors == ["This customer was merged.", "Choose an active colleague."]
        assert not form.name.errors


def test_the_customer_form_shows_a_refusal_above_its_fields(app):
    with app.test_request_context():
        form = CustomerForm()
        del form.owner_id  # as for a user who may not choose the owner
        form.refuse(DomainError("Choose an active colleague as owner.", "owner_id"))
        page = render_template("customers/_form.html", form=form, action="/customers/new",
                               customer=None, duplicates=[], groups=[])
    assert 'class="form-error" role="alert">Choose an active colleague as owner.' in page
