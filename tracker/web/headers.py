"""Security headers on every response.

- Content-Security-Policy: scripts, styles, images and fonts only from this site (no
  inline script anywhere: the one script is static/mdt.js), no plugins, no framing.
- X-Content-Type-Options, Referrer-Policy, and a Permissions-Policy that turns off what
  the tracker never uses.
- Cache-Control: no-store on everything but the static files, so no page with patient
  data stays in a browser's or proxy's cache.
- Strict-Transport-Security when the request came over HTTPS (directly or through a
  proxy named in TRUSTED_PROXIES).
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
    proxies = app.config.get("TRUSTED_PROXIES", 0)
    if proxies:
        # Behind a reverse proxy (nginx, a load balancer): believe its X-Forwarded-For and
        # -Proto for as many hops as configured, so the audit log records the client's
        # address and HTTPS is recognised. Never set this without such a proxy.
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)
