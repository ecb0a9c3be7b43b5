from __future__ import annotations

import segno
from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from werkzeug.security import check_password_hash
from wtforms import IntegerField, RadioField, StringField, SubmitField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from tracker.accounts.forms import (
    CodeForm,
    LoginForm,
    PasswordChangeForm,
    PasswordResetForm,
    UserCreateForm,
    UserEditForm,
)
from tracker.api.models import READ_WRITE, SCOPES, ApiToken
from tracker.api.services import TokenError, revoke, tokens_of
from tracker.api.services import create_token as new_token
from tracker.audit.services import record, unknown_username
from tracker.core.clock import local_zone
from tracker.core.db import utcnow
from tracker.engine import teams
from tracker.extensions import db
from tracker.teams.scope import team_codes
from tracker.teams.services import AccessError, set_teams
from tracker.users import two_factor
from tracker.users.models import ALERT_EMAIL_CHOICES, User, user_named
from tracker.users.passwords import check_password
from tracker.users.resets import ResetRefused
from tracker.users.resets import find as find_reset
from tracker.users.resets import issue as issue_reset
from tracker.users.resets import use as use_reset
from tracker.users.roles import CLINICAL
from tracker.users.services import (
    UserError,
    change_role,
    create_user,
    is_locked,
    note_failed_login,
    note_login,
    set_active,
    set_alert_email,
    set_sso,
)
from tracker.users.services import change_password as change_password_of
from tracker.users.services import unlock as unlock_user
from tracker.users.sessions import end_sessions_of, sessions_of
from tracker.users.sso import password_login_off
from tracker.users.two_factor import TwoFactorError, parse_roles
from tracker.web.auditing import counted
from tracker.web.boundary import discard, keep
from tracker.web.helpers import safe_next
from tracker.web.sessions import (
    LOGIN_METHOD,
    PENDING_LOGIN,
    current_session_hash,
    pending_login,
    pending_login_refusal,
    start_pending_login,
)

auth_bp = Blueprint("auth", __name__)
users_bp = Blueprint("users", __name__, url_prefix="/users")

# Checked against when the username is unknown, so a login takes as long either way.
_DUMMY_HASH = "scrypt:32768:8:1$cmEjHgzoOfXWuqZa$" + "0" * 128


def landing(user) -> str:
    """Where a user starts: a coordinator or surgeon at My work (their tasks, their
    targets due, their sign-off queue; the worklist one click away), everyone else at the
    worklist."""
    return url_for("mywork.index" if user.role in CLINICAL else "worklist.index")


def _login_page(form: LoginForm, status: int = 200):
    config = current_app.config
    sso = config["OIDC_PROVIDER_NAME"] if config["OIDC_ISSUER"] else None
    return render_template(
        "auth/login.html", form=form, sso=sso, next=safe_next(request.args.get("next"), "")
    ), status


def _locked_message(user: User) -> str:
    until = user.locked_until.astimezone(local_zone()).strftime("%H:%M")
    return (
        f"Too many failed logins: this account is locked until {until}. Try again then, "
        "or ask an administrator to unlock it."
    )


