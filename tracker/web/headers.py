"""Security headers on every response.

- Content-Security-Policy: scripts, styles, images and fonts only from this site (no
  inline script anywhere: the one script is static/mdt.js), no plugins, no framing.
- X-Content-Type-Options, Referrer-Policy, and a Permissions-Policy that turns off what
  the tracker never uses.
- Cache-Control: no-store on everything but the static files, so no page with patient
  data stays in a browser's or proxy's cache.
- Strict-Transport-Security when the request came over HTTPS (directly or through a
  proxy named in TRUSTED_PROXIES: tracker/web/proxies.py).
"""

from __future__ import annotations

from flask import Flask, Response, current_app, request

CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
STATIC_ENDPOINTS = frozenset({"static", "bootstrap.static"})


def _headers(response: Response) -> Response:
    h = response.headers
    h["Content-Security-Policy"] = CSP
    h["X-Content-Type-Options"] = "nosniff"
    h["X-Frame-Options"] = "DENY"
    h["Referrer-Policy"] = "no-referrer"
    h["Permissions-Policy"] = "camera=(), microphone=(), geolocation=(), payment=()"
    h["Cross-Origin-Opener-Policy"] = "same-origin"
    if request.endpoint not in STATIC_ENDPOINTS:
        h["Cache-Control"] = "no-store"
        h["Pragma"] = "no-cache"
    if request.is_secure:
        seconds = current_app.config["HSTS_SECONDS"]
        h["Strict-Transport-Security"] = f"max-age={seconds}; includeSubDomains"
    return response


def init_app(app: Flask) -> None:
    app.after_request(_headers)
