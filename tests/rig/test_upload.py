"""Dataset uploads: cut half-way, resumed, verified by checksum (S3 multipart and a local store)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from foto3d.libs.storage.base import StorageError, sha256_file
from foto3d.libs.storage.local import LocalStore
from foto3d.libs.storage.s3 import S3Store
from foto3d.rig.upload import LOCAL_CHUNK, RateCap, Uploader
from testkit.servers import MotoServer
from tests.rig.link import CuttableLink

MiB = 1024 * 1024


def _file(path: Path, size: int) -> tuple[Path, int, str]:
    path.write_bytes(os.urandom(size))
    return path, size, sha256_file(path)


async def test_s3_upload_cut_half_way_resumes_and_completes(tmp_path: Path, moto: MotoServer) -> None:
    moto.client().create_bucket(Bucket="site")
    link = await CuttableLink(moto.port).start()
    try:
        path, size, digest = _file(tmp_path / "img.jpg", 12 * MiB + 4321)  # 3 parts of 5 MiB
        store = S3Store("site", "rigs", endpoint_url=link.url, retries=1, read_timeout=5, connect_timeout=2)
        state = tmp_path / "state"
        first = Uploader(store, state, part_bytes=5 * MiB)
        link.cut_after(7 * MiB)  # the link dies during part 2
        with pytest.raises(StorageError):
            await first.upload("d/img.jpg", path, size=size, sha256=digest)
        assert first.parts_sent == 1
        direct = S3Store("site", "rigs", endpoint_url=moto.url)
        assert await direct.head("d/img.jpg") is None, "a cut upload must not look complete"
        assert list((state / "uploads").glob("*.json")), "the resume state is kept"

        link.restore()
        done: list[int] = []
        second = Uploader(store, state, part_bytes=5 * MiB)
        await second.upload("d/img.jpg", path, size=size, sha256=digest, progress=done.append)
        assert second.parts_sent == 2, "only the parts S3 did not have are sent again"
        assert sum(done) == size
        info = await store.head("d/img.jpg")
        assert info is not None and info.size == size and info.sha256 == digest
        back = await store.get_file("d/img.jpg", tmp_path / "back.jpg")
        assert sha256_file(back) == digest
        assert not list((state / "uploads").glob("*.json"))

        # Once complete, a resend finds it there and sends nothing.
        third = Uploader(store, state, part_bytes=5 * MiB)
        await third.upload("d/img.jpg", path, size=size, sha256=digest)
        assert third.parts_sent == 0
    finally:
        await link.stop()


async def test_s3_resume_checks_the_parts_already_there(tmp_path: Path, moto: MotoServer) -> None:
    """A part on S3 that no longer matches the local bytes is sent again, not trusted."""
    moto.client().create_bucket(Bucket="site")
    link = await CuttableLink(moto.port).start()
    try:
        path, size, digest = _file(tmp_path / "img.jpg", 11 * MiB)
        store = S3Store("site", endpoint_url=link.url, retries=1, read_timeout=5, connect_timeout=2)
        link.cut_after(7 * MiB)
        with pytest.raises(StorageError):
            await Uploader(store, tmp_path / "s", 5 * MiB).upload("k", path, size=size, sha256=digest)
        link.restore()
        # The local file's first part changes (same size): its checksum no longer matches.
        data = bytearray(path.read_bytes())
        data[:10] = b"0123456789"
        path.write_bytes(bytes(data))
        digest = sha256_file(path)
        again = Uploader(store, tmp_path / "s", 5 * MiB)
        await again.upload("k", path, size=size, sha256=digest)
        assert again.parts_sent == 3
        info = await store.head("k")
        assert info is not None and info.sha256 == digest
    finally:
        await link.stop()


async def test_local_upload_killed_half_way_resumes(tmp_path: Path) -> None:
    path, size, digest = _file(tmp_path / "img.jpg", 5 * LOCAL_CHUNK + 17)
    store = LocalStore(tmp_path / "store")
    state = tmp_path / "state"
    started = asyncio.Event()
    sent = 0

    def progress(n: int) -> None:
        nonlocal sent
        sent += n
        if sent >= 2 * LOCAL_CHUNK:
            started.set()

    first = Uploader(store, state)
    task = asyncio.create_task(first.upload("a/img.jpg", path, size=size, sha256=digest, progress=progress))
    await started.wait()
    task.cancel()  # what a kill of the agent does to the upload in hand
    with pytest.raises(asyncio.CancelledError):
        await task
    part = tmp_path / "store" / "a" / "img.jpg.part"
    assert part.exists() and 0 < part.stat().st_size < size
    assert not (tmp_path / "store" / "a" / "img.jpg").exists()

    second = Uploader(store, state)
    await second.upload("a/img.jpg", path, size=size, sha256=digest)
    # 6 chunks in all; at least 2 were there already, so at most 4 are sent again.
    assert 1 <= second.parts_sent <= 4
    assert sha256_file(tmp_path / "store" / "a" / "img.jpg") == digest
    assert not part.exists()


async def test_local_upload_with_damaged_partial_copy_is_caught(tmp_path: Path) -> None:
    path, size, digest = _file(tmp_path / "img.jpg", 2 * LOCAL_CHUNK)
    dest = tmp_path / "store" / "img.jpg"
    dest.parent.mkdir(parents=True)
    # A partial copy whose bytes differ from the source (a bad sector, a tampered file).
    dest.with_name("img.jpg.part").write_bytes(b"x" * LOCAL_CHUNK)
    store = LocalStore(tmp_path / "store")
    with pytest.raises(StorageError, match="checksum mismatch"):
        await Uploader(store, tmp_path / "state").upload("img.jpg", path, size=size, sha256=digest)
    assert not dest.exists()
    await Uploader(store, tmp_path / "state").upload("img.jpg", path, size=size, sha256=digest)
    assert sha256_file(dest) == digest


async def test_s3_small_file_goes_in_one_request_and_is_verified(tmp_path: Path, moto: MotoServer) -> None:
    moto.client().create_bucket(Bucket="site")
    path, size, digest = _file(tmp_path / "small.jpg", 300_000)
    store = S3Store("site", endpoint_url=moto.url)
    up = Uploader(store, tmp_path / "state", part_bytes=5 * MiB)
    await up.upload("d/small.jpg", path, size=size, sha256=digest)
    assert up.parts_sent == 1
    info = await store.head("d/small.jpg")
    assert info is not None and info.sha256 == digest and info.size == size
    # A manifest that no longer matches the file is refused, not stored as if it were right.
    with pytest.raises(StorageError, match="no longer"):
        await up.upload("d/other.jpg", path, size=size + 1, sha256=digest)


async def test_a_capped_link_is_paced_across_files(tmp_path: Path) -> None:
    # Two files of two chunks each through one cap: the first chunk goes at once, each later one
    # waits for its predecessors' time at the cap (load can only make it slower, never faster).
    cap = RateCap(LOCAL_CHUNK / 0.4)  # one chunk per 0.4 s
    store = LocalStore(tmp_path / "store")
    uploader = Uploader(store, tmp_path / "state", rate_cap=cap)
    began = time.monotonic()
    for name in ("a.jpg", "b.jpg"):
        path, size, digest = _file(tmp_path / name, 2 * LOCAL_CHUNK)
        await uploader.upload(name, path, size=size, sha256=digest)
        assert sha256_file(tmp_path / "store" / name) == digest
    assert time.monotonic() - began >= 3 * 0.4


async def test_an_uncapped_link_is_not_paced() -> None:
    cap = RateCap(None)
    began = time.monotonic()
    for _ in range(1000):
        await cap.take(LOCAL_CHUNK)
    assert time.monotonic() - began < 1.0
