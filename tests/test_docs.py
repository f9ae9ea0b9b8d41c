"""Generated docs stay in step with the code."""

from __future__ import annotations

from pathlib import Path

from foto3d.cli.docs import render
from foto3d.proto.registry import write_schemas

ROOT = Path(__file__).resolve().parent.parent


def test_cli_reference_is_up_to_date() -> None:
    current = (ROOT / "docs" / "cli.md").read_text()
    assert current == render(), "docs/cli.md is stale: run `python -m foto3d.cli.docs`"


def test_json_schemas_are_up_to_date() -> None:
    stale = write_schemas(ROOT / "docs" / "schemas", check=True)
    assert not stale, f"docs/schemas is stale ({stale}): run `foto3d schema`"
