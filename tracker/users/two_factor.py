"""Two-factor login: TOTP (RFC 6238) and single-use recovery codes. Flush, never commit.

The TOTP secret is stored encrypted (Fernet: AES-128-CBC and HMAC-SHA256) with a key
derived by HKDF from the audit key, which lives outside the database (AUDIT_KEY or
AUDIT_KEY_FILE): a copy of the database alone gives no usable secret. The caller passes
that key in, so this module needs no web framework.

A code is accepted for the current 30-second step or the one either side (clock drift),
and only for a step later than the last accepted one: a code seen over a shoulder, or
replayed, within its step is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime

import pyotp
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import delete, func, select, update

from tracker.extensions import db
from tracker.users.models import RecoveryCode, User
from tracker.users.sessions import end_sessions_of

RECOVERY_CODES = 10
# Lower-case letters and digits without the look-alikes 0/o, 1/l/i.
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
_DRIFT_STEPS = 1


class TwoFactorError(Exception):
    """A refused code or enrolment; the message says what to do."""


def required_for(user: User, required_roles: frozenset[str] | set[str]) -> bool:
    return user.role in required_roles


def parse_roles(setting: str) -> frozenset[str]:
    """TOTP_REQUIRED_ROLES: 'admin' or 'admin,surgeon,coordinator,viewer'."""
    return frozenset(part.strip() for part in (setting or "").split(",") if part.strip())


# -- the secret, encrypted -----------------------------------------------------------------


def _fernet(key: bytes) -> Fernet:
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"tracker totp secret v1"
    ).derive(key)
    return Fernet(base64.urlsafe_b64encode(derived))


def _secret_of(user: User, key: bytes) -> str:
    if not user.totp_secret:
        raise TwoFactorError("No authenticator is set up for this account.")
    try:
        return _fernet(key).decrypt(user.totp_secret.encode()).decode()
    except InvalidToken:
        # The audit key changed since enrolment: the secret cannot be read any more.
        raise TwoFactorError(
            "This account's authenticator cannot be read (the server's key changed); "
            "ask an administrator to reset your second factor."
        ) from None


def store_secret(user: User, secret: str, key: bytes) -> None:
    """Keep ``secret`` (base32), encrypted, as the user's secret not yet confirmed."""
    user.totp_secret = _fernet(key).encrypt(secret.encode()).decode()
    user.totp_enabled_at = None
    user.totp_last_step = None
    db.session.flush()


def start_enrolment(user: User, key: bytes) -> str:
    """A new secret for ``user``, kept (encrypted) until a code confirms it; returns it."""
    secret = pyotp.random_base32()  # 160 bits, as RFC 4226 recommends
    store_secret(user, secret, key)
    return secret


def pending_secret(user: User, key: bytes) -> str | None:
    """The secret of an enrolment started and not yet confirmed."""
    if user.totp_enabled_at is not None or not user.totp_secret:
        return None
    try:
        return _secret_of(user, key)
    except TwoFactorError:
        return None


def provisioning_uri(user: User, secret: str, issuer: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=user.username, issuer_name=issuer)


# -- codes ---------------------------------------------------------------------------------


def _normal(code: str) -> str:
    return "".join((code or "").split()).replace("-", "").lower()


def _accept_totp(user: User, secret: str, code: str, now: datetime) -> bool:
    code = _normal(code)
    if len(code) != 6 or not (code.isascii() and code.isdigit()):
        return False
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    for step in range(current - _DRIFT_STEPS, current + _DRIFT_STEPS + 1):
        if user.totp_last_step is not None and step <= user.totp_last_step:
            continue  # this step's code was used already (or an earlier one)
        if hmac.compare_digest(totp.generate_otp(step), code):
            # Conditional, so two servers given the same code at once accept it once.
            taken = db.session.execute(
                update(User)
                .where(User.id == user.id)
                .where((User.totp_last_step.is_(None)) | (User.totp_last_step < step))
                .values(totp_last_step=step)
                .execution_options(synchronize_session=False)
            ).rowcount
            db.session.refresh(user)
            return bool(taken)
    return False


def confirm_enrolment(user: User, code: str, key: bytes, now: datetime) -> list[str]:
    """The first code from the authenticator proves it holds the secret; returns the
    recovery codes, shown once."""
    if user.totp_enabled_at is not None:
        raise TwoFactorError("Two-factor login is already set up for this account.")
    secret = _secret_of(user, key)
    if not _accept_totp(user, secret, code, now):
        raise TwoFactorError(
            "That code does not match. Type the 6-digit code your authenticator app shows "
            "now for this account (check the phone's clock is set automatically)."
        )
    user.totp_enabled_at = now
    db.session.flush()
    return new_recovery_codes(user, now)


def verify(user: User, code: str, key: bytes, now: datetime) -> str | None:
    """'totp' or 'recovery' when ``code`` is a valid second factor, else None. A recovery
    code is used up here."""
    if user.totp_enabled_at is None:
        return None
    if _accept_totp(user, _secret_of(user, key), code, now):
        return "totp"
    if use_recovery_code(user, code, now):
        return "recovery"
    return None


def check_fresh_code(user: User, code: str, key: bytes, now: datetime) -> None:
    """A TOTP code (not a recovery code) typed just now, for a change to the factor."""
    if user.totp_enabled_at is None or not _accept_totp(user, _secret_of(user, key), code, now):
        raise TwoFactorError(
            "That code does not match: type the 6-digit code your authenticator app shows "
            "now (each code is accepted once)."
        )


# -- recovery codes ------------------------------------------------------------------------


def _hash(code: str) -> str:
    return hashlib.sha256(_normal(code).encode()).hexdigest()


def new_recovery_codes(user: User, now: datetime) -> list[str]:
    """Replace the user's recovery codes with RECOVERY_CODES new ones; returns them."""
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(10))
        codes.append(f"{raw[:5]}-{raw[5:]}")
    db.session.add_all(
        RecoveryCode(user_id=user.id, code_hash=_hash(c), created_at=now) for c in codes
    )
    db.session.flush()
    return codes


def use_recovery_code(user: User, code: str, now: datetime) -> bool:
    if len(_normal(code)) != 10:
        return False
    used = db.session.execute(
        update(RecoveryCode)
        .where(
            RecoveryCode.user_id == user.id,
            RecoveryCode.code_hash == _hash(code),
            RecoveryCode.used_at.is_(None),
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    return bool(used)


def recovery_codes_left(user: User) -> int:
    return db.session.scalar(
        select(func.count(RecoveryCode.id)).where(
            RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None)
        )
    )


def reset(user: User) -> None:
    """An administrator's reset (a lost phone): the factor and recovery codes are gone,
    the user's sessions end, and they enrol again at their next login."""
    user.totp_secret = None
    user.totp_enabled_at = None
    user.totp_last_step = None
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    end_sessions_of(user.id)
    db.session.flush()
