"""Reproducible installs: requirements/*.lock pin, with hashes, what pyproject.toml asks
for (tools/check_lock.py, run by `make test`; `make lock` regenerates them)."""

from __future__ import annotations

import tomllib

from tools.check_lock import FIX, ROOT, check, disagreements, problems

PYPROJECT = tomllib.loads(
    """
[build-system]
requires = ["setuptools>=68"]
[project]
name = "tracker"
dependencies = ["Flask==3.1.3", "SQLAlchemy>=2.0.36,<2.1", "psycopg[binary]>=3.2,<3.4"]
[project.optional-dependencies]
dev = ["pytest>=8.3"]
"""
)
HASH = "    --hash=sha256:" + "0" * 64


def entry(pin: str, via: str = "tracker (pyproject.toml)", hashed: bool = True) -> str:
    lines = [pin + (" \\" if hashed else "")]
    if hashed:
        lines.append(HASH)
    return "\n".join([*lines, f"    # via {via}"])


def lock(*entries: str) -> str:
    return "#\n# pip-compile\n#\n" + "\n".join(entries) + "\n"


GOOD = [
    entry("flask==3.1.3"),
    entry("sqlalchemy==2.0.58"),
    entry("psycopg==3.3.9"),
    entry("psycopg-binary==3.3.9", via="psycopg"),
    entry("setuptools==84.2.1", via="tracker (pyproject.toml::build-system.requires)"),
]


def test_the_repository_locks_match_pyproject():
    assert check(ROOT) == []
    text = (ROOT / "requirements" / "app.lock").read_text()
    assert "--hash=sha256:" in text and "flask==" in text


def test_a_lock_that_pins_everything_with_hashes_passes():
    assert problems(PYPROJECT, lock(*GOOD), "app.lock") == []
    assert problems(PYPROJECT, lock(*GOOD, entry("pytest==9.2.0")), "dev.lock", ["dev"]) == []


def test_a_requirement_missing_from_the_lock_is_named():
    found = problems(PYPROJECT, lock(*GOOD), "dev.lock", ["dev"])
    assert found == ["dev.lock: pytest>=8.3 is in pyproject.toml but not pinned: " + FIX]


def test_a_pin_the_specifier_does_not_admit_is_named():
    pins = [entry("sqlalchemy==2.1.0") if "sqlalchemy" in e else e for e in GOOD]
    found = problems(PYPROJECT, lock(*pins), "app.lock")
    assert len(found) == 1
    assert "asks for SQLAlchemy<2.1,>=2.0.36, the lock pins SQLAlchemy==2.1.0" in found[0]
    assert "make lock" in found[0]


def test_a_pin_without_a_hash_is_named():
    pins = [entry("flask==3.1.3", hashed=False) if "flask" in e else e for e in GOOD]
    assert problems(PYPROJECT, lock(*pins), "app.lock") == [
        "app.lock: flask==3.1.3 has no --hash: " + FIX
    ]


def test_a_requirement_pyproject_dropped_is_named():
    found = problems(PYPROJECT, lock(*GOOD, entry("redis==5.0.0")), "app.lock")
    assert found == [
        "app.lock: redis==5.0.0 is pinned as a requirement of pyproject.toml, which no "
        "longer asks for it: " + FIX
    ]
    # Pinned only because another package needs it: fine.
    assert problems(PYPROJECT, lock(*GOOD, entry("idna==3.2", via="requests")), "x") == []


def test_dev_lock_runs_the_app_at_app_locks_versions():
    dev = [entry("flask==3.1.2") if "flask" in e else e for e in GOOD]
    assert disagreements(lock(*GOOD), lock(*dev)) == [
        "requirements/dev.lock pins flask==3.1.2, requirements/app.lock flask==3.1.3: " + FIX
    ]