@auth_bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(landing(current_user))
    form = LoginForm()
    if form.validate_on_submit():
        username = form.username.data.strip().lower()[:64]
        user = user_named(username)
        now = utcnow()
        if user is not None and is_locked(user, now):
            check_password_hash(_DUMMY_HASH, form.password.data)
            record("login_failed", user=user, outcome="refused", detail="account locked")
            keep()
            flash(_locked_message(user), "danger")
            return _login_page(form, 429)
        oidc_only = bool(current_app.config["OIDC_ISSUER"] and current_app.config["OIDC_ONLY"])
        if user is not None and password_login_off(user, oidc_only):
            check_password_hash(_DUMMY_HASH, form.password.data)
            record(
                "login_failed",
                user=user,
                outcome="refused",
                detail="password login is off for this account (single sign-on only)",
            )
            keep()
            provider = current_app.config["OIDC_PROVIDER_NAME"]
            flash(
                f"This account signs in with {provider} only, not with a password: use "
                f"'Sign in with {provider}'.",
                "warning",
            )
            return _login_page(form, 401)
        if user is None:
            check_password_hash(_DUMMY_HASH, form.password.data)
            typed = unknown_username(username)
            record("login_failed", username=typed, outcome="refused", detail="unknown username")
        elif not check_password(user, form.password.data):
            config = current_app.config
            locked = note_failed_login(
                user, now, config["LOGIN_LOCK_AFTER"], config["LOGIN_LOCK_MINUTES"]
            )
            record("login_failed", user=user, outcome="refused", detail="wrong password")
            if locked:
                record(
                    "login_locked",
                    user=user,
                    outcome="refused",
                    detail=f"{config['LOGIN_LOCK_AFTER']} failed logins in a row",
                )
                keep()
                flash(_locked_message(user), "danger")
                return _login_page(form, 429)
        elif not user.active:
            record("login_failed", user=user, outcome="refused", detail="account deactivated")
        else:
            target = safe_next(request.args.get("next"), landing(user))
            if user.two_factor_enrolled or _required(user):
                # Half logged in: the failure count is not reset until the second factor
                # is right too, so wrong codes add to the same lockout.
                session.regenerate()
                session[PENDING_LOGIN] = start_pending_login(
                    user, not user.two_factor_enrolled, target
                )
                step = "auth.second_factor" if user.two_factor_enrolled else "auth.enrol"
                return redirect(url_for(step))
            return _logged_in(user, now, target)
        keep()  # the failed attempt is counted and audited
        flash("Unknown username or wrong password, or the account is deactivated.", "danger")
        return _login_page(form, 401)
    status = 422 if request.method == "POST" else 200  # a field left empty: said beside it
    return _login_page(form, status)


def _required_roles() -> frozenset[str]:
    return parse_roles(current_app.config["TOTP_REQUIRED_ROLES"])


def _required(user: User) -> bool:
    return user.role in _required_roles()


def _key() -> bytes:
    return current_app.extensions["audit_key"]


def _logged_in(user: User, now, target: str, how: str | None = None):
    """The end of a login: counted, audited, a new session id, the user's session."""
    note_login(user, now)
    record(
        "login",
        user=user,
        detail={
            "totp": "with an authenticator code",
            "recovery": "with a recovery code",
            "enrolled": "after setting up two-factor login",
        }.get(how),
    )
    session.pop(PENDING_LOGIN, None)
    session.regenerate()  # a new session id: a planted one is worthless
    login_user(user)
    session[LOGIN_METHOD] = "password"
    return redirect(target)


def _pending_user() -> tuple[dict, User | None, str | None]:
    """The half login, its user, and why it is refused (None: go on)."""
    pending = pending_login(session) or {}
    user = db.session.get(User, pending.get("user_id") or 0)
    if user is None or not user.active:
        return pending, None, "Log in again: the account is no longer active."
    return pending, user, pending_login_refusal(pending, user)


def _back_to_login(message: str):
    session.pop(PENDING_LOGIN, None)
    flash(message, "danger")
    return redirect(url_for("auth.login"))


