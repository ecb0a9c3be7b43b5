"""Safe defaults: unset TRACKER_ENV means production, and production refuses to start
without long secrets, the audit key and secure cookies; TRUSTED_PROXIES is a list of
addresses; gunicorn believes no X-Forwarded-* itself.

Security issue, fault 7 (unsafe defaults). Each refusal must name the setting and say
how to make a good value.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from config import DevelopmentConfig, ProductionConfig
from tracker import create_app

ROOT = Path(__file__).resolve().parent.parent
SECRET = "s" * 32
AUDIT_KEY = "a" * 32
RECIPE = "secrets.token_hex(32)"


@pytest.fixture
def environment(monkeypatch, tmp_path):
    """config.py reads the environment at import: set the classes as a fresh environment
    would, with nothing of the secrets set and every file under tmp_path."""
    monkeypatch.delenv("TRACKER_ENV", raising=False)
    database = f"sqlite:///{tmp_path / 'tracker.sqlite'}"
    for config in (ProductionConfig, DevelopmentConfig):
        monkeypatch.setattr(config, "SQLALCHEMY_DATABASE_URI", database, raising=False)
        monkeypatch.setattr(config, "SESSION_COOKIE_SECURE", False, raising=False)
        monkeypatch.setattr(config, "ALLOW_PLAIN_HTTP", False, raising=False)
        monkeypatch.setattr(config, "TRUSTED_PROXIES", "", raising=False)
        monkeypatch.setattr(config, "AUDIT_KEY", "", raising=False)
    monkeypatch.setattr(ProductionConfig, "SECRET_KEY", None, raising=False)
    monkeypatch.setattr(ProductionConfig, "AUDIT_KEY_FILE", "", raising=False)
    monkeypatch.setattr(
        DevelopmentConfig, "AUDIT_KEY_FILE", str(tmp_path / "audit.key"), raising=False
    )
    return monkeypatch


def production(**settings):
    good = {"SECRET_KEY": SECRET, "AUDIT_KEY": AUDIT_KEY, "SESSION_COOKIE_SECURE": True}
    return type("Production", (ProductionConfig,), {**good, **settings})


def test_unset_tracker_env_is_production_which_refuses_to_start_without_secrets(environment):
    with pytest.raises(RuntimeError) as refused:
        create_app()
    message = str(refused.value)
    # Every setting to put right at once, each with how to make a good value.
    assert "production" in message
    assert "SECRET_KEY is not set" in message and RECIPE in message
    assert "AUDIT_KEY" in message and "SESSION_COOKIE_SECURE" in message
    # The development configuration, with its known key, runs when asked for.
    environment.setenv("TRACKER_ENV", "development")
    assert create_app().config["SECRET_KEY"] == DevelopmentConfig.SECRET_KEY


def test_an_unknown_tracker_env_is_refused_with_the_names_that_work(environment):
    environment.setenv("TRACKER_ENV", "prod")
    with pytest.raises(RuntimeError, match=r"TRACKER_ENV='prod'.*development, production"):
        create_app()


def test_production_refuses_a_short_secret_key(environment):
    with pytest.raises(RuntimeError, match="SECRET_KEY is shorter than 32 characters") as refused:
        create_app(production(SECRET_KEY="x"))
    assert RECIPE in str(refused.value)
    with pytest.raises(RuntimeError, match="SECRET_KEY is shorter"):
        create_app(production(SECRET_KEY="s" * 31))
    assert create_app(production(SECRET_KEY="s" * 32)).config["SECRET_KEY"] == "s" * 32


def test_production_refuses_to_start_without_the_audit_key(environment, tmp_path):
    # TRACKER_ENV unset: before, the development configuration made itself a key.
    environment.setattr(ProductionConfig, "SECRET_KEY", SECRET)
    environment.setattr(ProductionConfig, "SESSION_COOKIE_SECURE", True)
    with pytest.raises(RuntimeError, match="audit key is missing") as refused:
        create_app()
    assert "AUDIT_KEY_FILE" in str(refused.value) and RECIPE in str(refused.value)
    missing = tmp_path / "no-such.key"
    with pytest.raises(
        RuntimeError, match=re.escape(f"AUDIT_KEY_FILE names {missing}, which does not")
    ):
        create_app(production(AUDIT_KEY="", AUDIT_KEY_FILE=str(missing)))
    assert not missing.exists()  # production never makes one up
    with pytest.raises(RuntimeError, match="shorter than 32 characters"):
        create_app(production(AUDIT_KEY="k" * 31))


def test_production_refuses_insecure_cookies_unless_told_it_is_plain_http(environment, caplog):
    with pytest.raises(RuntimeError, match="SESSION_COOKIE_SECURE is not set") as refused:
        create_app(production(SESSION_COOKIE_SECURE=False))
    assert "ALLOW_PLAIN_HTTP=1" in str(refused.value)
    with caplog.at_level(logging.WARNING):
        app = create_app(production(SESSION_COOKIE_SECURE=False, ALLOW_PLAIN_HTTP=True))
    assert app.config["SESSION_COOKIE_NAME"] == "tracker_session"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("ALLOW_PLAIN_HTTP is set" in r.getMessage() for r in warnings)


def test_secure_cookies_take_the_host_prefix(environment):
    app = create_app(production())
    assert app.config["SESSION_COOKIE_NAME"] == "__Host-tracker_session"
    assert app.config["SESSION_COOKIE_PATH"] == "/" and app.config["SESSION_COOKIE_DOMAIN"] is None


@pytest.mark.parametrize("value", ["1", "2", " 0 "])
def test_trusted_proxies_refuses_the_old_count(environment, value):
    with pytest.raises(RuntimeError, match=r"count of proxies, the old form.*10\.0\.0\.5"):
        create_app(production(TRUSTED_PROXIES=value))


def test_trusted_proxies_names_a_bad_address(environment):
    with pytest.raises(RuntimeError, match="'nginx' is not an IP address or CIDR"):
        create_app(production(TRUSTED_PROXIES="10.0.0.5, nginx"))
    create_app(production(TRUSTED_PROXIES="10.0.0.5, 10.0.1.0/24,::1"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_gunicorn_with_the_repository_config_believes_no_forwarded_proto(tmp_path):
    """gunicorn's default believes X-Forwarded-Proto from 127.0.0.1 whatever
    TRUSTED_PROXIES says; with gunicorn.conf.py only the app decides, and with no
    trusted proxy a local client cannot make a plain HTTP request count as HTTPS."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("TRUSTED_PROXIES", "FLASK_APP")}
    env.update(
        TRACKER_ENV="production",
        SECRET_KEY=SECRET,
        AUDIT_KEY=AUDIT_KEY,
        ALLOW_PLAIN_HTTP="1",
        DATABASE_URL=f"sqlite:///{tmp_path / 'served.sqlite'}",
    )
    log = (tmp_path / "gunicorn.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--config",
            str(ROOT / "gunicorn.conf.py"),
            "--workers",
            "1",
            "--bind",
            f"127.0.0.1:{port}",
            "tracker:create_app()",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=log,
    )
    try:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/healthz", headers={"X-Forwarded-Proto": "https"}
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(request, timeout=2) as response:
                    headers = response.headers
                break
            except OSError:
                assert server.poll() is None, (tmp_path / "gunicorn.log").read_text()[-2000:]
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.2)
        assert "Strict-Transport-Security" not in headers
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
