"""Single sign-on with the hospital's identity provider: OpenID Connect, the authorization
code flow with PKCE, through Authlib's Flask client.

``/login/sso`` sends the browser to the provider with a fresh state, nonce and PKCE
challenge. The browser is not logged in yet, so these live in its anonymous session: the
signed cookie ``tracker_session_anon`` (``tracker.web.sessions``), HttpOnly, signed with
SECRET_KEY (so not forgeable, though readable by whoever holds the cookie), believed for
ANONYMOUS_SESSION_MINUTES, and Authlib's own expiry of an hour. That is acceptable: the
verifier and nonce are worth something only together with the code the provider sends to
this browser, and the provider accepts a code once. Only the newest attempt's state is
kept (each start drops the earlier ones), so the cookie cannot grow with unfinished
starts. ``/login/sso/callback`` takes the code back: Authlib checks the state against the
session (a replayed or forged callback has none), exchanges the code with the verifier,
and checks the ID token's signature, issuer, audience, expiry and nonce. The claims then go
to ``tracker.users.sso`` for the account and role, and the login is the same as a password
login: a new session id, Flask-Login, an audit entry; the session records that it signed
in through the provider (whose own multi-factor authentication stands in for the
tracker's second factor: docs/security.md). Every refusal is audited with its reason; a
refusal that names no account (a stale or forged callback, which anyone can send) is
counted per address in the audit log, not written once per request.
"""

from __future__ import annotations

