from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, PasswordField, SelectField, StringField, SubmitField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, EqualTo, Length, ValidationError

from tracker.engine import teams
from tracker.users.roles import ROLE_LABELS
from tracker.web.forms import CheckboxesField

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
    sso_only = BooleanField(
        "Single sign-on only (no password)",
        description="The user signs in with the hospital's identity provider only.",
    )
    password = PasswordField(
        "Initial password",
        description="Not needed (and not kept) for single sign-on only.",
    )
    teams = CheckboxesField(
        "Teams",
        description="The user sees the patients of these teams only (others through "
        "audited emergency access).",
    )
    submit = SubmitField("Create user")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.teams.choices = list(teams.teams())

    def validate_password(self, field) -> None:
        if self.sso_only.data:
            return
        if not field.data:
            raise ValidationError(
                "Enter an initial password, or tick 'Single sign-on only' for a user who "
                "signs in with the identity provider."
            )
        if not 12 <= len(field.data) <= 128:
            raise ValidationError("The password must be 12 to 128 characters long.")


class UserEditForm(FlaskForm):
    role = SelectField("Role", choices=ROLE_CHOICES)
    active = BooleanField("Active (may log in)")
    teams = CheckboxesField(
        "Teams",
        description="The user sees the patients of these teams only (others through "
        "audited emergency access).",
    )
    # Sent with the checkboxes: a post without it (none ticked sends nothing) keeps them.
    teams_shown = HiddenField()
    sso_only = BooleanField(
        "Single sign-on only (no password login)",
        description="The user signs in with the hospital's identity provider only.",
    )
    sso_unlink = BooleanField(
        "Unlink from the identity provider",
        description="The next single sign-on links this account again, by its username.",
    )
    submit = SubmitField("Save")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.teams.choices = list(teams.teams())


def new_password() -> PasswordField:
    """A new password, by the same rules wherever one is set (the services check it too)."""
    return PasswordField(
        "New password",
        validators=[
            DataRequired("Enter a new password."),
            Length(min=12, max=128, message="The password must be 12 to 128 characters long."),
        ],
        description="12 to 128 characters. Several unrelated words are easy to remember.",
        render_kw={"autocomplete": "new-password"},
    )


def new_password_again() -> PasswordField:
    return PasswordField(
        "New password again",
        validators=[
            DataRequired("Type the new password again."),
            EqualTo("new", message="The two new passwords differ; type them again."),
        ],
        render_kw={"autocomplete": "new-password"},
    )


class PasswordChangeForm(FlaskForm):
    current = PasswordField(
        "Current password",
        validators=[DataRequired("Enter your current password.")],
        render_kw={"autocomplete": "current-password"},
    )
    new = new_password()
    confirm = new_password_again()
    submit = SubmitField("Change password")


class PasswordResetForm(FlaskForm):
    """The page a password reset link opens: a new password, twice."""

    new = new_password()
    confirm = new_password_again()
    submit = SubmitField("Set password")


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
