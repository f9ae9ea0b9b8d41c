"""Generated docs stay in step with the code."""

from __future__ import annotations

from pathlib import Path

from foto3d.app import configdoc
from foto3d.cli.docs import render
from foto3d.proto.registry import write_schemas

ROOT = Path(__file__).resolve().parent.parent


def test_cli_reference_is_up_to_date() -> None:
    current = (ROOT / "docs" / "cli.md").read_text()
    assert current == render(), "docs/cli.md is stale: run `python -m foto3d.cli.docs`"


def test_json_schemas_are_up_to_date() -> None:
    stale = write_schemas(ROOT / "docs" / "schemas", check=True)
    assert not stale, f"docs/schemas is stale ({stale}): run `foto3d schema`"


def test_configuration_reference_is_up_to_date() -> None:
    current = (ROOT / "docs" / "configuration.md").read_text()
    assert current == configdoc.render(), (
        "docs/configuration.md is stale: run `python -m foto3d.app.configdoc`"
    )


def test_configuration_reference_lists_every_service_table() -> None:
    sections = {t.section for t in configdoc.service_tables()}
    assert {"queue", "log_collector", "notifier", "trainer", "scaler", "publisher", "catalog"} <= sections
