"""What the engine needs from the application that runs it, without knowing which.

The engine imports no web framework. The application that hosts it (``create_app``,
or a script) installs two providers once: the database session of the unit of work
in progress, and the configuration in force. The web app's providers read Flask's
request-scoped session and the current app's config; outside an app the defaults
below hold.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

_session_provider: Callable[[], Any] | None = None
_config_provider: Callable[[], Mapping[str, Any] | None] | None = None


def install(session: Callable[[], Any], config: Callable[[], Mapping[str, Any] | None]) -> None:
    """Called by the host once: ``session()`` gives the session of the current unit of
    work; ``config()`` the configuration in force, or None where there is none."""
    global _session_provider, _config_provider
    _session_provider, _config_provider = session, config


def db_session():
    """The SQLAlchemy session of the unit of work in progress (never committed here)."""
    if _session_provider is None:
        raise RuntimeError("no database session: the host has not called runtime.install()")
    return _session_provider()


def setting(name: str, default: Any) -> Any:
    """A configuration value, or ``default`` outside a configured host."""
    config = _config_provider() if _config_provider is not None else None
    if config is None:
        return default
    return config.get(name, default)
