from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from werkzeug.security import check_password_hash
from wtforms import StringField, SubmitField
from wtforms.validators import DataRequired, Length

from tracker.extensions import db
from tracker.users.forms import LoginForm, UserCreateForm, UserEditForm
from tracker.users.models import User
from tracker.users.services import UserError, change_role, create_user, set_active

auth_bp = Blueprint("auth", __name__)
users_bp = Blueprint("users", __name__, url_prefix="/users")

# Checked against when the username is unknown, so a login takes as long either way.
_DUMMY_HASH = "scrypt:32768:8:1$cmEjHgzoOfXWuqZa$" + "0" * 128


def _safe_next(target: str | None) -> str:
    """Only a path on this site; browsers drop tabs and read backslashes as slashes."""
    fallback = url_for("worklist.index")
    if not target or any(ord(c) < 32 or c == "\\" for c in target):
        return fallback
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return fallback
    return target


@auth_bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(url_for("worklist.index"))
    form = LoginForm()
    if form.validate_on_submit():
        username = form.username.data.strip().lower()
        user = db.session.scalar(select(User).where(User.username == username))
        if user is None:
            check_password_hash(_DUMMY_HASH, form.password.data)
        if user is None or not user.check_password(form.password.data) or not user.active:
            flash("Unknown username or wrong password, or the account is deactivated.", "danger")
            return render_template("auth/login.html", form=form), 401
        login_user(user)
        return redirect(_safe_next(request.args.get("next")))
    return render_template("auth/login.html", form=form)


@auth_bp.post("/logout")
@login_required
def logout():
    logout_user()
    flash("You have logged out.", "info")
    return redirect(url_for("auth.login"))


def _require_admin() -> None:
    if current_user.role != "admin":
        abort(403)


@users_bp.get("/")
def index():
    _require_admin()
    users = db.session.scalars(select(User).order_by(User.username)).all()
    return render_template("users/index.html", users=users, form=UserCreateForm())


@users_bp.post("/")
def create():
    _require_admin()
    form = UserCreateForm()
    if form.validate_on_submit():
        try:
            user = create_user(
                username=form.username.data,
                role=form.role.data,
                password=form.password.data,
                full_name=form.full_name.data,
            )
            db.session.commit()
        except UserError as exc:
            db.session.rollback()
            getattr(form, exc.field or "username").errors.append(str(exc))
        else:
            flash(f"Created {user.username} ({user.role_label}).", "success")
            return redirect(url_for("users.index"))
    users = db.session.scalars(select(User).order_by(User.username)).all()
    return render_template("users/index.html", users=users, form=form), 422


@users_bp.route("/<int:user_id>", methods=["GET", "POST"])
def edit(user_id: int):
    _require_admin()
    user = db.get_or_404(User, user_id)
    form = UserEditForm(obj=user)
    if form.validate_on_submit():
        try:
            if form.role.data != user.role:
                change_role(user, form.role.data, current_user)
            if form.active.data != user.active:
                set_active(user, form.active.data, current_user)
            db.session.commit()
        except UserError as exc:
            db.session.rollback()
            flash(str(exc), "danger")
            return render_template("users/edit.html", user=user, form=form), 422
        flash(f"Saved {user.username}.", "success")
        return redirect(url_for("users.index"))
    status = 422 if request.method == "POST" else 200
    return render_template("users/edit.html", user=user, form=form), status


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


@account_bp.get("/", endpoint="index")
def account_page():
    from tracker.api.services import tokens_of

    return render_template(
        "users/account.html", tokens=tokens_of(current_user), form=TokenForm(), new_token=None
    )


@account_bp.post("/tokens")
def create_token():
    from tracker.api.services import create_token as create
    from tracker.api.services import tokens_of

    form = TokenForm()
    if not form.validate_on_submit():
        return render_template(
            "users/account.html", tokens=tokens_of(current_user), form=form, new_token=None
        ), 422
    _, plain = create(current_user, form.name.data)
    db.session.commit()
    # Shown once, in this response only: it is not kept anywhere it could be read again.
    return render_template(
        "users/account.html",
        tokens=tokens_of(current_user),
        form=TokenForm(formdata=None),
        new_token=plain,
    )


@account_bp.post("/tokens/<int:token_id>/revoke")
def revoke_token(token_id: int):
    from tracker.api.models import ApiToken
    from tracker.api.services import revoke

    token = db.get_or_404(ApiToken, token_id)
    if token.user_id != current_user.id and current_user.role != "admin":
        abort(403)
    revoke(token)
    db.session.commit()
    flash(f"Revoked the token '{token.name}'.", "success")
    return redirect(url_for("account.index"))