@auth_bp.route("/login/code", methods=["GET", "POST"])
def second_factor():
    pending, user, refused = _pending_user()
    if refused:
        return _back_to_login(refused)
    if pending.get("enrol"):
        return redirect(url_for("auth.enrol"))
    if not user.two_factor_enrolled:  # cannot be with a valid binding; never enrolment
        return _back_to_login("Log in again: this account's two-factor login was reset.")
    now = utcnow()
    if is_locked(user, now):
        record("login_failed", user=user, outcome="refused", detail="account locked")
        return _back_to_login(_locked_message(user))
    form = CodeForm()
    if form.validate_on_submit():
        try:
            how = two_factor.verify(user, form.code.data, _key(), now)
        except TwoFactorError as exc:  # the secret cannot be read: only a reset helps
            record("login_failed", user=user, outcome="refused", detail=str(exc))
            return _back_to_login(str(exc))
        if how:
            left = two_factor.recovery_codes_left(user)
            if how == "recovery":
                record("recovery_code_used", user=user, detail={"left": left})
                flash(
                    f"You logged in with a recovery code; {left} are left. Renew them on "
                    "your account page if you are running low.",
                    "warning",
                )
            return _logged_in(user, now, safe_next(pending.get("next"), landing(user)), how)
        config = current_app.config
        locked = note_failed_login(
            user, now, config["LOGIN_LOCK_AFTER"], config["LOGIN_LOCK_MINUTES"]
        )
        record("two_factor_failed", user=user, outcome="refused", detail="wrong code")
        keep()  # counted and audited even though the answer is an error
        if locked:
            record(
                "login_locked",
                user=user,
                outcome="refused",
                detail=f"{config['LOGIN_LOCK_AFTER']} failed logins in a row",
            )
            return _back_to_login(_locked_message(user))
        form.code.errors.append(
            "That code is wrong, or was used already. Type the code your authenticator app "
            "shows now, or one of your recovery codes."
        )
        return render_template("auth/second_factor.html", form=form), 401
    status = 422 if request.method == "POST" else 200
    return render_template("auth/second_factor.html", form=form), status


def _enrol_page(user: User, form: CodeForm, action: str, status: int = 200):
    secret = two_factor.pending_secret(user, _key()) or two_factor.start_enrolment(user, _key())
    uri = two_factor.provisioning_uri(user, secret, current_app.config["TOTP_ISSUER"])
    # A data: URI image: the CSP allows img-src 'self' data:, and no script is needed.
    qr = segno.make(uri, error="m").svg_data_uri(scale=5, border=2, dark="#000", light="#fff")
    grouped = " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))
    return render_template(
        "auth/enrol.html", form=form, qr=qr, secret=grouped, action=action
    ), status


def _confirm(user: User, form: CodeForm, action: str):
    """Enrolment's confirmation: the recovery codes, or the page again with why not."""
    try:
        codes = two_factor.confirm_enrolment(user, form.code.data, _key(), utcnow())
    except TwoFactorError as exc:
        form.code.errors.append(str(exc))
        return None, _enrol_page(user, form, action, 422)
    record("two_factor_enrolled", user=user, detail={"username": user.username})
    return codes, None


@auth_bp.route("/login/enrol", methods=["GET", "POST"])
def enrol():
    """A role that requires a second factor, not set up yet: set it up now, or go no further."""
    pending, user, refused = _pending_user()
    if refused:
        return _back_to_login(refused)
    if not pending.get("enrol"):
        # A half login that started as "enter your code" never becomes an enrolment:
        # after an administrator's reset, an old copy must not set up a new factor.
        return redirect(url_for("auth.second_factor"))
    if user.two_factor_enrolled:
        # Never a new secret for an account that has one: the password alone must not
        # replace the authenticator (that is an administrator's reset).
        return _back_to_login("Log in again: two-factor login is set up for this account.")
    form = CodeForm()
    if not form.validate_on_submit():
        return _enrol_page(user, form, url_for("auth.enrol"), 422 if form.is_submitted() else 200)
    codes, refused = _confirm(user, form, url_for("auth.enrol"))
    if refused:
        return refused
    target = safe_next(pending.get("next"), landing(user))
    _logged_in(user, utcnow(), target, "enrolled")
    return render_template("auth/recovery_codes.html", codes=codes, target=target)


@auth_bp.post("/logout")
def logout():
    if pending_login(session) and not current_user.is_authenticated:
        session.clear()
        session.regenerate()
        flash("Login cancelled.", "info")
        return redirect(url_for("auth.login"))
    record("logout")
    logout_user()
    # The old session's row is deleted (a copied cookie no longer works); the browser
    # gets a new, anonymous one that carries the message.
    session.clear()
    session.regenerate()
    flash("You have logged out.", "info")
    return redirect(url_for("auth.login"))


