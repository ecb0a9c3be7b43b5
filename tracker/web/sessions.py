"""Server-side sessions: the cookie carries a random id, the data lives in web_session.

Logging out deletes the row and deactivating an account deletes all of its rows, so a
copied cookie stops working at once, on every app server. A session ends after
SESSION_IDLE_MINUTES without a request and SESSION_ABSOLUTE_HOURS after it began; a
login starts a new id (no session fixation).

Only a logged-in user has a row. What an anonymous visitor's session holds (the login
form's CSRF token, a flashed message) travels in a second cookie, signed with
SECRET_KEY and read back only within ANONYMOUS_SESSION_MINUTES: a visitor, or a flood of
them, writes nothing to the database. The login moves that data into a new row under a
new id and deletes the anonymous cookie; a logout does the reverse.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from datetime import timedelta

from flask import Flask, Request, Response, current_app, request
from flask.json.tag import TaggedJSONSerializer
from flask.sessions import SessionInterface, SessionMixin
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import delete, insert, or_, update
from werkzeug.datastructures import CallbackDict

from tracker.audit.services import record
from tracker.core.db import utcnow
from tracker.extensions import db
from tracker.users.models import User, WebSession
from tracker.users.sessions import session_hash

_serializer = TaggedJSONSerializer()
# Requests that never need a session: no database read for them.
_SESSIONLESS_PREFIXES = ("/static/", "/bootstrap/static/", "/healthz", "/api/")
_USER_KEY = "_user_id"  # Flask-Login's: a session holding it is a logged-in one


def anonymous_cookie_name(app: Flask) -> str:
    return app.config["SESSION_COOKIE_NAME"] + "_anon"


def _anonymous_signer(app: Flask) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(
        app.secret_key,
        salt="tracker-anonymous-session",
        serializer=_serializer,
        signer_kwargs={"key_derivation": "hmac", "digest_method": hashlib.sha256},
    )


class ServerSession(CallbackDict, SessionMixin):
    def __init__(self, initial=None, sid: str | None = None, row: WebSession | None = None):
        def on_update(session):
            session.modified = True

        super().__init__(initial, on_update)
        self.sid = sid
        # The stored row this session was read from: its key and last activity.
        self.id_hash = row.id_hash if row is not None else None
        self.last_seen_at = row.last_seen_at if row is not None else None
        self.modified = False
        self.regenerate_requested = False
        self.ended = False
        # Set when the cookie named a session that timed out: (reason, user id).
        self.expired: tuple[str, int | None] | None = None
        self.stale_cookie = False
        # The request brought an anonymous (signed cookie) session.
        self.anonymous_cookie = False

    def regenerate(self) -> None:
        """A new id for this session's data (at login), and a new CSRF token: neither
        from before the login is worth anything after it."""
        self.pop("csrf_token", None)  # Flask-WTF makes a new one when next asked
        self.regenerate_requested = True
        self.modified = True

    def end(self) -> None:
        """Delete this session on the server (at logout)."""
        self.clear()
        self.ended = True


# Half a login (the password was right, the second factor is to come):
# {"user_id": ..., "enrol": bool, "next": path, "started": Unix time, "bound": HMAC}.
# Never together with Flask-Login's user. It lives in the signed anonymous cookie, so a
# copy of that cookie is a copy of it: it is believed for PENDING_LOGIN_MINUTES after the
# password was typed (whatever the cookie's own age; a page view does not renew it), and
# only while the account's credentials are those it was started with (``bound``).
PENDING_LOGIN = "pending_login"
# How this session logged in: "password" (with the second factor, if any) or "sso".
LOGIN_METHOD = "login_method"


def pending_login(session) -> dict | None:
    value = session.get(PENDING_LOGIN) if session is not None else None
    return value if isinstance(value, dict) and value.get("user_id") else None


def _credentials_binding(user: User) -> str:
    """An HMAC, under the app's key, of what a password reset, a two-factor reset,
    an enrolment or a change to sign-on-only changes: any of them kills every copy of a
    half login."""
    enabled = user.totp_enabled_at.isoformat() if user.totp_enabled_at else ""
    parts = [
        user.password_hash or "",
        enabled,
        (user.totp_secret or "") if enabled else "",  # an enrolment under way changes it
        "sso-only" if user.sso_only else "",
    ]
    key = (current_app.secret_key or "").encode()
    message = "\x00".join(["pending-login", str(user.id), *parts]).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def start_pending_login(user: User, enrol: bool, next_page: str) -> dict:
    """The half login to keep in the session once the password is right."""
    return {
        "user_id": user.id,
        "enrol": enrol,
        "next": next_page,
        "started": int(time.time()),
        "bound": _credentials_binding(user),
    }


def pending_login_refusal(pending: dict, user: User) -> str | None:
    """Why this half login is no longer believed (to show the person), or None."""
    minutes = current_app.config["PENDING_LOGIN_MINUTES"]
    started = pending.get("started")
    # A minute's grace the other way: app servers' clocks differ by a little.
    if not isinstance(started, int) or not -60 <= time.time() - started <= minutes * 60:
        return f"Log in again: the second step must follow the password within {minutes} minutes."
    bound = pending.get("bound")
    if not isinstance(bound, str) or not hmac.compare_digest(bound, _credentials_binding(user)):
        return (
            "Log in again: this account's password, two-factor login or sign-in method "
            "changed since the password was typed."
        )
    return None


def current_session_hash(session) -> str | None:
    sid = getattr(session, "sid", None)
    return session_hash(sid) if sid else None


class ServerSessionInterface(SessionInterface):
    def _limits(self, app: Flask) -> tuple[timedelta, timedelta]:
        return (
            timedelta(minutes=app.config["SESSION_IDLE_MINUTES"]),
            timedelta(hours=app.config["SESSION_ABSOLUTE_HOURS"]),
        )

    def open_session(self, app: Flask, request: Request):
        if request.path.startswith(_SESSIONLESS_PREFIXES):
            return self.make_null_session(app)
        sid = request.cookies.get(self.get_cookie_name(app))
        if not sid or len(sid) > 100:
            return self._anonymous(app, request)
        row = db.session.get(WebSession, session_hash(sid))
        if row is None:
            session = self._anonymous(app, request)
            session.stale_cookie = True
            return session
        now = utcnow()
        idle, absolute = self._limits(app)
        reason = None
        if now - row.last_seen_at > idle:
            reason = f"after {app.config['SESSION_IDLE_MINUTES']} minutes without activity"
        elif now - row.created_at > absolute:
            reason = f"{app.config['SESSION_ABSOLUTE_HOURS']} hours after you logged in"
        if reason:
            session = self._anonymous(app, request)
            session.id_hash, session.last_seen_at = row.id_hash, row.last_seen_at
            session.stale_cookie = True
            session.expired = (reason, row.user_id)
            return session
        try:
            data = _serializer.loads(row.data) if row.data else {}
        except ValueError:
            data = {}
        return ServerSession(data, sid=sid, row=row)

    @staticmethod
    def _anonymous(app: Flask, request: Request) -> ServerSession:
        """The session of a visitor who is not logged in: from the signed cookie, if any."""
        value = request.cookies.get(anonymous_cookie_name(app))
        data = {}
        if value and len(value) <= 4096:
            try:
                data = _anonymous_signer(app).loads(
                    value, max_age=app.config["ANONYMOUS_SESSION_MINUTES"] * 60
                )
            except (BadSignature, ValueError):
                data = {}
        data = data if isinstance(data, dict) else {}
        # Never a login from this cookie, whatever it holds.
        for key in (_USER_KEY, "_fresh", "_id"):
            data.pop(key, None)
        session = ServerSession(data)
        session.anonymous_cookie = value is not None
        return session

    def _save_anonymous(self, app: Flask, session: ServerSession, response: Response) -> None:
        """No row: the data, if any, in the signed cookie; the server cookie forgotten."""
        if session.stale_cookie or session.ended:
            response.delete_cookie(self.get_cookie_name(app), path=self.get_cookie_path(app))
        name = anonymous_cookie_name(app)
        if session and not session.ended:
            if session.modified or not session.anonymous_cookie:
                response.set_cookie(
                    name,
                    _anonymous_signer(app).dumps(dict(session)),
                    httponly=True,
                    secure=self.get_cookie_secure(app),
                    samesite=self.get_cookie_samesite(app),
                    path=self.get_cookie_path(app),
                    domain=self.get_cookie_domain(app),
                )
        elif session.anonymous_cookie:
            response.delete_cookie(name, path=self.get_cookie_path(app))

    def save_session(self, app: Flask, session, response: Response) -> None:
        # Core statements, not the ORM object: the row may have been deleted meanwhile
        # (a logout or a deactivation elsewhere), and an UPDATE of nothing is no error.
        if not isinstance(session, ServerSession):
            return
        name = self.get_cookie_name(app)
        now = utcnow()
        wrote = False
        if session.expired and session.id_hash:
            if session.expired[1] is not None:
                record(
                    "session_expired",
                    user=_user(session.expired[1]),
                    detail=f"Logged off {session.expired[0]}.",
                )
            self._delete(session)
            wrote = True
        if session.ended or _USER_KEY not in session:
            # Not (or no longer) logged in: no row; a logout deletes the one it had.
            if session.id_hash:
                self._delete(session)
                wrote = True
                session.stale_cookie = True
            self._save_anonymous(app, session, response)
            self._commit(wrote)
            return
        new_sid = None
        if session.id_hash is None or session.regenerate_requested:
            if session.id_hash:
                self._delete(session)
            self._prune(app, now)
            new_sid = secrets.token_urlsafe(32)

            db.session.execute(
                insert(WebSession).values(
                    id_hash=session_hash(new_sid),
                    created_at=now,
                    last_seen_at=now,
                    data="",
                    address=(request.remote_addr or "")[:64],
                    user_agent=(request.user_agent.string or "")[:200],
                )
            )
            session.sid, session.id_hash = new_sid, session_hash(new_sid)
            session.modified = True
            if session.anonymous_cookie:
                response.delete_cookie(anonymous_cookie_name(app), path=self.get_cookie_path(app))
        touch = timedelta(seconds=app.config["SESSION_TOUCH_SECONDS"])
        values = None
        if session.modified:
            user_id = session.get("_user_id")
            values = {
                "data": _serializer.dumps(dict(session)),
                "user_id": int(user_id)
                if user_id and str(user_id).isascii() and str(user_id).isdigit()
                else None,
                "last_seen_at": now,
            }
        elif now - session.last_seen_at >= touch:
            values = {"last_seen_at": now}
        if values:
            db.session.execute(
                update(WebSession)
                .where(WebSession.id_hash == session.id_hash)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            wrote = True
        self._commit(wrote or new_sid is not None)
        if new_sid:
            response.set_cookie(
                name,
                new_sid,
                httponly=True,
                secure=self.get_cookie_secure(app),
                samesite=self.get_cookie_samesite(app),
                path=self.get_cookie_path(app),
                domain=self.get_cookie_domain(app),
            )

    @staticmethod
    def _delete(session: ServerSession) -> None:
        db.session.execute(
            delete(WebSession)
            .where(WebSession.id_hash == session.id_hash)
            .execution_options(synchronize_session=False)
        )
        session.id_hash = None

    @staticmethod
    def _commit(wrote: bool) -> None:
        if wrote:
            db.session.commit()

    def _prune(self, app: Flask, now) -> None:
        """Sessions that can no longer be used, removed when a new one starts."""
        idle, absolute = self._limits(app)
        db.session.execute(
            delete(WebSession)
            .where(
                or_(WebSession.last_seen_at < now - idle, WebSession.created_at < now - absolute)
            )
            .execution_options(synchronize_session=False)
        )


def _user(user_id: int):
    return db.session.get(User, user_id)
