"""WTForms built from the data dictionary: one form per trigger, no field written twice.

The forms collect and convert what a person typed; the services decide what is
valid, and their messages are put back beside the fields they concern.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app
from flask_wtf import FlaskForm
from wtforms import (
    DateField,
    DateTimeLocalField,
    DecimalField,
    HiddenField,
    IntegerField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    SubmitField,
    TextAreaField,
    widgets,
)
from wtforms import (
    Field as WTField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, Optional, ValidationError

from tracker.engine.fields import SCORE_SEP, Field, gather
from tracker.engine.steps import all_fields_for
from tracker.users.roles import CLINICAL, ROLE_LABELS

BLANK = ("", "— choose —")


def options(pairs) -> list[SelectChoice]:
    """(value, label) pairs as WTForms choices."""
    return [SelectChoice(value, label) for value, label in pairs]


class CheckboxesField(SelectMultipleField):
    """A multi-select shown as checkboxes: quicker to read and to tick than a list box."""

    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


def local_zone() -> ZoneInfo:
    return ZoneInfo(current_app.config.get("TIMEZONE", "Europe/London"))


def to_local_input(value: datetime) -> datetime:
    return value.astimezone(local_zone()).replace(tzinfo=None, second=0, microsecond=0)


def from_local_input(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=local_zone())


class Chosen:
    """At least one box ticked; unlike InputRequired it sets no HTML `required` on each box."""

    field_flags = {"needed": True}

    def __init__(self, message: str):
        self.message = message

    def __call__(self, form, field) -> None:
        if not field.data:
            raise ValidationError(self.message)


class Finite:
    """A decimal a person can mean: not NaN (quiet or signalling) and not infinite."""

    def __init__(self, message: str):
        self.message = message

    def __call__(self, form, field) -> None:
        if field.data is not None and not field.data.is_finite():
            raise ValidationError(self.message)


def _required(f: Field, message: str | None = None):
    return [InputRequired(message or f"{f.label} is required.")] if f.required else [Optional()]


class WTFormsKit:
    """The form inputs the engine's field kinds ask for, as WTForms fields (see
    ``tracker.engine.fields.FormKit``)."""

    def __init__(self, users_by_role: dict[str, list] | None = None):
        self.users_by_role = users_by_role or {}

    def text(self, f: Field, *, multiline: bool):
        cls = TextAreaField if multiline else StringField
        validators = [*_required(f), Length(max=f.max_length)]
        return cls(f.label, validators=validators, description=f.help)

    def select(self, f: Field, choices, *, blank: bool):
        choices = options([BLANK, *choices] if blank else list(choices))
        return SelectField(f.label, choices=choices, validators=_required(f), description=f.help)

    def checkboxes(self, f: Field, choices):
        help_ = f"Choose at least {f.min_items}." if f.min_items > 1 else f.help
        needed = [Chosen(f"{f.label}: tick at least one.")] if f.required else [Optional()]
        return CheckboxesField(
            f.label, choices=options(choices), validators=needed, description=help_
        )

    def date(self, f: Field):
        message = f"{f.label}: enter a date, for example 14/03/2026."
        return DateField(f.label, validators=_required(f, message), description=f.help)

    def datetime(self, f: Field):
        return DateTimeLocalField(
            f.label, format="%Y-%m-%dT%H:%M", validators=_required(f), description=f.help
        )

    def integer(self, f: Field):
        message = f"{f.label}: enter a whole number."
        return IntegerField(f.label, validators=_required(f, message), description=f.help)

    def decimal(self, f: Field):
        finite = Finite(f"{f.label}: enter a number, for example 8 or 20.5.")
        return DecimalField(
            f.label, places=None, validators=[*_required(f), finite], description=f.help
        )

    def yes_no(self, f: Field):
        choices = options([("yes", "Yes"), ("no", "No")])
        return RadioField(f.label, choices=choices, validators=_required(f), description=f.help)

    def users(self, role: str | None) -> list[tuple[str, str]]:
        """The active users of ``role``; None: everyone who records care (a task's owner)."""
        if role is None:
            people = [u for r in sorted(CLINICAL) for u in self.users_by_role.get(r, [])]
            return [
                (u.username, f"{u.display_name} ({ROLE_LABELS[u.role].lower()})") for u in people
            ]
        return [(u.username, u.display_name) for u in self.users_by_role.get(role, [])]

    def optional_select(self, label: str, choices):
        return SelectField(label, choices=options([BLANK, *choices]), validators=[Optional()])


def wtf_field(f: Field, users_by_role: dict[str, list] | None = None) -> list[tuple[str, Any]]:
    """The WTForms field(s) for one dictionary field, as (attribute name, unbound field)."""
    return f.form_inputs(WTFormsKit(users_by_role))


INCOMPLETE = "The form is incomplete; open it again from the pathway page."
# Versions are counts of steps: ASCII digits only (str.isdigit() also passes '²', which
# int() refuses), and few enough of them to be a number the database holds.
_MAX_VERSION_DIGITS = 18


class RequestIdField(HiddenField):
    """The id a form is sent with: 1 to 64 characters, none of them a control character.

    Anything else is dropped as the form is read, before the page looks it up to spot a
    form sent twice, and the form is refused.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.type = "HiddenField"  # the templates render (and skip) hidden fields by type

    def process_formdata(self, valuelist) -> None:
        super().process_formdata(valuelist)
        value = self.data or ""
        if not 1 <= len(value) <= 64 or any(ord(c) < 32 or ord(c) == 127 for c in value):
            self.data = ""
            raise ValueError(INCOMPLETE)


class WhenField(DateTimeLocalField):
    """When a step happened: one datetime-local value ("2026-03-14T09:30", as the amend
    form and scripts send it) or a date and a time sent as two values of the same name
    (the record forms: the date preset, the time left for the person recording to fill in,
    so that no record is silently dated "now")."""

    preset_date: date | None = None

    def process_formdata(self, valuelist) -> None:
        if len(valuelist) == 2:
            day, time = (v.strip() for v in valuelist)
            if not day:
                self.data = None
                raise ValueError("Enter the date it happened, for example 14/03/2026.")
            if not time:
                self.data = None
                raise ValueError("Enter the time it happened, for example 09:30.")
            valuelist = [f"{day}T{time}"]
        super().process_formdata(valuelist)

    def parts(self) -> tuple[str, str]:
        """The date and the time to show in the two inputs."""
        if self.raw_data:
            if len(self.raw_data) == 2:
                return self.raw_data[0], self.raw_data[1]
            day, _, time = self.raw_data[0].partition("T")
            return day, time
        if self.data is not None:
            return self.data.date().isoformat(), self.data.strftime("%H:%M")
        return (self.preset_date.isoformat() if self.preset_date else ""), ""


class StepForm(FlaskForm):
    """What every recorded step carries besides its data."""

    occurred_at = WhenField(
        "When it happened",
        format="%Y-%m-%dT%H:%M",
        validators=[InputRequired("Enter when it happened, for example 14/03/2026 09:30.")],
        description="Local time.",
    )
    expected_version = HiddenField()
    request_id = RequestIdField()
    submit = SubmitField("Record")

    def validate_expected_version(self, field: WTField) -> None:
        value = field.data or ""
        if not (value.isascii() and value.isdigit() and len(value) <= _MAX_VERSION_DIGITS):
            raise ValidationError(INCOMPLETE)


def form_class(fields: tuple[Field, ...], users_by_role=None, base=StepForm):
    attrs = {}
    for f in fields:
        for name, unbound in wtf_field(f, users_by_role):
            attrs[name] = unbound
    return type("GeneratedForm", (base,), attrs)


def step_form(trigger: str, source: str, pathway, users_by_role, formdata=None):
    """The form for ``trigger`` fired from ``source``, with defaults for a new submission."""
    fields = all_fields_for(trigger, source)
    form = form_class(fields, users_by_role)(formdata=formdata)
    form.dictionary_fields = fields
    if formdata is None:
        form.occurred_at.preset_date = datetime.now(local_zone()).date()
        form.expected_version.data = str(pathway.version)
        form.request_id.data = uuid.uuid4().hex
    return form


def collect(form, fields: tuple[Field, ...]) -> dict[str, Any]:
    """The form's values as service data: blanks dropped, scores as component objects."""
    return gather(fields, lambda f: f.from_form(form))


def fill(form, fields: tuple[Field, ...], data: dict[str, Any]) -> None:
    """Put recorded values into a form (for an amendment)."""
    for f in fields:
        value = data.get(f.name)
        if value is not None:
            f.to_form(form, value)


def put_errors(form, errors: dict[str, list[str]]) -> list[str]:
    """Attach the service's messages to their fields; return those that fit no field."""
    unplaced = []
    for name, messages in errors.items():
        target = None
        if name in form:
            target = form[name]
        elif name.replace(".", SCORE_SEP) in form:  # a score's component: tokuhashi.palsy
            target = form[name.replace(".", SCORE_SEP)]
        else:
            components = [k for k in form._fields if k.startswith(f"{name}{SCORE_SEP}")]
            if components:
                target = form[components[0]]
        if target is None:
            unplaced.extend(messages)
            continue
        target.errors = [*list(target.errors or []), *messages]
    return unplaced
