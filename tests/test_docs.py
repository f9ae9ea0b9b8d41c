"""Generated docs stay in step with the code."""

from __future__ import annotations

from pathlib import Path

import msgspec

from foto3d.app import configdoc
from foto3d.cli.docs import render
from foto3d.proto.registry import normalise_descriptions, schema_of, write_schemas

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


def test_schemas_do_not_depend_on_how_msgspec_copies_docstrings() -> None:
    """msgspec ≤ 0.22 copies a docstring verbatim, 0.23 dedents it: both give the same bytes."""

    class Documented(msgspec.Struct):
        """First line.

        Second paragraph, indented in the source
            with a nested line.
        """

    verbatim = Documented.__doc__
    assert verbatim is not None and "\n        Second" in verbatim
    dedented = "First line.\n\nSecond paragraph, indented in the source\n    with a nested line."
    as_old = {"$defs": {"Documented": {"description": verbatim, "type": "object"}}}
    as_new = {"$defs": {"Documented": {"description": dedented, "type": "object"}}}
    assert normalise_descriptions(as_old) == normalise_descriptions(as_new)
    # and what this msgspec writes is the same again
    assert schema_of(Documented)["$defs"]["Documented"]["description"] == dedented
