"""A rig's S3 upload (a folder plus its manifest) is a dataset a cloud trainer can fetch, against moto.

Before, the trainer refused every S3 dataset that was not one archive, so a rig whose site
store is S3 could never get its photos trained.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import msgspec
import pytest

from foto3d.libs.storage.base import sha256_file
from foto3d.libs.storage.s3 import S3Store
from foto3d.proto.rig import DATASET_MANIFEST, DatasetFile, RigDataset
from foto3d.rig.datasets import dataset_prefix
from foto3d.services.trainer.dataset import fetch_dataset
from foto3d.services.trainer.preflight import PreflightError
from testkit.servers import MotoServer
from tests.trainer.helpers import make_dataset

BUCKET = "site-store"


def _manifest(folder: Path, files: list[DatasetFile]) -> RigDataset:
    return RigDataset(
        request_id="req-0001abcd", rig_id="rig-1", object_id="chair-oak-001", folder=str(folder), files=files
    )


async def _upload_like_a_rig(store: S3Store, folder: Path, *, manifest: RigDataset | None = None) -> str:
    """The layout ``DatasetDelivery`` makes: every file under the prefix, the manifest last."""
    files = [
        DatasetFile(path=p.relative_to(folder).as_posix(), size=p.stat().st_size, sha256=sha256_file(p))
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    ]
    ds = manifest or _manifest(folder, files)
    prefix = dataset_prefix(ds)
    for f in files:
        await store.put_file(f"{prefix}/{f.path}", folder / f.path)
    mpath = folder.parent / "manifest.json"
    mpath.write_bytes(msgspec.json.encode(ds))
    await store.put_file(f"{prefix}/{DATASET_MANIFEST}", mpath)
    return store.uri(prefix)


@pytest.fixture
def store(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> S3Store:
    moto.client().create_bucket(Bucket=BUCKET)
    monkeypatch.setenv("FOTO3D_S3_ENDPOINT_URL", moto.url)
    return S3Store(BUCKET, endpoint_url=moto.url)


async def test_a_rig_folder_in_s3_is_fetched_and_checked(store: S3Store, tmp_path: Path) -> None:
    src = make_dataset(tmp_path / "capture" / "photos")
    (src / "images").mkdir()
    (src / "images" / "IMG_0009.jpg").write_bytes(b"\xff\xd8 nested")
    uri = await _upload_like_a_rig(store, src)
    # A stray object in the folder is not part of the dataset: the manifest is the list.
    stray = tmp_path / "stray.txt"
    stray.write_text("not captured")
    await store.put_file(f"{uri.removeprefix(f's3://{BUCKET}/')}/stray.txt", stray)

    got = await fetch_dataset(uri, tmp_path / "work")

    fetched = sorted(p.relative_to(got).as_posix() for p in got.rglob("*") if p.is_file())
    captured = sorted(p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file())
    assert fetched == captured
    for rel in captured:
        assert (got / rel).read_bytes() == (src / rel).read_bytes()


async def test_a_file_changed_in_s3_is_refused(store: S3Store, tmp_path: Path) -> None:
    src = make_dataset(tmp_path / "photos")
    uri = await _upload_like_a_rig(store, src)
    key = uri.removeprefix(f"s3://{BUCKET}/") + "/IMG_0001.jpg"
    # Same size, other bytes: only the SHA-256 can tell.
    original = (src / "IMG_0001.jpg").read_bytes()
    store.client.put_object(Bucket=BUCKET, Key=key, Body=original[:-1] + b"X")

    with pytest.raises(PreflightError, match=r"IMG_0001\.jpg has SHA-256 [0-9a-f]{64} in S3 but"):
        await fetch_dataset(uri, tmp_path / "work")


async def test_a_file_of_another_size_is_refused(store: S3Store, tmp_path: Path) -> None:
    src = make_dataset(tmp_path / "photos")
    uri = await _upload_like_a_rig(store, src)
    key = uri.removeprefix(f"s3://{BUCKET}/") + "/IMG_0002.jpg"
    store.client.put_object(Bucket=BUCKET, Key=key, Body=b"truncated")

    with pytest.raises(PreflightError, match=r"IMG_0002\.jpg is 9 bytes in S3 but \d+ in the manifest"):
        await fetch_dataset(uri, tmp_path / "work")


async def test_a_folder_without_its_manifest_is_refused(store: S3Store, tmp_path: Path) -> None:
    src = make_dataset(tmp_path / "photos")
    uri = await _upload_like_a_rig(store, src)
    store.client.delete_object(
        Bucket=BUCKET, Key=uri.removeprefix(f"s3://{BUCKET}/") + "/" + DATASET_MANIFEST
    )

    with pytest.raises(PreflightError, match=r"no readable manifest \.foto3d-manifest\.json"):
        await fetch_dataset(uri, tmp_path / "work")


async def test_a_manifest_path_outside_the_folder_is_refused(store: S3Store, tmp_path: Path) -> None:
    src = make_dataset(tmp_path / "photos")
    evil = _manifest(src, [DatasetFile(path="../../etc/x", size=1, sha256="0" * 64)])
    uri = await _upload_like_a_rig(store, src, manifest=evil)

    with pytest.raises(PreflightError, match="unsafe path"):
        await fetch_dataset(uri, tmp_path / "work")
    assert not (tmp_path / "etc").exists()


async def test_an_archive_in_s3_is_still_accepted(store: S3Store, tmp_path: Path) -> None:
    src = make_dataset(tmp_path / "photos")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        t.add(src, arcname="photos")
    archive = tmp_path / "photos.tar.gz"
    archive.write_bytes(buf.getvalue())
    await store.put_file("datasets/photos.tar.gz", archive)

    got = await fetch_dataset(f"s3://{BUCKET}/datasets/photos.tar.gz", tmp_path / "work")

    assert sorted(p.name for p in got.iterdir()) == sorted(p.name for p in src.iterdir())
