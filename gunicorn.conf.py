"""gunicorn's settings for the tracker: `gunicorn --config gunicorn.conf.py 'tracker:create_app()'`.

X-Forwarded-* are believed by the app alone, and only from the addresses in TRUSTED_PROXIES
(tracker/web/proxies.py). gunicorn's own defaults would believe X-Forwarded-Proto (and
-Protocol, -Ssl) from 127.0.0.1, ::1 and any UNIX-socket peer, whatever TRUSTED_PROXIES
says, so here gunicorn believes none: no address, no scheme header, no forwarder header.
"""

forwarded_allow_ips = ""
secure_scheme_headers: dict[str, str] = {}
forwarder_headers = ""
