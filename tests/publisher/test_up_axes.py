"""One notion of a file's up axis: what the trainer records per file (``Artifact.up``, as stored)
is what the publisher writes into ``object.published/1`` and ``viewer.json``, and the upright
frame it computes does not depend on which file it happened to read."""

from __future__ import annotations

import hashlib
from pathlib import Path

import msgspec
import pytest

from foto3d.libs.splat import io as splat_io
from foto3d.libs.splat.synthetic import synthetic_object
from foto3d.libs.storage.local import LocalStore
from foto3d.proto.jobs import Artifact, TrainOptions
from foto3d.proto.objects import PublishRequest
from foto3d.proto.viewer import ViewerConfig
from foto3d.services.publisher.upload import prepare, upload
from foto3d.services.trainer.reduce import reduce_export

OID = "acme-arm-chair-001"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> list[Artifact]:
    """Artifacts as the trainer's pipeline records them (reduce_export's files and axes)."""
    tmp = tmp_path_factory.mktemp("trained")
    src = tmp / "splat.ply"
    splat_io.write(synthetic_object(3000, sh_degree=1, seed=5), src, up="z")  # as ns-export writes it
    out = reduce_export(
        src, tmp / "final", TrainOptions(reduce_keep=0.5, sh_degree=1, formats=["ply", "spz", "sog"])
    )
    return [
        Artifact(
            kind="splat",
            format=fmt,
            up=out.up[fmt],
            uri=path.as_uri(),
            bytes=path.stat().st_size,
            sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        )
        for fmt, path in out.files.items()
    ]


async def publish(arts: list[Artifact], work: Path) -> tuple[dict[str, str | None], ViewerConfig]:
    req = PublishRequest(object_id=OID, customer="acme", version=1, job_id="j1", artifacts=arts)
    store = LocalStore(work / "store")
    work.mkdir(parents=True, exist_ok=True)
    planned = await prepare(req, store.uri, work, lambda _: store, 64)
    published, _ = await upload(store, planned, store.uri)
    config = msgspec.json.decode(
        next(p.path for p in planned if p.kind == "viewer_config").read_bytes(), type=ViewerConfig
    )
    assert {f.format: f.up for f in config.files} == {f.format: f.up for f in published if f.kind == "splat"}
    return {f.format: f.up for f in published if f.kind == "splat"}, config


async def test_published_up_is_the_recorded_one(trained: list[Artifact], tmp_path: Path) -> None:
    ups, _ = await publish(trained, tmp_path / "all")
    assert ups == {a.format: a.up for a in trained} == {"ply": "z", "spz": "y", "sog": "-y"}


async def test_framing_is_the_same_whichever_file_is_read(trained: list[Artifact], tmp_path: Path) -> None:
    by_fmt = {a.format: a for a in trained}
    _, from_ply = await publish([by_fmt["ply"]], tmp_path / "ply")
    for fmt in ("spz", "sog"):  # no .ply: the publisher frames a web format, decoded -Y up
        _, config = await publish([by_fmt[fmt]], tmp_path / fmt)
        assert config.bounds and config.camera and from_ply.bounds and from_ply.camera
        assert config.bounds.center == pytest.approx(from_ply.bounds.center, abs=0.02)
        assert config.bounds.max == pytest.approx(from_ply.bounds.max, abs=0.02)
        assert config.camera.position == pytest.approx(from_ply.camera.position, abs=0.05)


async def test_artifacts_without_an_axis_get_what_older_trainers_wrote(
    trained: list[Artifact], tmp_path: Path
) -> None:
    # Trainers before Artifact.up wrote every format from nerfstudio's +Z-up data, unturned;
    # .spz's codec then stored it in Niantic's frame, where +Z becomes -Z.
    src = tmp_path / "old.ply"
    splat_io.write(synthetic_object(500, sh_degree=0, seed=6), src, up="z")
    splat_io.write(splat_io.read(src), tmp_path / "old.spz")
    arts = [
        Artifact(kind="splat", format=fmt, uri=p.as_uri(), bytes=p.stat().st_size, sha256="")
        for fmt, p in (("ply", src), ("spz", tmp_path / "old.spz"))
    ]
    ups, _ = await publish(arts, tmp_path / "old")
    assert ups == {"ply": "z", "spz": "-z"}
