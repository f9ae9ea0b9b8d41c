"""The viewer's formats and up axes come from the splat format registry, spelled as everywhere else."""

from __future__ import annotations

import json
import re

from foto3d.libs.splat.formats import registry
from foto3d.libs.splat.io import DEFAULT_UP
from foto3d.libs.viewer import assets, formats

SRC = assets.WEB_DIR / "src"


def test_the_bundles_format_table_is_generated_from_the_registry() -> None:
    on_disk = json.loads(formats.TABLE_PATH.read_text())
    assert on_disk == formats.table(), "stale: run `python -m foto3d.libs.viewer.formats`"
    assert list(on_disk["formats"]) == list(registry.NAMES)
    assert set(on_disk["order"]) == set(registry.NAMES)
    for name, entry in on_disk["formats"].items():
        spec = registry.get(name)
        assert entry["suffix"] == spec.suffixes[0]
        # A format that fixes its axis: that axis as stored. One whose files may record it (.ply):
        # what libs/splat assumes when the file records none, and the viewer reads the header.
        assert entry["up"] == spec.stored_up(spec.up or DEFAULT_UP)
        assert entry["recorded"] == (spec.up is None)
    assert on_disk["formats"]["spz"]["up"] == "y" and on_disk["formats"]["compressed-ply"]["up"] == "-y"
    assert on_disk["formats"]["ply"] == {"suffix": ".ply", "up": "-y", "recorded": True}


def test_the_script_names_formats_only_as_the_registry_does() -> None:
    viewer_js = (SRC / "viewer.js").read_text()
    spark = re.search(r"const SPARK_TYPES = \{([^}]*)\}", viewer_js)
    assert spark is not None
    keys = {k.strip('"') for k in re.findall(r'("[^"]+"|\w+):', spark.group(1))}
    assert keys == set(registry.NAMES)
    for js in SRC.glob("*.js"):
        assert '"compressed.ply"' not in js.read_text(), js.name
    assert assets.EMBED_DEFAULT_FORMATS.split(",") == list(formats.VIEWER_ORDER)
