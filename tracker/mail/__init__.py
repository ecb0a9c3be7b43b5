"""Email, through Flask-Mailman: SMTP with MAIL_SERVER, else one .eml file per message.

Other features call :func:`send_mail` only. Mail leaves the hospital's systems: callers
put no clinical detail in it beyond a patient's MRN and initials, and a link to the page
(see :func:`link`), which asks for a login.
"""

from __future__ import annotations

from flask import Flask, current_app, url_for
from flask_mailman import EmailMessage, Mail

mail = Mail()

# The file backend of development and test machines (MAIL_SERVER unset).
EML_BACKEND = "tracker.mail.eml.EmailBackend"


class MailError(RuntimeError):
    """A message that could not be handed to the mail server; nothing was sent."""


def init_app(app: Flask) -> None:
    """SMTP when MAIL_SERVER is set; otherwise .eml files in MAIL_FILE_PATH. A backend
    named in MAIL_BACKEND (the tests' in-memory outbox) wins over both."""
    config = app.config
    config["MAIL_DEFAULT_SENDER"] = config.get("MAIL_FROM")
    if not config.get("MAIL_BACKEND"):
        config["MAIL_BACKEND"] = "smtp" if config.get("MAIL_SERVER") else EML_BACKEND
    mail.init_app(app)


def send_mail(to: list[str], subject: str, body: str) -> None:
    """Send one plain-text message to ``to`` (one message, every address a recipient),
    from MAIL_FROM. Raises MailError when the server refuses it or cannot be reached.

    The caller keeps clinical detail out of ``subject`` and ``body``: MRN and initials
    at most, and a link to the page (:func:`link`)."""
    if not to:
        raise ValueError("send_mail needs at least one address")
    message = EmailMessage(
        subject=subject,
        body=body,
        from_email=current_app.config["MAIL_DEFAULT_SENDER"],
        to=list(to),
    )
    try:
        sent = message.send(fail_silently=False)
    except OSError as exc:  # smtplib's errors, refused connections, timeouts
        raise MailError(f"the mail server did not take the message: {exc}") from exc
    if sent != 1:
        raise MailError("the mail server did not take the message")


def link(endpoint: str, **values) -> str:
    """The absolute address of a page, from BASE_URL (the tracker's address as users reach
    it); a path alone when BASE_URL is unset."""
    base = (current_app.config.get("BASE_URL") or "").rstrip("/")
    with current_app.test_request_context(base_url=base or "http://localhost"):
        path = url_for(endpoint, **values)
    return f"{base}{path}"
