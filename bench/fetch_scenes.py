"""Fill the benchmark's scene cache with real trained splats from PlayCanvas' engine repository.

The scenes are not committed (they are megabytes each and licensed by their authors); this
script fetches them into ``bench/out/scenes/`` (git-ignored) and converts each to a standard
.ply with ``@playcanvas/splat-transform``, the independent decoder (SOG and compressed PLY are
PlayCanvas' own formats). All are in PlayCanvas' convention: -Y up.

| scene   | path in playcanvas/engine                       | gaussians | SH | licence |
|---------|-------------------------------------------------|----------:|---:|---------|
| biker   | examples/assets/splats/biker.compressed.ply     | 152,746   | 0  | in the MIT-licensed repository (PlayCanvas Ltd.); no separate asset licence |
| guitar  | examples/assets/splats/guitar.compressed.ply    | 90,854    | 0  | as biker |
| logo    | examples/assets/splats/playcanvas-logo/ (SOG)   | 307,128   | 0  | as biker |
| playbot | examples/assets/splats/playbot/0_0/ (SOG, LOD 0) | 500,000  | 2  | CC-BY-4.0, "PLAYBOT" by Stephane Agullo (https://sa3d.fr), https://superspl.at/view?id=ee6d8bc4 (playbot/playbot.txt) |

Usage::

    python bench/fetch_scenes.py --source PATH   # a clone (work tree) or bare git dir of playcanvas/engine
    python bench/fetch_scenes.py --source https://raw.githubusercontent.com/playcanvas/engine/main

The benchmark reads ``bench/out/scenes/<scene>.ply``.

No open-licensed capture of a million splats or more was found among the sources above, so the
script also writes ``quartet.ply``: the four scenes side by side in one file (1,050,728 splats,
colour only: playbot's SH bands are dropped so that the parts share one layout). Every splat in
it is a real trained one; only the arrangement is ours. It stands in for a big capture where the
question is memory and load (bench/bench_viewer_budget.py), not picture quality.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from foto3d.libs.splat import io as splat_io
from foto3d.libs.splat import splat_transform
from foto3d.libs.splat.model import Splat

ASSETS = "examples/assets/splats"
DEFAULT_OUT = Path(__file__).resolve().parent / "out" / "scenes"
_SOG_FILES = ("meta.json", "means_l.webp", "means_u.webp", "quats.webp", "scales.webp", "sh0.webp")


@dataclass(frozen=True)
class Scene:
    name: str
    files: tuple[str, ...]  # paths in the repository; the first is what splat-transform reads
    licence: str


SCENES = (
    Scene("biker", (f"{ASSETS}/biker.compressed.ply",), "MIT repository, PlayCanvas Ltd."),
    Scene("guitar", (f"{ASSETS}/guitar.compressed.ply",), "MIT repository, PlayCanvas Ltd."),
    Scene(
        "logo",
        tuple(f"{ASSETS}/playcanvas-logo/{f}" for f in _SOG_FILES),
        "MIT repository, PlayCanvas Ltd.",
    ),
    Scene(
        "playbot",
        tuple(f"{ASSETS}/playbot/0_0/{f}" for f in (*_SOG_FILES, "shN_centroids.webp", "shN_labels.webp")),
        "CC-BY-4.0, Stephane Agullo (https://sa3d.fr), https://superspl.at/view?id=ee6d8bc4",
    ),
)


def _fetch(source: str, path: str, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if source.startswith(("http://", "https://")):
        with urllib.request.urlopen(f"{source.rstrip('/')}/{path}", timeout=120) as r, open(dest, "wb") as f:
            shutil.copyfileobj(r, f)
        return
    root = Path(source)
    if (root / path).is_file():  # a work tree
        shutil.copyfile(root / path, dest)
        return
    git_dir = root / ".git" if (root / ".git").exists() else root
    with open(dest, "wb") as f:
        subprocess.run(["git", f"--git-dir={git_dir}", "show", f"HEAD:{path}"], stdout=f, check=True)


def fetch(source: str, out: Path) -> list[Path]:
    """Fetch every scene from ``source`` and convert it to ``out/<name>.ply``."""
    made = []
    for scene in SCENES:
        raw = out / "src" / scene.name
        for path in scene.files:
            _fetch(source, path, raw / Path(path).name)
        ply = out / f"{scene.name}.ply"
        splat_transform.run([str(raw / Path(scene.files[0]).name), str(ply)])
        print(f"{scene.name}: {ply} ({ply.stat().st_size:,} bytes; {scene.licence})")
        made.append(ply)
    return made


def quartet(plys: list[Path], out: Path) -> Path:
    """The scenes in ``plys`` side by side along x, colour only, as one .ply (``out``)."""
    parts = []
    x = 0.0
    for ply in plys:
        part = splat_io.read(ply).with_sh_degree(0)
        centre = np.median(part.means, axis=0)
        half = float(np.percentile(np.abs(part.means - centre), 98, axis=0).max())
        part.means = part.means - centre + np.array([x + half, 0.0, 0.0], np.float32)
        x += 2.2 * half
        parts.append(part)
    splat_io.write(Splat.concat(parts), out)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--source", required=True, help="playcanvas/engine: a clone, a bare git dir or a raw-file URL"
    )
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="cache folder (default bench/out/scenes)")
    args = ap.parse_args()
    if not splat_transform.available():
        print("splat-transform is not installed: run `npm install` in tools/node", file=sys.stderr)
        return 2
    made = fetch(args.source, args.out)
    big = quartet(made, args.out / "quartet.ply")
    print(f"quartet: {big} ({big.stat().st_size:,} bytes; the four above side by side)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