@auth_bp.route("/password-reset/<token>", methods=["GET", "POST"])
def reset_password(token: str):
    """The page a reset link opens (no login): a new password, once."""
    try:
        find_reset(token)
    except ResetRefused as exc:
        return _reset_refused(exc)
    form = PasswordResetForm()
    if form.validate_on_submit():
        try:
            user = use_reset(token, form.new.data)
        except ResetRefused as exc:  # used a moment ago, by another submission
            discard()
            return _reset_refused(exc)
        except UserError as exc:
            discard()
            form.new.errors = [*form.new.errors, str(exc)]
        else:  # audited as password_reset_used and password_changed, by the session hook
            if current_user.is_authenticated and current_user.id == user.id:
                logout_user()  # this session's row is gone with the others
                session.clear()
                session.regenerate()
            flash(
                f"Your password is set, {user.username}; log in with it. Your other sessions "
                "have ended and your API tokens are revoked.",
                "success",
            )
            return redirect(url_for("auth.login"))
    status = 422 if request.method == "POST" else 200
    return render_template("auth/reset.html", form=form), status


def _reset_refused(exc: ResetRefused):
    reset = exc.reset
    if reset is None:
        # A link that names no reset: anyone can send as many as they like, so they are
        # counted per address (the 1st, 10th, 100th, ...), not written one row each.
        counted("password_reset_refused", str(exc))
    else:  # a real link, used or expired: its user's entry
        record("password_reset_refused", user=reset.user, outcome="refused", detail=str(exc))
    keep()  # the refusal's audit entry stays
    return render_template("auth/reset.html", form=None, reason=str(exc)), 410


@users_bp.get("/")
def index():
    return _users_page(UserCreateForm())


def _users_page(form, status: int = 200):
    users = db.session.scalars(select(User).order_by(User.username)).all()
    memberships = {u.id: [teams.label(code) for code in team_codes(u)] for u in users}
    return render_template(
        "users/index.html", users=users, form=form, now=utcnow(), memberships=memberships
    ), status


@users_bp.post("/")
def create():
    form = UserCreateForm()
    if form.validate_on_submit():
        try:
            user = create_user(
                username=form.username.data,
                role=form.role.data,
                password=form.password.data,
                full_name=form.full_name.data,
                sso_only=form.sso_only.data,
            )
            set_teams(user, form.teams.data or [])
        except (UserError, AccessError) as exc:
            discard()
            field = getattr(exc, "field", None) or ("teams" if isinstance(exc, AccessError) else "")
            getattr(form, field or "username").errors.append(str(exc))
        else:
            flash(f"Created {user.username} ({user.role_label}).", "success")
            return redirect(url_for("users.index"))
    return _users_page(form, 422)


def _user_form(user: User, formdata=None) -> UserEditForm:
    """The user's edit form as stored: their role, state and teams ticked."""
    form = UserEditForm(obj=user, formdata=formdata)
    form.teams.data = team_codes(user)
    form.teams_shown.data = "1"
    return form


def _edit_page(user: User, form: UserEditForm, status: int = 200, **extra):
    return render_template(
        "users/edit.html",
        user=user,
        form=form,
        now=utcnow(),
        required_roles=_required_roles(),
        **extra,
    ), status


@users_bp.route("/<int:user_id>", methods=["GET", "POST"])
def edit(user_id: int):
    user = db.get_or_404(User, user_id)
    form = UserEditForm(obj=user) if request.method == "POST" else _user_form(user)
    if form.validate_on_submit():
        try:
            if form.role.data != user.role:
                change_role(user, form.role.data, current_user)
            if form.active.data != user.active:
                set_active(user, form.active.data, current_user)
            if form.teams_shown.data:
                set_teams(user, form.teams.data or [])
            unlink = bool(form.sso_unlink.data and user.sso_subject)
            if form.sso_only.data != user.sso_only or unlink:
                set_sso(user, sso_only=form.sso_only.data, unlink=unlink)
        except (UserError, AccessError) as exc:
            discard()
            flash(str(exc), "danger")
            return _edit_page(user, form, 422)
        flash(f"Saved {user.username}.", "success")
        return redirect(url_for("users.index"))
    return _edit_page(user, form, 422 if request.method == "POST" else 200)