from authlib.common.errors import AuthlibBaseError
from authlib.integrations.flask_client import OAuth
from flask import (
    Blueprint,
    Flask,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_user
from joserfc.errors import JoseError
from requests import RequestException

from tracker.accounts.routes import landing, safe_next
from tracker.audit.services import record, signing_in
from tracker.core.db import utcnow
from tracker.users.sso import SsoRefused, SsoSettings, admit, check_settings, find_account
from tracker.web.auditing import counted
from tracker.web.boundary import discard, keep
from tracker.web.sessions import LOGIN_METHOD

bp = Blueprint("sso", __name__, url_prefix="/login/sso")

_NEXT = "sso_next"
# Where Authlib keeps an attempt's state, PKCE verifier and nonce in the session.
_STATE_PREFIX = "_state_sso_"
# A provider that does not answer within this many seconds fails the sign-in.
TIMEOUT = 10


def init_app(app: Flask) -> None:
    """Register the provider's client when OIDC_ISSUER is set (nothing otherwise)."""
    check_settings(app.config)
    issuer = app.config["OIDC_ISSUER"].rstrip("/")
    if not issuer:
        return
    oauth = OAuth(app)
    app.extensions["sso_client"] = oauth.register(
        "sso",
        client_id=app.config["OIDC_CLIENT_ID"],
        client_secret=app.config["OIDC_CLIENT_SECRET"],
        server_metadata_url=f"{issuer}/.well-known/openid-configuration",
        client_kwargs={
            "scope": app.config["OIDC_SCOPES"],
            "code_challenge_method": "S256",
            "default_timeout": TIMEOUT,
        },
    )


def enabled() -> bool:
    return "sso_client" in current_app.extensions


def provider_name() -> str:
    return current_app.config["OIDC_PROVIDER_NAME"]


def _client():
    client = current_app.extensions["sso_client"]
    metadata = client.load_server_metadata()
    # OpenID Connect Discovery 4.3: the document must name the issuer it was fetched for.
    if metadata.get("issuer", "").rstrip("/") != current_app.config["OIDC_ISSUER"].rstrip("/"):
        raise SsoRefused(
            "The identity provider's configuration names another issuer; tell the service desk.",
            f"discovery names issuer {metadata.get('issuer')!r}",
        )
    return client, metadata


def _not_configured():
    flash("Single sign-on is not set up on this server: log in with your password.", "info")
    return redirect(url_for("auth.login"))


def _refuse(exc: SsoRefused, status: int):
    """Nothing the sign-in wrote stays but its audit entry; the person is told why."""
    discard()
    if exc.user is None and not exc.username:
        # Anyone can cause it, as often as they like: counted, not one row each.
        counted("login_failed", exc.reason, method="sso")
    else:
        record(
            "login_failed",
            user=exc.user,
            username=exc.username or None,
            outcome="refused",
            detail={"method": "sso", "reason": exc.reason},
        )
    keep()
    g.refusal = exc.reason
    return render_template(
        "auth/sso_refused.html", message=exc.message, provider=provider_name()
    ), status


@bp.get("/", endpoint="start")
def start():
    if not enabled():
        return _not_configured()
    if current_user.is_authenticated:
        return redirect(landing(current_user))
    try:
        client, _ = _client()
        redirect_uri = current_app.config["OIDC_REDIRECT_URI"] or url_for(
            "sso.callback", _external=True
        )
        session[_NEXT] = safe_next(request.args.get("next"), "")
        # Only this attempt's state: an unfinished earlier start's would otherwise stay in
        # the cookie until it outgrew the browser's 4 KB and every callback failed.
        for key in [k for k in session if k.startswith(_STATE_PREFIX)]:
            session.pop(key)
        return client.authorize_redirect(redirect_uri)
    except SsoRefused as exc:
        return _refuse(exc, 502)
    except (AuthlibBaseError, RequestException, ValueError) as exc:
        current_app.logger.warning("identity provider unreachable: %s", exc)
        return _refuse(
            SsoRefused(
                f"{provider_name()} cannot be reached just now; try again in a minute, or "
                "log in with your password if you have one.",
                f"provider unreachable: {type(exc).__name__}",
            ),
            502,
        )


@bp.get("/callback", endpoint="callback")
def callback():
    if not enabled():
        return _not_configured()
    try:
        client, metadata = _client()
        # RFC 9207: a provider that names itself in the response must name the right one.
        if "iss" in request.args and request.args["iss"] != metadata["issuer"]:
            raise SsoRefused(
                "The sign-in answer came from another identity provider; start again.",
                f"authorization response from issuer {request.args['iss']!r}",
            )
        # State (against this session), the code exchange with the PKCE verifier, the ID
        # token's signature, issuer, audience, expiry and nonce.
        token = client.authorize_access_token()
        claims = dict(token.get("userinfo") or {})
        if not claims:
            raise SsoRefused(
                "The identity provider sent no ID token; tell the service desk.", "no ID token"
            )
        if metadata.get("userinfo_endpoint"):
            info = dict(client.userinfo(token=token))
            if info.get("sub") != claims["sub"]:  # OpenID Connect Core 5.3.2
                raise SsoRefused(
                    "The identity provider's answers disagree; start again.",
                    "userinfo subject differs from the ID token's",
                )
            claims = {**info, **claims}
    except SsoRefused as exc:
        return _refuse(exc, 400)
    except (AuthlibBaseError, JoseError, RequestException, ValueError, KeyError) as exc:
        return _refuse(_protocol_refusal(exc), 400)
    settings = SsoSettings.from_config(current_app.config)
    try:
        found = find_account(claims, settings)
        with signing_in(found.user):  # the link, role change or new account are the user's
            signed_in = admit(found, claims, settings)
    except SsoRefused as exc:
        return _refuse(exc, 403)
    user = signed_in.user
    user.last_login_at = utcnow()
    detail = {"method": "sso", "subject": claims["sub"], "role": user.role}
    if signed_in.created:
        detail["created"] = True
    if signed_in.linked:
        detail["linked"] = True
    if signed_in.role_was:
        detail["role_was"] = signed_in.role_was
    record("login", user=user, detail=detail)
    next_page = session.pop(_NEXT, "")
    session.regenerate()  # a new session id, as a password login gets
    login_user(user)
    session[LOGIN_METHOD] = "sso"
    if signed_in.role_was:
        flash(f"Your role is now {user.role_label}, as {provider_name()} says.", "info")
    return redirect(next_page or landing(user))


def _protocol_refusal(exc: Exception) -> SsoRefused:
    """A failed check of the protocol, in words for the person and the audit log."""
    code = getattr(exc, "error", "") or type(exc).__name__
    if code == "mismatching_state":
        message = (
            "This sign-in link has been used already or was not started in this browser. "
            "Start again with the sign-in button."
        )
    elif code == "access_denied":
        message = f"{provider_name()} did not sign you in. Start again if you meant to."
    else:
        message = f"The answer from {provider_name()} could not be verified; start again."
    description = getattr(exc, "description", "") or str(exc)
    return SsoRefused(message, f"{code}: {description}"[:300])
