"""The registry lists exactly the services that exist, and the import contracts cover each."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from foto3d.app.registry import SERVICES, ServiceEntry, by_name
from foto3d.libs.service import Service

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("entry", SERVICES, ids=lambda e: e.name)
def test_every_registered_service_imports_and_is_a_service(entry: ServiceEntry) -> None:
    svc = entry.create()
    assert isinstance(svc, Service)
    assert svc.name == entry.name
    assert by_name(entry.name.replace("_", "-")) is entry


def test_every_service_package_is_registered() -> None:
    packages = {p.parent.name for p in (ROOT / "services").glob("*/__init__.py")}
    assert packages == {e.name for e in SERVICES}


def test_every_service_is_in_the_independence_contract() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    independent = next(c for c in config["contracts"] if c["type"] == "independence")
    assert set(independent["modules"]) == {e.module.rsplit(".", 1)[0] for e in SERVICES}


def test_an_unknown_service_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="known: log_collector"):
        by_name("token_gateway_that_is_not_here")