@users_bp.post("/<int:user_id>/reset-link")
def reset_link(user_id: int):
    """A one-time link for the user to set a new password, shown once, to hand over."""
    user = db.get_or_404(User, user_id)
    form = _user_form(user)
    try:
        reset, plain = issue_reset(user, current_user, current_app.config["PASSWORD_RESET_HOURS"])
    except UserError as exc:
        discard()
        flash(str(exc), "danger")
        return _edit_page(user, form, 422)
    # In this response only (not flashed: the session is stored in the database).
    link = url_for("auth.reset_password", token=plain, _external=True)
    return _edit_page(user, form, reset_link=link, reset=reset)


@users_bp.post("/<int:user_id>/unlock")
def unlock(user_id: int):
    user = db.get_or_404(User, user_id)
    unlock_user(user)
    record("update_user", detail={"username": user.username, "fields": ["unlocked"]})
    flash(f"Unlocked {user.username}: they can log in again.", "success")
    return redirect(url_for("users.edit", user_id=user.id))


@users_bp.post("/<int:user_id>/two-factor/reset")
def reset_two_factor(user_id: int):
    user = db.get_or_404(User, user_id)
    two_factor.reset(user)
    record("two_factor_reset", detail={"username": user.username})
    flash(
        f"Reset {user.username}'s two-factor login: their sessions have ended"
        + (", and they set it up again at their next login." if _required(user) else "."),
        "success",
    )
    return redirect(url_for("users.edit", user_id=user.id))


account_bp = Blueprint("account", __name__, url_prefix="/account")
# The account page warns of a token that expires within this many days.
WARN_DAYS = 14


class TokenForm(FlaskForm):
    name = StringField(
        "What the token is for",
        validators=[
            DataRequired("Say what the token is for, e.g. 'EHR interface'."),
            Length(max=100),
        ],
    )
    scope = RadioField(
        "It may",
        choices=[SelectChoice(code, label) for code, label in SCOPES.items()],
        default=READ_WRITE,
        validators=[DataRequired("Choose what the token may do.")],
    )
    days = IntegerField(
        "Days it works",
        validators=[Optional(), NumberRange(min=1, message="A token works 1 day or more.")],
        description="Empty: the longest allowed. Choose fewer for a short-lived job.",
    )
    submit = SubmitField("Create token")


class AlertEmailForm(FlaskForm):
    email = StringField(
        "Email address for alerts",
        validators=[Length(max=254, message="An email address has at most 254 characters.")],
        description="Your work address. Emails name patients by MRN and initials only.",
        render_kw={"autocomplete": "email", "type": "email"},
    )
    alert_email = RadioField(
        "Email me",
        choices=[SelectChoice(code, label) for code, label in ALERT_EMAIL_CHOICES.items()],
        validators=[DataRequired("Choose how often to get alerts by email.")],
    )
    submit = SubmitField("Save email settings")


def _alert_form(formdata=None) -> AlertEmailForm:
    form = AlertEmailForm(formdata=formdata)
    if formdata is None:
        form.email.data = current_user.email or ""
        form.alert_email.data = current_user.alert_email
    return form


def _account_page(status: int = 200, **forms):

    return render_template(
        "users/account.html",
        tokens=tokens_of(current_user),
        form=forms.get("form") or TokenForm(formdata=None),
        password_form=forms.get("password_form") or PasswordChangeForm(formdata=None),
        new_token=forms.get("new_token"),
        now=utcnow(),
        warn_days=WARN_DAYS,
        sessions=sessions_of(current_user.id),
        this_session=current_session_hash(session),
        code_form=forms.get("code_form") or CodeForm(formdata=None),
        recovery_left=two_factor.recovery_codes_left(current_user),
        two_factor_required=_required(current_user),
        alert_form=forms.get("alert_form") or _alert_form(),
    ), status


