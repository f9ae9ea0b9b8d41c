"""The splat formats as the browser viewer knows them, taken from the format registry.

``<foto3d-viewer>`` needs each format's registry name (the spelling of ``files[].format``), its
file suffix (to tell a bare ``src=`` URL's format), whether its files may record their own up
axis (a .ply header's ``Vertical Axis`` comment, which the viewer reads as ``libs/splat`` does)
and the up axis to assume when neither the config, the file entry nor the file gives one. The bundle cannot import Python, so this module writes
them to ``web/src/formats.json``, which the bundle imports; a test fails when that file is stale.
Regenerate with ``python -m foto3d.libs.viewer.formats``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from foto3d.libs.splat.formats import registry
from foto3d.libs.splat.io import DEFAULT_UP

TABLE_PATH = Path(__file__).resolve().parent / "web" / "src" / "formats.json"

#: The order in which the viewer would rather fetch a model's files (smallest per gaussian first).
VIEWER_ORDER: tuple[str, ...] = ("spz", "sog", "compressed-ply", "ply", "splat")
if set(VIEWER_ORDER) != set(registry.NAMES):  # a new format must be placed in the order
    raise RuntimeError(f"VIEWER_ORDER {VIEWER_ORDER} does not list the registry's formats {registry.NAMES}")


def table() -> dict[str, Any]:
    """``{"order": [...], "formats": {name: {"suffix", "up", "recorded"}}}``. ``up`` is as stored
    (what the renderer sees): the format's convention through its storage turn, or, for a format
    whose files may record their own axis (``recorded``: .ply), what ``libs/splat`` assumes for a
    file that records none (3DGS/PlayCanvas's -Y)."""
    formats = {}
    for name in registry.NAMES:
        spec = registry.get(name)
        formats[name] = {
            "suffix": spec.suffixes[0],
            "up": spec.stored_up(spec.up or DEFAULT_UP),
            "recorded": spec.recorded_up is not None,
        }
    return {"order": list(VIEWER_ORDER), "formats": formats}


def render() -> str:
    return json.dumps(table(), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m foto3d.libs.viewer.formats", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--check", action="store_true", help="exit 1 if the file on disk is stale")
    args = ap.parse_args(argv)
    if args.check:
        fresh = TABLE_PATH.is_file() and TABLE_PATH.read_text() == render()
        print(f"{TABLE_PATH.name} is {'up to date' if fresh else 'stale'}")
        return 0 if fresh else 1
    TABLE_PATH.write_text(render())
    print(f"wrote {TABLE_PATH.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
