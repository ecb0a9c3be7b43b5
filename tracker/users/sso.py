"""Single sign-on's rules: who a set of verified OpenID Connect claims is, and with which
role. No web framework here: the protocol (state, PKCE, the ID token's signature, issuer,
audience, expiry and nonce) is checked by ``tracker.accounts.sso`` before these claims
are believed. Services flush, never commit.

- An account is found by its stored subject (``sso_subject``, the provider's ``sub``).
- An account not yet linked is found once, at its first sign-in, by the username claim
  (``OIDC_USERNAME_CLAIM``; with ``OIDC_USERNAME_DOMAIN``, ``alice@DOMAIN`` is ``alice``),
  and the subject is stored: from then on the username claim no longer counts.
- Nobody else gets in, unless ``OIDC_CREATE_USERS``: then an account is created (SSO-only,
  no password) with the username from the claim.
- The role comes from the role claim at every sign-in, through ``OIDC_ROLE_MAP``; claims
  that map to no role are refused, and a changed mapping changes the account's role.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from tracker.extensions import db
from tracker.users.models import User, user_named
from tracker.users.passwords import NO_PASSWORD
from tracker.users.roles import ROLES
from tracker.users.services import USERNAME_RE, UserError, change_role


class SsoRefused(Exception):
    """A sign-in refused after the provider vouched for the user: ``message`` is for the
    person, ``reason`` for the audit log."""

    def __init__(self, message: str, reason: str, user: User | None = None, username: str = ""):
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.user = user
        self.username = username


@dataclass(frozen=True)
class SsoSettings:
    role_claim: str
    role_map: tuple[tuple[str, str], ...]
    username_claim: str
    username_domain: str
    create_users: bool
    provider_name: str

    @classmethod
    def from_config(cls, config) -> SsoSettings:
        return cls(
            role_claim=config["OIDC_ROLE_CLAIM"],
            role_map=parse_role_map(config["OIDC_ROLE_MAP"]),
            username_claim=config["OIDC_USERNAME_CLAIM"],
            username_domain=config["OIDC_USERNAME_DOMAIN"].strip().lower().lstrip("@"),
            create_users=bool(config["OIDC_CREATE_USERS"]),
            provider_name=config["OIDC_PROVIDER_NAME"],
        )


def parse_role_map(text: str) -> tuple[tuple[str, str], ...]:
    """``"spine-admins=admin,spine-surgeons=surgeon"`` as ((value, role), ...), in order.
    A malformed entry or an unknown role is refused, naming it."""
    pairs = []
    for item in (part.strip() for part in (text or "").split(",")):
        if not item:
            continue
        value, sep, role = item.rpartition("=")
        value, role = value.strip(), role.strip()
        if not sep or not value:
            raise ValueError(
                f"OIDC_ROLE_MAP entry {item!r}: use claim-value=role, e.g. spine-surgeons=surgeon"
            )
        if role not in ROLES:
            raise ValueError(
                f"OIDC_ROLE_MAP entry {item!r}: the role must be one of {', '.join(ROLES)}"
            )
        pairs.append((value, role))
    return tuple(pairs)


def password_login_off(user: User, oidc_only: bool) -> bool:
    """An account that signs in with single sign-on only: its own flag, or (OIDC_ONLY)
    every account linked to the identity provider."""
    return user.sso_only or (oidc_only and user.sso_subject is not None)


def check_settings(config) -> None:
    """Refuse to start with single sign-on half configured (each problem named)."""
    if not config.get("OIDC_ISSUER"):
        return
    missing = [name for name in ("OIDC_CLIENT_ID", "OIDC_CLIENT_SECRET") if not config.get(name)]
    if missing:
        raise RuntimeError(
            f"OIDC_ISSUER is set: set {' and '.join(missing)} too (docs/configuration.md)"
        )
    if not parse_role_map(config.get("OIDC_ROLE_MAP", "")):
        raise RuntimeError(
            "OIDC_ISSUER is set: set OIDC_ROLE_MAP, e.g. "
            '"spine-admins=admin,spine-surgeons=surgeon" (docs/configuration.md)'
        )


def claim_values(claims: dict, name: str) -> list[str]:
    """A claim as a list of strings: a list as it is, a string as its one value."""
    value = claims.get(name)
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [v for v in value if isinstance(v, str)]
    return []


def role_from(claims: dict, settings: SsoSettings) -> str | None:
    """The role of the first OIDC_ROLE_MAP entry whose value the role claim carries."""
    values = set(claim_values(claims, settings.role_claim))
    for value, role in settings.role_map:
        if value in values:
            return role
    return None


def username_from(claims: dict, settings: SsoSettings) -> str | None:
    """The tracker username the username claim names, or None."""
    value = claims.get(settings.username_claim)
    if not isinstance(value, str) or not value.strip():
        return None
    if settings.username_claim == "email" and claims.get("email_verified") is not True:
        return None  # an address the provider has not verified names nobody
    value = value.strip().lower()
    if settings.username_domain:
        local, at, domain = value.rpartition("@")
        if not at or domain != settings.username_domain:
            return None
        value = local
    return value if USERNAME_RE.match(value) else None


@dataclass
class SsoSignIn:
    user: User
    created: bool = False
    linked: bool = False
    role_was: str | None = None


def find_account(claims: dict, settings: SsoSettings) -> SsoSignIn:
    """The account these verified claims belong to: by subject, or at the first sign-in by
    username (linking it), or a new one when just-in-time creation is on (not yet added).
    Flushes nothing; refuses with SsoRefused."""
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject or len(subject) > 255:
        raise SsoRefused(
            "The identity provider sent no usable subject; ask the service desk.",
            "no usable subject",
        )
    user = db.session.scalar(select(User).where(User.sso_subject == subject))
    if user is not None:
        return SsoSignIn(user)
    username = username_from(claims, settings)
    claimed = claims.get(settings.username_claim)
    shown = str(claimed)[:64] if claimed else ""
    if username is None:
        raise SsoRefused(
            f"Your identity provider account ({shown or 'no ' + settings.username_claim}) "
            "names no tracker username; ask an administrator.",
            f"unknown subject {subject}; {settings.username_claim} {shown!r} names no username",
            username=shown,
        )
    user = user_named(username)
    if user is not None:
        if user.sso_subject is not None:
            raise SsoRefused(
                f"The tracker account '{username}' is linked to another identity provider "
                "account; ask an administrator.",
                f"{username} is linked to another subject (this one: {subject})",
                user=user,
            )
        user.sso_subject = subject  # written by admit()
        return SsoSignIn(user, linked=True)
    if not settings.create_users:
        raise SsoRefused(
            f"There is no tracker account for '{username}'. An administrator must create it "
            "before you can sign in.",
            f"no account {username!r} (just-in-time creation is off)",
            username=username,
        )
    return SsoSignIn(User(username=username, sso_subject=subject), created=True)


def admit(found: SsoSignIn, claims: dict, settings: SsoSettings) -> SsoSignIn:
    """Give the account found the role its claims map to (creating or linking it); refuses
    claims that map to no role and a deactivated account. Flushes."""
    user = found.user
    role = role_from(claims, settings)
    if role is None:
        values = ", ".join(claim_values(claims, settings.role_claim))[:200] or "none"
        raise SsoRefused(
            f"Your {settings.provider_name} account has no group that gives a role in the "
            "tracker; ask an administrator or the service desk for access.",
            f"no role: {settings.role_claim} = {values}",
            user=None if found.created else user,
            username=user.username,
        )
    if found.created:
        name = claims.get("name")
        user.full_name = name.strip()[:120] if isinstance(name, str) else ""
        user.role = role
        user.password_hash = NO_PASSWORD
        user.sso_only = True
        db.session.add(user)
        db.session.flush()
        return found
    if not user.active:
        raise SsoRefused(
            "This account is deactivated; ask an administrator.",
            "account deactivated",
            user=user,
        )
    if role != user.role:
        found.role_was = user.role
        try:
            change_role(user, role, user)
        except UserError as exc:
            raise SsoRefused(str(exc), f"role {user.role} -> {role}: {exc}", user=user) from exc
    db.session.flush()
    return found
