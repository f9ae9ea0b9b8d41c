"""The lock decides what ``make`` installs, and it still satisfies ``pyproject.toml``.

``pyproject.toml`` keeps compatible ranges for people who install the wheel into their own
environment; ``requirements/*.txt`` pins exact versions with hashes (``scripts/lock.sh``). A
range changed without re-locking (``make lock``) fails here, before a fresh clone installs
something nobody tested.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.markers import Marker, default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "requirements"
PIN = re.compile(r"^(?P<name>[A-Za-z0-9._-]+)==(?P<version>[^\s;\\]+)\s*(?:;\s*(?P<marker>[^\\]+?))?\s*\\?$")
# The universal locks must hold for every Python the project supports, on Linux and macOS.
ENVIRONMENTS = [
    {"python_version": v, "python_full_version": f"{v}.0", "sys_platform": p, "platform_system": s}
    for v in ("3.11", "3.12", "3.13")
    for p, s in (("linux", "Linux"), ("darwin", "Darwin"))
]


@dataclass
class Pin:
    name: str
    version: Version
    marker: Marker | None
    hashes: list[str] = field(default_factory=list)

    def applies(self, env: dict[str, str]) -> bool:
        return self.marker is None or self.marker.evaluate(env)


def read_lock(path: Path) -> list[Pin]:
    pins: list[Pin] = []
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("--hash="):
            assert pins, f"{path.name}: a hash before any pin"
            pins[-1].hashes.append(stripped.removeprefix("--hash=").rstrip(" \\"))
            continue
        match = PIN.match(stripped)
        assert match, f"{path.name}: not an exact pin: {line!r}"
        marker = match["marker"]
        pins.append(
            Pin(
                canonicalize_name(match["name"]),
                Version(match["version"]),
                Marker(marker) if marker else None,
            )
        )
    return pins


def project() -> dict[str, list[str]]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {"": meta["dependencies"], **meta["optional-dependencies"]}


def unmet(requirements: list[str], pins: list[Pin], environments: list[dict[str, str]]) -> list[str]:
    """Each requirement that the pins leave unpinned, or pin outside its range, in some environment."""
    problems: list[str] = []
    for env in environments:
        full: dict[str, str] = {**{k: str(v) for k, v in default_environment().items()}, **env, "extra": ""}
        for text in requirements:
            req = Requirement(text)
            if req.marker is not None and not req.marker.evaluate(full):
                continue
            name = canonicalize_name(req.name)
            chosen = [p for p in pins if p.name == name and p.applies(full)]
            where = f"Python {env['python_version']} on {env['sys_platform']}"
            if len(chosen) != 1:
                problems.append(f"{req}: {len(chosen)} pins for {where}")
            elif not req.specifier.contains(chosen[0].version, prereleases=True):
                problems.append(f"{req}: locked {chosen[0].version} for {where}")
    return problems


@pytest.mark.parametrize(
    ("lock", "sets"), [("runtime.txt", [""]), ("dev.txt", ["", "dev"])], ids=["runtime", "dev"]
)
def test_universal_locks_satisfy_pyproject(lock: str, sets: list[str]) -> None:
    pins = read_lock(REQUIREMENTS / lock)
    wanted = [r for s in sets for r in project()[s]]
    assert not unmet(wanted, pins, ENVIRONMENTS), "run `make lock`"


def test_quality_lock_satisfies_pyproject_on_its_platform() -> None:
    pins = read_lock(REQUIREMENTS / "quality.txt")
    linux_311 = [e for e in ENVIRONMENTS if e["python_version"] == "3.11" and e["sys_platform"] == "linux"]
    assert not unmet(project()["quality"], pins, linux_311), "run `make lock`"


def test_every_pin_has_a_hash_and_the_locks_agree() -> None:
    versions: dict[tuple[str, str | None], Version] = {}
    for path in sorted(REQUIREMENTS.glob("*.txt")):
        for pin in read_lock(path):
            assert pin.hashes, f"{path.name}: {pin.name} has no hash"
            key = (pin.name, str(pin.marker) if pin.marker else None)
            assert versions.setdefault(key, pin.version) == pin.version, (
                f"{pin.name} is locked at two versions ({versions[key]}, {pin.version}): run `make lock`"
            )


def test_the_check_finds_a_range_the_lock_does_not_meet() -> None:
    pins = read_lock(REQUIREMENTS / "runtime.txt")
    assert unmet(["msgspec>=999"], pins, ENVIRONMENTS[:1]) == [
        "msgspec>=999: locked "
        + str(next(p.version for p in pins if p.name == "msgspec"))
        + " for Python 3.11 on linux"
    ]
    assert unmet(["not-in-the-lock"], pins, ENVIRONMENTS[:1]) == [
        "not-in-the-lock: 0 pins for Python 3.11 on linux"
    ]
