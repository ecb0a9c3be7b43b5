from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, PasswordField, SelectField, StringField, SubmitField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, EqualTo, Length

from tracker.users.roles import ROLE_LABELS

ROLE_CHOICES = [SelectChoice(code, label) for code, label in ROLE_LABELS.items()]


class LoginForm(FlaskForm):
    username = StringField(
        "Username",
        validators=[DataRequired("Enter your username.")],
        render_kw={"autocomplete": "username"},
    )
    password = PasswordField(
        "Password",
        validators=[DataRequired("Enter your password.")],
        render_kw={"autocomplete": "current-password"},
    )
    submit = SubmitField("Log in")


class UserCreateForm(FlaskForm):
    username = StringField(
        "Username",
        validators=[DataRequired("Enter a username."), Length(max=64)],
        description="Lower-case letters, digits, '.', '_' or '-'.",
    )
    full_name = StringField("Full name", validators=[Length(max=120)])
    role = SelectField("Role", choices=ROLE_CHOICES)
    password = PasswordField(
        "Initial password",
        validators=[
            DataRequired("Enter an initial password."),
            Length(min=12, max=128, message="The password must be 12 to 128 characters long."),
        ],
    )
    submit = SubmitField("Create user")


class UserEditForm(FlaskForm):
    role = SelectField("Role", choices=ROLE_CHOICES)
    active = BooleanField("Active (may log in)")
    submit = SubmitField("Save")


class PasswordChangeForm(FlaskForm):
    current = PasswordField(
        "Current password",
        validators=[DataRequired("Enter your current password.")],
        render_kw={"autocomplete": "current-password"},
    )
    new = PasswordField(
        "New password",
        validators=[
            DataRequired("Enter a new password."),
            Length(min=12, max=128, message="The password must be 12 to 128 characters long."),
        ],
        description="12 to 128 characters. Several unrelated words are easy to remember.",
        render_kw={"autocomplete": "new-password"},
    )
    confirm = PasswordField(
        "New password again",
        validators=[
            DataRequired("Type the new password again."),
            EqualTo("new", message="The two new passwords differ; type them again."),
        ],
        render_kw={"autocomplete": "new-password"},
    )
    submit = SubmitField("Change password")


class CodeForm(FlaskForm):
    """The second step of a login, enrolment's confirmation, or a fresh code for a change."""

    code = StringField(
        "Code",
        validators=[
            DataRequired("Enter the 6-digit code from your authenticator app."),
            Length(max=32, message="A code is 6 digits, or a recovery code like abcde-23456."),
        ],
        render_kw={"autocomplete": "one-time-code", "autocapitalize": "off", "spellcheck": "false"},
    )
    submit = SubmitField("Continue")
