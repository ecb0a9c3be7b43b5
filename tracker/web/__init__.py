"""Web plumbing shared by every feature: login requirement, errors, filters, health."""

from __future__ import annotations

from flask import Flask, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.exceptions import HTTPException

from tracker.extensions import db, login_manager

# Endpoints reachable without a login; everything else sends an anonymous user to log in.
PUBLIC_ENDPOINTS = frozenset({"auth.login", "static", "bootstrap.static", "healthz"})


def init_app(app: Flask) -> None:
    from werkzeug.routing import IntegerConverter

    from tracker.api.routes import bp as api_bp
    from tracker.extensions import csrf
    from tracker.mdt.routes import bp as mdt_bp
    from tracker.pathway.routes import bp as pathway_bp
    from tracker.patients.routes import bp as patients_bp
    from tracker.reports.routes import bp as reports_bp
    from tracker.users.routes import account_bp, auth_bp, users_bp
    from tracker.web import filters
    from tracker.web.helpers import IdConverter
    from tracker.worklist.routes import bp as worklist_bp

    app.url_map.converters["int"] = IdConverter
    # The API answers an impossible id with its own JSON 404 (not a routing 405).
    app.url_map.converters["anyint"] = IntegerConverter
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please log in to continue."
    login_manager.login_message_category = "info"

    @login_manager.user_loader
    def load_user(user_id: str):
        from tracker.users.models import User

        user = db.session.get(User, int(user_id))
        # A deactivated account is logged out on its next request, wherever it is.
        return user if user is not None and user.active else None

    blueprints = (
        auth_bp,
        users_bp,
        worklist_bp,
        patients_bp,
        pathway_bp,
        mdt_bp,
        reports_bp,
        api_bp,
        account_bp,
    )
    for blueprint in blueprints:
        app.register_blueprint(blueprint)
    # The API reads no session cookie, only bearer tokens, so CSRF does not apply to it.
    csrf.exempt(api_bp)
    filters.init_app(app)

    @app.get("/healthz")
    def healthz():
        # The benchmark's floor: no session, no database.
        return "ok", 200, {"Content-Type": "text/plain; charset=utf-8"}

    @app.before_request
    def require_login():
        if request.endpoint in PUBLIC_ENDPOINTS or request.endpoint is None:
            return None
        if request.blueprint == "api":  # the API authenticates its own requests
            return None
        if not current_user.is_authenticated:
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        return None

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        if request.endpoint == "healthz":
            return error
        if request.path.startswith("/api/"):
            from tracker.api.routes import error_body

            code = (error.name or "error").lower().replace(" ", "_")
            return error_body(code, error.description or error.name), error.code
        # Say why when the code that refused gave a reason; otherwise the page's own words.
        reason = error.description if error.description != type(error).description else None
        return render_template("errors/error.html", error=error, reason=reason), error.code

    @app.errorhandler(Exception)
    def server_error(error: Exception):
        app.logger.exception("unhandled error on %s", request.path)
        db.session.rollback()
        from werkzeug.exceptions import InternalServerError

        return render_template("errors/error.html", error=InternalServerError()), 500
