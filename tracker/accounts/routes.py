from __future__ import annotations

from urllib.parse import urlsplit

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
from wtforms import StringField, SubmitField
from wtforms.validators import DataRequired, Length

from tracker.accounts.forms import LoginForm, PasswordChangeForm, UserCreateForm, UserEditForm
from tracker.api.models import ApiToken
from tracker.api.services import create_token as new_token
from tracker.api.services import revoke, tokens_of
from tracker.audit.services import record
from tracker.core.clock import local_zone
from tracker.core.db import utcnow
from tracker.extensions import db
from tracker.users.models import User
from tracker.users.passwords import check_password
from tracker.users.services import (
    UserError,
    change_role,
    create_user,
    is_locked,
    note_failed_login,
    note_login,
    set_active,
    set_sso,
)
from tracker.users.services import change_password as change_password_of
from tracker.users.services import unlock as unlock_user
from tracker.users.sessions import end_sessions_of, sessions_of
from tracker.users.sso import password_login_off
from tracker.web.boundary import discard, keep
from tracker.web.sessions import current_session_hash

auth_bp = Blueprint("auth", __name__)
users_bp = Blueprint("users", __name__, url_prefix="/users")

# Checked against when the username is unknown, so a login takes as long either way.
_DUMMY_HASH = "scrypt:32768:8:1$cmEjHgzoOfXWuqZa$" + "0" * 128


def landing(user) -> str:
    """Where a user starts: a surgeon at their sign-off queue, everyone else at the
    worklist (one click from the queue)."""
    return url_for("review.index" if user.role == "surgeon" else "worklist.index")


def safe_next(target: str | None, fallback: str) -> str:
    """Only a path on this site; browsers drop tabs and read backslashes as slashes."""
    if not target or any(ord(c) < 32 or c == "\\" for c in target) or target.startswith("//"):
        return fallback
    try:
        parts = urlsplit(target)
    except ValueError:  # e.g. '/[' : not a URL at all
        return fallback
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return fallback
    return target


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
        user = db.session.scalar(select(User).where(User.username == username))
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
            record("login_failed", username=username, outcome="refused", detail="unknown username")
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
            note_login(user, now)
            record("login", user=user)
            session.regenerate()  # a new session id: a planted one is worthless
            login_user(user)
            return redirect(safe_next(request.args.get("next"), landing(user)))
        keep()  # the failed attempt is counted and audited
        flash("Unknown username or wrong password, or the account is deactivated.", "danger")
        return _login_page(form, 401)
    status = 422 if request.method == "POST" else 200  # a field left empty: said beside it
    return _login_page(form, status)


@auth_bp.post("/logout")
def logout():
    record("logout")
    logout_user()
    # The old session's row is deleted (a copied cookie no longer works); the browser
    # gets a new, anonymous one that carries the message.
    session.clear()
    session.regenerate()
    flash("You have logged out.", "info")
    return redirect(url_for("auth.login"))


@users_bp.get("/")
def index():
    users = db.session.scalars(select(User).order_by(User.username)).all()
    return render_template("users/index.html", users=users, form=UserCreateForm(), now=utcnow())


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
        except UserError as exc:
            discard()
            getattr(form, exc.field or "username").errors.append(str(exc))
        else:
            flash(f"Created {user.username} ({user.role_label}).", "success")
            return redirect(url_for("users.index"))
    users = db.session.scalars(select(User).order_by(User.username)).all()
    return render_template("users/index.html", users=users, form=form, now=utcnow()), 422


@users_bp.route("/<int:user_id>", methods=["GET", "POST"])
def edit(user_id: int):
    user = db.get_or_404(User, user_id)
    form = UserEditForm(obj=user)
    if form.validate_on_submit():
        try:
            if form.role.data != user.role:
                change_role(user, form.role.data, current_user)
            if form.active.data != user.active:
                set_active(user, form.active.data, current_user)
            unlink = bool(form.sso_unlink.data and user.sso_subject)
            if form.sso_only.data != user.sso_only or unlink:
                set_sso(user, sso_only=form.sso_only.data, unlink=unlink)
        except UserError as exc:
            discard()
            flash(str(exc), "danger")
            return render_template("users/edit.html", user=user, form=form, now=utcnow()), 422
        flash(f"Saved {user.username}.", "success")
        return redirect(url_for("users.index"))
    status = 422 if request.method == "POST" else 200
    return render_template("users/edit.html", user=user, form=form, now=utcnow()), status


@users_bp.post("/<int:user_id>/unlock")
def unlock(user_id: int):
    user = db.get_or_404(User, user_id)
    unlock_user(user)
    record("update_user", detail={"username": user.username, "fields": ["unlocked"]})
    flash(f"Unlocked {user.username}: they can log in again.", "success")
    return redirect(url_for("users.edit", user_id=user.id))


account_bp = Blueprint("account", __name__, url_prefix="/account")


class TokenForm(FlaskForm):
    name = StringField(
        "What the token is for",
        validators=[
            DataRequired("Say what the token is for, e.g. 'EHR interface'."),
            Length(max=100),
        ],
    )
    submit = SubmitField("Create token")


def _account_page(status: int = 200, **forms):

    return render_template(
        "users/account.html",
        tokens=tokens_of(current_user),
        form=forms.get("form") or TokenForm(formdata=None),
        password_form=forms.get("password_form") or PasswordChangeForm(formdata=None),
        new_token=forms.get("new_token"),
        sessions=sessions_of(current_user.id),
        this_session=current_session_hash(session),
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
    _, plain = new_token(current_user, form.name.data)
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
