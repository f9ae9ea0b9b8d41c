"""The S3 blob store (also used by trainers through ``open_store("s3://…")``) against moto."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from foto3d.libs.storage import StorageError, open_store
from foto3d.libs.storage.s3 import S3Store
from testkit.servers import MotoServer


async def test_put_head_get_delete_and_errors(
    moto: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    moto.client().create_bucket(Bucket="arts")
    monkeypatch.setenv("FOTO3D_S3_ENDPOINT_URL", moto.url)
    store = open_store("s3://arts/jobs")
    assert isinstance(store, S3Store) and store.endpoint_url == moto.url
    src = tmp_path / "model.spz"
    src.write_bytes(b"splat" * 50_000)
    seen: list[tuple[int, int]] = []
    info = await store.put_file("j1/model.spz", src, content_type="application/octet-stream",
                                progress=lambda d, t: seen.append((d, t)))  # fmt: skip
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    assert info.sha256 == digest and info.uri == "s3://arts/jobs/j1/model.spz"
    assert seen[-1] == (250_000, 250_000)
    head = await store.head("j1/model.spz")
    assert head is not None and head.size == 250_000 and head.sha256 == digest
    assert await store.head("j1/missing.spz") is None
    back = await store.get_file("j1/model.spz", tmp_path / "back" / "m.spz")
    assert back.read_bytes() == src.read_bytes()
    await store.delete("j1/model.spz")
    assert await store.head("j1/model.spz") is None
    with pytest.raises(StorageError, match=re.escape("downloading s3://arts/jobs/j1/model.spz failed")):
        await store.get_file("j1/model.spz", tmp_path / "gone.spz")
    nowhere = S3Store("no-such-bucket", endpoint_url=moto.url)
    with pytest.raises(StorageError, match="'no-such-bucket' does not exist"):
        await nowhere.check_bucket()
    with pytest.raises(StorageError, match="uploading s3://no-such-bucket/x failed"):
        await nowhere.put_file("x", src)
