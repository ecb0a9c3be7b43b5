"""Rate limits (Flask-Limiter) and the counts behind the aggregated audit entries.

- The login form's POST: per address (``LOGIN_RATE_LIMIT_ADDRESS``) and per account typed
  (``LOGIN_RATE_LIMIT_ACCOUNT``, keyed by a keyed hash of the username, so the limit
  storage never holds what was typed). The per-address limit stops password spraying
  (a few guesses on each of many accounts), which the per-account lockout cannot see.
- The second step of a login (``auth.second_factor``, ``auth.enrol``: POST), a password
  reset link (``auth.reset_password``: GET and POST) and single sign-on's callback
  (``sso.callback``): per address, with ``LOGIN_RATE_LIMIT_ADDRESS`` (each counted on its
  own). Wrong codes also count toward the account's lockout.
- The API: per token (``API_RATE_LIMIT``); a call without a valid token per address
  (``API_ANONYMOUS_RATE_LIMIT``), so random tokens do not each get a fresh allowance.

The counters live in ``RATELIMIT_STORAGE_URI``: ``memory://`` for one server, Redis for
several (every server then adds to the same counts). If Redis cannot be reached, requests
are not limited (the error is logged) rather than refused, and the failures below are
audited one by one. A stopped request answers 429 with
``Retry-After``: a page that says how long to wait, or the API's JSON error.

Failures that anyone can cause without an account (a bad bearer token, a 429) are not
audited one row per request: ``count_failure`` counts them per kind and address in a
window of ``AUDIT_AGGREGATE_MINUTES`` in the same storage (an atomic increment, so with
Redis exactly one server sees each count), and the audit log gets the window's 1st,
10th, 100th, ... (the count so far in each), and the first of the next window carries
the previous window's total.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time

from flask import Flask, current_app, g, jsonify, render_template, request
from flask_limiter import Limiter, RateLimitExceeded
from limits.errors import StorageError


def address() -> str:
    return request.remote_addr or "unknown"


def typed_account() -> str:
    """The username typed on the login form, as the login reads it, under a keyed hash:
    a password typed into the username box never reaches the limit storage."""
    typed = (request.form.get("username") or "").strip().lower()[:64]
    key = current_app.secret_key.encode() if current_app.secret_key else b""
    digest = hmac.new(key, b"login-account:" + typed.encode(), hashlib.sha256).hexdigest()
    return "account:" + digest[:32]


def bearer_token():
    """The request's bearer token as presented (``tracker.api.services.Presented``);
    looked up once per request (the API's own check reads the same answer)."""
    if "bearer_presented" not in g:
        present = current_app.extensions["tracker_token_reader"]  # the API's, given below
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        g.bearer_presented = present(token.strip() if scheme.lower() == "bearer" else None)
    return g.bearer_presented


def api_caller():
    """The user of the request's valid bearer token, or None."""
    token = bearer_token().token
    return token.user if token is not None else None


def _api_key() -> str:
    user = api_caller()
    return f"api-user:{user.id}" if user is not None else "address:" + address()


def _limiter() -> Limiter:
    return current_app.extensions["tracker_limiter"]


def init_app(app: Flask, login_view: str, api_blueprint, read_token) -> None:
    """One limiter per app (its storage is the app's): the login view's limits, the API
    blueprint's, and the 429 answer. ``read_token`` reads a bearer token as the API does
    (``tracker.api.services.present``), handed in so that the web layer imports no
    feature."""
    app.extensions["tracker_token_reader"] = read_token
    uri = app.config["RATELIMIT_STORAGE_URI"]
    options: dict = {"wrap_exceptions": True}  # a storage failure is a StorageError
    if uri.startswith(("redis://", "rediss://")):
        # An unreachable Redis costs a request a second at most, not a hang.
        options |= {"socket_connect_timeout": 1, "socket_timeout": 1}
    limiter = Limiter(
        key_func=address,
        storage_uri=uri,
        storage_options=options,
        key_prefix=app.config["RATELIMIT_KEY_PREFIX"],
        strategy="fixed-window",
        # Redis down: requests go on unlimited (logged) rather than every login failing;
        # each account's lockout, kept in the database, still holds.
        swallow_errors=True,
    )
    limiter.init_app(app)
    app.extensions["tracker_limiter"] = limiter
    config = app.config
    view = app.view_functions[login_view]
    view = limiter.limit(
        lambda: config["LOGIN_RATE_LIMIT_ADDRESS"],
        key_func=lambda: "address:" + address(),
        methods=["POST"],
        scope="login-address",
        error_message=(
            "Too many login attempts from your computer's address. Wait for the time "
            "shown below, then try again; if you have forgotten your password, ask an "
            "administrator to set a new one."
        ),
    )(view)
    view = limiter.limit(
        lambda: config["LOGIN_RATE_LIMIT_ACCOUNT"],
        key_func=typed_account,
        methods=["POST"],
        scope="login-account",
        error_message=(
            "Too many login attempts for this username. Wait for the time shown below, "
            "then try again; if you have forgotten your password, ask an administrator."
        ),
    )(view)
    app.view_functions[login_view] = view
    # The other steps of signing in that anyone can try without an account: the same
    # per-address allowance as the login form, each step counted on its own.
    for endpoint, methods, what in (
        ("auth.second_factor", ["POST"], "second-factor codes"),
        ("auth.enrol", ["POST"], "second-factor codes"),
        ("auth.reset_password", ["GET", "POST"], "password reset links"),
        ("sso.callback", ["GET"], "single sign-on answers"),
    ):
        if endpoint not in app.view_functions:
            continue
        app.view_functions[endpoint] = limiter.limit(
            lambda: config["LOGIN_RATE_LIMIT_ADDRESS"],
            key_func=lambda: "address:" + address(),
            methods=methods,
            scope=f"{endpoint}-address",
            error_message=(
                f"Too many {what} from your computer's address. Wait for the time shown "
                "below, then try again; if you are stuck, ask an administrator."
            ),
        )(app.view_functions[endpoint])
    limiter.limit(
        lambda: config["API_RATE_LIMIT"],
        key_func=_api_key,
        exempt_when=lambda: api_caller() is None,
        scope="api-token",
        error_message="Too many calls with this token: slow down and retry after the wait.",
    )(api_blueprint)
    limiter.limit(
        lambda: config["API_ANONYMOUS_RATE_LIMIT"],
        key_func=_api_key,
        exempt_when=lambda: api_caller() is not None,
        scope="api-address",
        error_message=(
            "Too many calls without a valid token from this address: send a valid "
            "'Authorization: Bearer <token>' and retry after the wait."
        ),
    )(api_blueprint)
    app.register_error_handler(RateLimitExceeded, _too_many)


def _retry_after() -> int:
    limit = _limiter().current_limit
    try:
        return max(1, math.ceil(limit.reset_at - time.time())) if limit else 60
    except StorageError:  # the storage went away since it counted this request
        return 60


def _too_many(exc: RateLimitExceeded):
    seconds = _retry_after()
    g.rate_limited = exc.description  # for the audit log (aggregated)
    headers = {"Retry-After": str(seconds)}
    if request.path.startswith("/api/"):
        from tracker.web.boundary import error_body  # boundary -> auditing -> here

        body = error_body("too_many_requests", exc.description, retry_after_seconds=seconds)
        return jsonify(body), 429, headers
    wait = f"{seconds} seconds" if seconds < 120 else f"{math.ceil(seconds / 60)} minutes"
    page = render_template(
        "errors/too_many.html", reason=exc.description, wait=wait, seconds=seconds
    )
    return page, 429, headers


def count_failure(kind: str, who: str) -> tuple[int | None, int, int]:
    """Count one failure of ``kind`` from ``who`` in the current audit window.

    Returns (the count so far in this window, the window's start as a Unix time, the
    previous window's total, read only for the window's first failure, else 0). The
    increment is atomic in every storage, so each count is seen by exactly one request.
    The count is None when the storage cannot be reached: the caller writes the failure
    on its own then, so that none goes unaudited.
    """
    storage = _limiter().storage
    window = current_app.config["AUDIT_AGGREGATE_MINUTES"] * 60
    start = int(time.time() // window) * window
    prefix = f"{current_app.config['RATELIMIT_KEY_PREFIX']}/audit/{kind}/{who}"
    try:
        count = storage.incr(f"{prefix}/{start}", 2 * window)
        previous = storage.get(f"{prefix}/{start - window}") if count == 1 else 0
    except StorageError:
        current_app.logger.exception("rate-limit storage unreachable: %s counted one by one", kind)
        return None, start, 0
    return count, start, previous


def worth_an_entry(count: int | None) -> bool:
    """The 1st, 10th, 100th, ... failure of a window: a few rows, the order of magnitude
    (every one while the count cannot be kept)."""
    if count is None:
        return True
    return count > 0 and 10 ** (len(str(count)) - 1) == count
