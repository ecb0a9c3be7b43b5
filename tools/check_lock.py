"""Do requirements/*.lock still match pyproject.toml? Offline; run by `make test`.

app.lock must pin, with hashes, every dependency of [project] and the build backend of
[build-system]; dev.lock those and the dev extras. Each at a version its specifier
admits; nothing pinned as pyproject's own requirement that pyproject no longer asks
for; dev.lock at app.lock's versions (what deployments run is what the tests ran).
A mismatch means pyproject.toml changed without `make lock`.

    python tools/check_lock.py          # exit 1, naming each mismatch, or 0
"""

from __future__ import annotations

import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parent.parent
LOCKS = {
    # lock file: (the extras it covers, whose build requirements it pins)
    "requirements/app.lock": (),
    "requirements/dev.lock": ("dev",),
}
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")
OWN = "tracker (pyproject.toml"  # pip-compile's "# via" for pyproject's own requirements
FIX = "run `make lock` (and commit requirements/)"


@dataclass
class Pin:
    version: str
    hashes: int = 0
    own: bool = False  # pinned because pyproject.toml asks for it
    sources: list[str] = field(default_factory=list)


def read_lock(text: str) -> dict[str, Pin]:
    """The pins of a pip-compile lock: name -> version, its hashes, why it is there."""
    pins: dict[str, Pin] = {}
    current: Pin | None = None
    for line in text.splitlines():
        stripped = line.strip()
        match = PIN.match(line)
        if match:
            current = pins[canonicalize_name(match[1])] = Pin(match[2])
        elif current is not None and stripped.startswith("--hash="):
            current.hashes += 1
        elif current is not None and line.startswith("    #") and OWN in stripped:
            current.own = True
        elif not line.startswith(" "):
            current = None
    return pins


def requirements(pyproject: dict, extras: tuple[str, ...]) -> list[Requirement]:
    project = pyproject["project"]
    texts = list(project.get("dependencies", []))
    for extra in extras:
        texts += project.get("optional-dependencies", {}).get(extra, [])
    texts += pyproject.get("build-system", {}).get("requires", [])
    out = []
    for text in texts:
        requirement = Requirement(text)
        env = {"extra": extras[0] if extras else ""}
        if requirement.marker is None or requirement.marker.evaluate(env):
            out.append(requirement)
    return out


def problems(pyproject: dict, lock_text: str, lock_name: str, extras=()) -> list[str]:
    pins = read_lock(lock_text)
    found = []
    wanted = set()
    for requirement in requirements(pyproject, tuple(extras)):
        name = canonicalize_name(requirement.name)
        wanted.add(name)
        pin = pins.get(name)
        if pin is None:
            found.append(f"{lock_name}: {requirement} is in pyproject.toml but not pinned: {FIX}")
            continue
        try:
            admitted = requirement.specifier.contains(Version(pin.version), prereleases=True)
        except InvalidVersion:
            admitted = False
        if not admitted:
            found.append(
                f"{lock_name}: pyproject.toml asks for {requirement}, the lock pins "
                f"{requirement.name}=={pin.version}: {FIX}"
            )
    for name, pin in sorted(pins.items()):
        if pin.hashes == 0:
            found.append(f"{lock_name}: {name}=={pin.version} has no --hash: {FIX}")
        if pin.own and name not in wanted:
            found.append(
                f"{lock_name}: {name}=={pin.version} is pinned as a requirement of "
                f"pyproject.toml, which no longer asks for it: {FIX}"
            )
    return found


def disagreements(app_text: str, dev_text: str) -> list[str]:
    """dev.lock must run the app's packages at app.lock's versions."""
    app, dev = read_lock(app_text), read_lock(dev_text)
    return [
        f"requirements/dev.lock pins {name}=={dev[name].version}, requirements/app.lock "
        f"{name}=={pin.version}: {FIX}"
        for name, pin in sorted(app.items())
        if name in dev and dev[name].version != pin.version
    ] + [
        f"requirements/dev.lock lacks {name}, which requirements/app.lock pins: {FIX}"
        for name in sorted(set(app) - set(dev))
    ]


def check(root: Path = ROOT) -> list[str]:
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    found = []
    texts = {}
    for lock_name, extras in LOCKS.items():
        path = root / lock_name
        if not path.exists():
            found.append(f"{lock_name} is missing: {FIX}")
            continue
        texts[lock_name] = path.read_text()
        found += problems(pyproject, texts[lock_name], lock_name, extras)
    if len(texts) == len(LOCKS):
        found += disagreements(*texts.values())
    return found


def main() -> int:
    found = check()
    for problem in found:
        print(problem, file=sys.stderr)
    if found:
        return 1
    print("requirements/app.lock and requirements/dev.lock match pyproject.toml")
    return 0


if __name__ == "__main__":
    sys.exit(main())