@account_bp.get("/", endpoint="index")
def account_page():
    return _account_page()


@account_bp.post("/password")
def change_password():
    form = PasswordChangeForm()
    if form.validate_on_submit():
        try:
            change_password_of(
                current_user, form.current.data, form.new.data, keep_session=session.sid
            )
        except UserError as exc:
            discard()
            field = form.current if exc.field == "current" else form.new
            field.errors = [*field.errors, str(exc)]
        else:  # audited as password_changed with the change itself
            flash("Your password is changed; your other sessions have ended.", "success")
            return redirect(url_for("account.index"))
    return _account_page(422, password_form=form)


@account_bp.post("/alerts", endpoint="alerts")
def alert_email():
    """The user's own address for alerts and how often they are emailed."""
    form = _alert_form(request.form)
    if form.validate_on_submit():
        try:
            set_alert_email(current_user, form.email.data, form.alert_email.data)
        except UserError as exc:
            discard()
            field = form.alert_email if exc.field == "alert_email" else form.email
            field.errors = [*field.errors, str(exc)]
        else:
            flash("Your email settings for alerts are saved.", "success")
            return redirect(url_for("account.index", _anchor="alerts"))
    return _account_page(422, alert_form=form)


@account_bp.post("/sessions/end-others")
def end_other_sessions():
    end_sessions_of(current_user.id, keep=session.sid)
    record("logout", detail="ended the account's other sessions")
    flash("Your other sessions have ended.", "success")
    return redirect(url_for("account.index"))


@account_bp.post("/tokens")
def create_token():

    form = TokenForm()
    if not form.validate_on_submit():
        return _account_page(422, form=form)
    try:
        _, plain = new_token(
            current_user,
            form.name.data,
            scope=form.scope.data,
            days=form.days.data,
            max_days=current_app.config["API_TOKEN_DAYS"],
        )
    except TokenError as exc:
        discard()
        field = form.days if exc.field == "days" else form.scope
        field.errors = [*field.errors, str(exc)]
        return _account_page(422, form=form)
    # Shown once, in this response only: it is not kept anywhere it could be read again.
    return _account_page(new_token=plain)


@account_bp.post("/tokens/<int:token_id>/revoke")
def revoke_token(token_id: int):

    token = db.get_or_404(ApiToken, token_id)
    if token.user_id != current_user.id and current_user.role != "admin":
        abort(403)
    revoke(token)
    flash(f"Revoked the token '{token.name}'.", "success")
    return redirect(url_for("account.index"))


@account_bp.route("/two-factor", methods=["GET", "POST"], endpoint="two_factor")
def two_factor_setup():
    """Setting up two-factor login from the account page (or because the role needs it)."""
    if current_user.two_factor_enrolled:
        return redirect(url_for("account.index", _anchor="two-factor"))
    form = CodeForm()
    action = url_for("account.two_factor")
    if not form.validate_on_submit():
        return _enrol_page(current_user, form, action, 422 if form.is_submitted() else 200)
    codes, refused = _confirm(current_user, form, action)
    if refused:
        return refused
    return render_template("auth/recovery_codes.html", codes=codes, target=url_for("account.index"))


@account_bp.post("/two-factor/recovery-codes")
def recovery_codes():
    """New recovery codes (the old ones stop working), after a fresh authenticator code."""
    form = CodeForm()
    if form.validate_on_submit():
        try:
            two_factor.check_fresh_code(current_user, form.code.data, _key(), utcnow())
        except TwoFactorError as exc:
            form.code.errors.append(str(exc))
            record(
                "two_factor_failed", outcome="refused", detail="wrong code for new recovery codes"
            )
            keep()  # the refusal is audited
        else:
            codes = two_factor.new_recovery_codes(current_user, utcnow())
            record("recovery_codes_renewed", detail={"username": current_user.username})
            return render_template(
                "auth/recovery_codes.html", codes=codes, target=url_for("account.index")
            )
    return _account_page(422, code_form=form)
