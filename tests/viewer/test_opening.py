"""The opening view when staff saved none: the side the training cameras looked at most, else the
side with the most detail, else the house default (libs/viewer/opening.py).

The object under test has its face at azimuth 210°: the old fixed default (30°) looked at its
back. Built upright (+Y up), stored +Z up as nerfstudio exports it."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt
import pytest

from foto3d.libs.splat import io as splat_io
from foto3d.libs.splat.coords import reorient, rotation_between
from foto3d.libs.splat.model import Splat, logit
from foto3d.libs.storage.local import LocalStore
from foto3d.libs.viewer.config import DEFAULT_AZIMUTH_DEG, build_viewer_config
from foto3d.libs.viewer.opening import preferred_azimuth, to_upright
from foto3d.libs.viewer.thumbnail import opening_camera
from foto3d.proto.jobs import Artifact, TrainOptions
from foto3d.proto.objects import PublishRequest
from foto3d.proto.viewer import Camera, ViewerConfig, ViewerSettings
from foto3d.services.publisher.upload import prepare
from foto3d.services.trainer.reduce import load_training_cameras, reduce_export
from tests.viewer.site import Site, tag
from tests.viewer.test_render import VIEWER, settle

FACE = 210.0  # degrees: where the object's detailed side looks
OLD_DEFAULT = 30.0


def from_upright(points: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Upright (+Y up) points as +Z-up data (the inverse of the upright turn)."""
    return np.asarray(points @ rotation_between("z", "y"))


