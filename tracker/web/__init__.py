"""Web plumbing shared by every feature: login requirement, errors, filters, health."""

from __future__ import annotations

from flask import Flask, abort, flash, g, redirect, request, session, url_for
from flask_login import current_user

from tracker.core.text import has_control_characters
from tracker.extensions import db, login_manager
from tracker.users.models import User
from tracker.users.two_factor import parse_roles
from tracker.web import boundary, filters, headers, proxies
from tracker.web.access import ANONYMOUS, PENDING, refusal, rule_for
from tracker.web.helpers import AnyIdConverter, IdConverter
from tracker.web.sessions import (
    LOGIN_METHOD,
    PENDING_LOGIN,
    ServerSessionInterface,
    pending_login,
)

# Where a logged-in user whose role needs a second factor may go before setting it up.
SETTING_UP = frozenset({"account.two_factor", "auth.logout"})


def init_app(app: Flask) -> None:
    """The plumbing every page and call goes through; the features' blueprints are
    registered by ``create_app``."""
    app.session_interface = ServerSessionInterface()
    # Every id in a URL is ASCII digits, whichever of the two a rule uses.
    app.url_map.converters["int"] = IdConverter
    # The API answers an impossible id with its own JSON 404 (not a routing 405).
    app.url_map.converters["anyint"] = AnyIdConverter
    login_manager.login_view = "auth.login"

    @login_manager.user_loader
    def load_user(user_id: str):
        user = db.session.get(User, int(user_id))
        # A deactivated account is logged out on its next request, wherever it is.
        return user if user is not None and user.active else None

    filters.init_app(app)

    @app.get("/healthz")
    def healthz():
        # The benchmark's floor: no session, no database.
        return "ok", 200, {"Content-Type": "text/plain; charset=utf-8"}

    def fresh_request_state():
        """Nothing in ``g`` outlives its request: who is logged in (Flask-Login caches it
        there), the API caller, a refusal's reason. A served request always has a new
        ``g``; a request made inside an application context that is already pushed (a
        test, a script) shares it, and must not inherit the user of the request before."""
        g.__dict__.clear()

    app.before_request_funcs.setdefault(None, []).insert(0, fresh_request_state)

    @app.before_request
    def refuse_control_characters():
        """No query or form value may hold a control character: one place for every page
        and call, before any of them reads its input (the JSON API checks its bodies)."""
        if request.endpoint in (None, "healthz", "static", "bootstrap.static"):
            return None  # they read no input
        if request.blueprint == "api":
            return None  # the API answers in its own terms (422, naming the parameter)
        for source, values in (("address", request.args), ("form", request.form)):
            for name, value in values.items(multi=True):
                if has_control_characters(name) or has_control_characters(value):
                    label = name if not has_control_characters(name) else "a field name"
                    abort(
                        400,
                        f"The {source} value of '{label[:40]}' contains a control character "
                        "(such as NUL or ESC): remove it and send it again.",
                    )
        return None

    @app.before_request
    def check_access():
        """The access matrix, before any page: log in first, then the role must fit."""
        if request.endpoint is None or request.blueprint == "api":
            return None  # unrouted (404/405), or the API, which checks its own token
        roles = rule_for(request.endpoint).roles
        halfway = pending_login(session) if not current_user.is_authenticated else None
        if halfway and request.endpoint == "auth.reset_password":
            # A reset link opened in a browser holding a half login: the link wins, and
            # the half login ends (the new password would kill it anyway).
            session.pop(PENDING_LOGIN, None)
            halfway = None
        if halfway:
            # The password alone reaches the second-factor pages and logout, nothing else.
            if PENDING in roles:
                return None
            flash(refusal(PENDING, request.endpoint), "info")
            return redirect(url_for("auth.enrol" if halfway.get("enrol") else "auth.second_factor"))
        if ANONYMOUS in roles:
            return None
        if not current_user.is_authenticated:
            expired = getattr(session, "expired", None)
            if expired:
                flash(f"You were logged off {expired[0]}; please log in again.", "info")
            else:
                flash("Please log in to continue.", "info")
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        if (
            not current_user.two_factor_enrolled
            and current_user.role in parse_roles(app.config["TOTP_REQUIRED_ROLES"])
            # A single sign-on relies on the identity provider's own multi-factor
            # authentication (docs/security.md: two-factor login).
            and session.get(LOGIN_METHOD) != "sso"
            and request.endpoint not in SETTING_UP
        ):
            # The role came to need a second factor during this session (a new role, a
            # new setting): it is set up before anything else.
            flash("Your role needs two-factor login: set it up to continue.", "info")
            return redirect(url_for("account.two_factor"))
        reason = refusal(current_user.role, request.endpoint, request.view_args)
        if reason:
            g.refusal = reason
            abort(403, reason)
        return None

    boundary.init_app(app)
    headers.init_app(app)
    proxies.init_app(app)
