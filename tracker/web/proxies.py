"""X-Forwarded-* believed only from the reverse proxies named in TRUSTED_PROXIES.

Anyone can send X-Forwarded-For; believing it from anyone would let a client choose the
address the audit log records (and X-Forwarded-Proto whether it counts as HTTPS). So the
headers are read only when the direct peer (REMOTE_ADDR) is one of TRUSTED_PROXIES'
addresses or networks, and dropped otherwise. The client is the right-most address of
X-Forwarded-For that is not itself a trusted proxy (each proxy appends its peer), so a
client's own X-Forwarded-For entries to the left of it are never believed. The scheme
and host are the right-most X-Forwarded-Proto and -Host: the nearest proxy's.

gunicorn believes none of these itself (gunicorn.conf.py sets forwarded_allow_ips to
''), so this is the one place that decides.
"""

from __future__ import annotations

import ipaddress

from flask import Flask

from config import trusted_proxy_networks

FORWARDED = ("HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST")


def _address(text: str):
    """An IP address, or None; an IPv4 address mapped into IPv6 (a server bound to [::])
    as the IPv4 address it is."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    return getattr(address, "ipv4_mapped", None) or address


def _last(value: str) -> str:
    return value.split(",")[-1].strip()


class TrustedProxies:
    def __init__(self, wsgi_app, networks):
        self.wsgi_app = wsgi_app
        self.networks = tuple(networks)

    def trusted(self, address) -> bool:
        return address is not None and any(address in network for network in self.networks)

    def __call__(self, environ, start_response):
        peer = environ.get("REMOTE_ADDR") or ""
        if not self.trusted(_address(peer)):
            for name in FORWARDED:
                environ.pop(name, None)
            return self.wsgi_app(environ, start_response)
        environ["tracker.proxy_peer"] = peer
        client = peer
        for entry in reversed(environ.get("HTTP_X_FORWARDED_FOR", "").split(",")):
            address = _address(entry)
            if address is None:
                break  # garbage from a hop we cannot name: stop at the last good one
            client = str(address)
            if not self.trusted(address):
                break
        environ["REMOTE_ADDR"] = client
        proto = _last(environ.get("HTTP_X_FORWARDED_PROTO", "")).lower()
        if proto in ("http", "https"):
            environ["wsgi.url_scheme"] = proto
        host = _last(environ.get("HTTP_X_FORWARDED_HOST", ""))
        if host:
            environ["HTTP_HOST"] = host
        return self.wsgi_app(environ, start_response)


def init_app(app: Flask) -> None:
    # Always in place, so that with no proxy named the headers are dropped, not just unread.
    app.wsgi_app = TrustedProxies(
        app.wsgi_app, trusted_proxy_networks(app.config.get("TRUSTED_PROXIES"))
    )