def horizontal(
    az_deg: npt.NDArray[np.float64], radius: float, height: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    a = np.radians(az_deg)
    return np.stack([radius * np.sin(a), height, radius * np.cos(a)], axis=1)


def figure(face: float | None, seed: int = 1) -> Splat:
    """A cylinder-like figure: coarse blurs all round; with ``face``, a dense patch of fine
    gaussians on that side (what a capture that saw that side well trains into)."""
    rng = np.random.default_rng(seed)
    coarse_az = rng.uniform(0, 360, 800)
    pts = [horizontal(coarse_az, 0.5, rng.uniform(-1, 1, 800))]
    sizes = [np.full(800, 0.08)]
    if face is not None:
        fine_az = face + rng.uniform(-60, 60, 3000)
        pts.append(horizontal(fine_az, 0.52, rng.uniform(-1, 1, 3000)))
        sizes.append(np.full(3000, 0.01))
    means = from_upright(np.concatenate(pts))
    n = len(means)
    scales = np.log(np.repeat(np.concatenate(sizes)[:, None], 3, axis=1))
    return Splat(
        means=means,
        scales=scales,
        quats=np.tile([1.0, 0, 0, 0], (n, 1)),
        opacities=np.full(n, logit(0.9)),
        sh0=np.zeros((n, 3)),
    )


def azimuth_of(camera: Camera | None) -> float:
    assert camera is not None and camera.position and camera.target
    rel = np.subtract(camera.position, camera.target)
    return math.degrees(math.atan2(rel[0], rel[2])) % 360


def apart(a: float, b: float) -> float:
    return abs((a - b + 180) % 360 - 180)


def test_the_side_with_the_most_detail_opens_when_no_cameras_were_recorded() -> None:
    config = build_viewer_config(
        figure(FACE), object_id="o", name="o", model_version=1, files=[], memory_up="z"
    )
    az = azimuth_of(config.camera)
    assert apart(az, FACE) < 10, f"opens at {az:.0f}°, the face is at {FACE:.0f}°"
    assert apart(az, OLD_DEFAULT) > 150  # the old default looked at the back


@pytest.mark.timeout(240)
async def test_a_bare_file_opens_on_its_detailed_side_in_the_browser(page: Any, site: Site) -> None:
    # no config at all (a shop hosting the file itself): the component applies the same rule
    splat_io.write(figure(FACE), site.files_dir / "biker.ply", up="z")
    await page.goto(site.page_url(tag(src=f"{site.base}/files/biker.ply")))
    assert await settle(page) == "ready"
    az = float((await page.evaluate(f"{VIEWER}.currentView()"))["azimuth"]) % 360
    assert apart(az, FACE) < 10, f"opens at {az:.0f}°, the face is at {FACE:.0f}°"


def test_recorded_cameras_win_and_a_saved_view_wins_over_both() -> None:
    splat = figure(FACE)
    config = build_viewer_config(
        splat, object_id="o", name="o", model_version=1, files=[], memory_up="z", front_azimuth=100
    )
    assert apart(azimuth_of(config.camera), 100) < 0.5
    saved = Camera(position=[0.0, 0.0, 5.0], target=[0.0, 0.0, 0.0])
    config = build_viewer_config(
        splat,
        object_id="o",
        name="o",
        model_version=1,
        files=[],
        memory_up="z",
        settings=ViewerSettings(camera=saved),
        front_azimuth=100,
    )
    assert config.camera == saved


def test_a_reviewers_turn_turns_the_opening_side_with_the_object() -> None:
    config = build_viewer_config(
        figure(FACE),
        object_id="o",
        name="o",
        model_version=1,
        files=[],
        memory_up="z",
        settings=ViewerSettings(rotation=[0.0, 90.0, 0.0]),
    )
    assert apart(azimuth_of(config.camera), FACE + 90) < 10


@pytest.mark.parametrize("stored_up", ["z", "-y", "y"])
def test_the_thumbnail_shows_the_opening_side_whatever_the_files_axis(stored_up: str) -> None:
    splat = reorient(figure(FACE), "z", stored_up)
    cam = opening_camera(splat, stored_up)  # type: ignore[arg-type]  # an UpAxis
    assert cam.position is not None and cam.target is not None
    rel = to_upright(np.subtract(cam.position, cam.target), stored_up)[0]
    az = math.degrees(math.atan2(rel[0], rel[2])) % 360
    assert apart(az, FACE) < 10, f"the thumbnail looks from {az:.0f}°"
    recorded = opening_camera(splat, stored_up, front_azimuth=100)  # type: ignore[arg-type]
    assert recorded.position is not None and recorded.target is not None
    rel = to_upright(np.subtract(recorded.position, recorded.target), stored_up)[0]
    assert apart(math.degrees(math.atan2(rel[0], rel[2])) % 360, 100) < 0.5


def test_an_even_all_round_object_keeps_the_default() -> None:
    config = build_viewer_config(
        figure(None), object_id="o", name="o", model_version=1, files=[], memory_up="z"
    )
    assert apart(azimuth_of(config.camera), DEFAULT_AZIMUTH_DEG) < 0.5
    assert preferred_azimuth(np.arange(0, 360, 10.0)) is None
    assert preferred_azimuth([]) is None


def write_transforms(path: Path, azimuths: list[float]) -> None:
    """A nerfstudio dataset's transforms.json with cameras 3 units out at these azimuths, a
    little above the object (positions in the +Z-up data frame; no dataparser transform)."""
    eye = horizontal(np.asarray(azimuths, np.float64), 3.0, np.full(len(azimuths), 0.8))
    frames = []
    for p in from_upright(eye):
        m = np.eye(4)
        m[:3, 3] = p
        frames.append({"file_path": "images/x.png", "transform_matrix": m.tolist()})
    doc = {"fl_x": 100.0, "fl_y": 100.0, "cx": 64.0, "cy": 48.0, "w": 128, "h": 96, "frames": frames}
    path.write_text(json.dumps(doc))


async def test_the_trainer_records_where_its_cameras_looked_and_the_viewer_opens_there(
    tmp_path: Path,
) -> None:
    # a capture that circled the front half (150°…270°) and took a few shots of the back
    azimuths = [150.0 + 5 * i for i in range(25)] + [0.0, 30.0, 60.0]
    write_transforms(tmp_path / "transforms.json", azimuths)
    src = tmp_path / "splat.ply"
    splat_io.write(figure(None, seed=2), src, up="z")  # no detail to tell the sides apart
    cameras = load_training_cameras(tmp_path / "transforms.json", None)
    out = reduce_export(
        src, tmp_path / "final", TrainOptions(reduce=False, formats=["ply", "spz"]), cameras=cameras
    )
    assert out.front_azimuth is not None and apart(out.front_azimuth, FACE) < 10, out.front_azimuth
    arts = [
        Artifact(
            kind="splat",
            format=fmt,
            up=out.up[fmt],
            uri=path.as_uri(),
            bytes=path.stat().st_size,
            sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
            front_azimuth=out.front_azimuth,
        )
        for fmt, path in out.files.items()
    ]
    # through the wire and the publisher into viewer.json
    arts = msgspec.json.decode(msgspec.json.encode(arts), type=list[Artifact])
    store = LocalStore(tmp_path / "store")
    (tmp_path / "work").mkdir()
    req = PublishRequest(object_id="acme-biker-001", customer="acme", version=1, job_id="j1", artifacts=arts)
    planned = await prepare(req, store.uri, tmp_path / "work", lambda _: store, 32)
    config = msgspec.json.decode(
        next(p.path for p in planned if p.kind == "viewer_config").read_bytes(), type=ViewerConfig
    )
    assert apart(azimuth_of(config.camera), FACE) < 10


def test_a_dataset_without_camera_poses_records_no_side(tmp_path: Path) -> None:
    (tmp_path / "transforms.json").write_text('{"camera_model": "OPENCV", "frames": []}')
    cameras = load_training_cameras(tmp_path / "transforms.json", None)
    src = tmp_path / "splat.ply"
    splat_io.write(figure(FACE), src, up="z")
    out = reduce_export(src, tmp_path / "final", TrainOptions(reduce=False, formats=["ply"]), cameras=cameras)
    assert out.front_azimuth is None  # the publisher then falls back on the detail
