"""The installed package (a wheel, not the checkout) finds its templates and migrations."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = """
import os
from flask_migrate import upgrade
import tracker
from tracker import create_app, project_folder
assert "/share/tracker/" in project_folder("templates"), project_folder("templates")
assert "/share/tracker/" in project_folder("migrations"), project_folder("migrations")
assert not tracker.__file__.startswith(os.environ["CHECKOUT"]), tracker.__file__
app = create_app("production")
with app.app_context():
    upgrade()
page = app.test_client().get("/login")
assert page.status_code == 200 and "Log in" in page.text, page.status_code
print("installed app served", page.status_code)
"""


def test_wheel_serves_pages_outside_the_checkout(tmp_path):
    wheels, prefix = tmp_path / "wheels", tmp_path / "prefix"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(wheels),
            str(ROOT),
        ],
        check=True,
        cwd=tmp_path,
        capture_output=True,
    )
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(prefix)], check=True)
    wheel = next(wheels.glob("tracker-*.whl"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-compile",
            "--prefix",
            str(prefix),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    site = Path(sysconfig.get_path("purelib", vars={"base": str(prefix)}))
    dependencies = sysconfig.get_path("purelib")  # this environment's Flask, SQLAlchemy...
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), dependencies]),
        "CHECKOUT": str(ROOT),
        "SECRET_KEY": "installed-test-secret-0123456789abcdef",
        "AUDIT_KEY": "installed-test-audit-key-0123456789abcdef",
        "ALLOW_PLAIN_HTTP": "1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'installed.sqlite'}",
    }
    result = subprocess.run(
        [str(prefix / "bin" / "python"), "-c", SCRIPT],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "installed app served 200" in result.stdout


def test_every_template_folder_is_in_the_wheel():
    """A new feature's template folder must be listed in pyproject.toml's data-files, or
    the installed app answers its pages with a 500 (a missing template)."""
    listed = (ROOT / "pyproject.toml").read_text()
    missing = [
        folder.name
        for folder in sorted((ROOT / "templates").iterdir())
        if folder.is_dir() and f'"share/tracker/templates/{folder.name}"' not in listed
    ]
    assert missing == []
