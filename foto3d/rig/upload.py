"""Resumable, checksum-verified uploads of dataset files to a site's store.

An interrupted upload (link lost, agent killed) continues where it stopped:

* **S3** (any S3-compatible endpoint): a multipart upload whose id is kept in a state
  file; on resume S3 is asked which parts it holds (``ListParts``) and each is checked
  against the local bytes (a part's ETag is its MD5) before only the missing parts are
  sent, each with ``Content-MD5`` so S3 refuses a part damaged on the way. After
  completion the object's size and SHA-256 metadata must match the file.
* **a local store folder**: the file grows as ``<key>.part``; on resume the bytes
  already there are kept, and the whole file's SHA-256 is compared before it is renamed
  into place (a mismatch starts that file over).

``gate`` is awaited before every chunk: the agent uses it to let log traffic go first.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from foto3d.libs.storage.base import BlobStore, StorageError, sha256_file
from foto3d.libs.storage.local import LocalStore
from foto3d.libs.storage.s3 import S3Store

Gate = Callable[[], Awaitable[None]]
Progress = Callable[[int], None]  # bytes just sent (or found already there)
LOCAL_CHUNK = 4 * 1024 * 1024


async def _open_gate() -> None:
    return None


class RateCap:
    """Paces uploads to ``bytes_per_s`` (None: no cap), for a rig on a metered or shared mobile
    link that must leave room for everything else in the car.

    One cap per rig, shared by every file and site: it caps the link, not one transfer. A block
    may start once the previous ones have had their time at the cap; the time a block takes to
    send counts towards the next one's wait, so a slow link is not slowed further.
    """

    def __init__(self, bytes_per_s: float | None) -> None:
        self.bytes_per_s = bytes_per_s
        self._free_at = 0.0

    async def take(self, n: int) -> None:
        """Wait until ``n`` more bytes may go."""
        if not self.bytes_per_s:
            return
        now = time.monotonic()
        start = max(now, self._free_at)
        self._free_at = start + n / self.bytes_per_s
        if start > now:
            await asyncio.sleep(start - now)


class Uploader:
    """Uploads one file at a time to ``store``; resume state lives under ``state_dir``."""

    def __init__(
        self,
        store: BlobStore,
        state_dir: Path,
        part_bytes: int = 8 * 1024 * 1024,
        rate_cap: RateCap | None = None,
    ) -> None:
        self.store = store
        self.state_dir = state_dir
        self.part_bytes = part_bytes
        self.rate_cap = rate_cap or RateCap(None)
        self.parts_sent = 0  # parts (or local chunks) actually transferred, for tests and stats

    async def upload(
        self,
        key: str,
        path: Path,
        *,
        size: int,
        sha256: str,
        gate: Gate = _open_gate,
        progress: Progress | None = None,
    ) -> None:
        """Make ``key`` hold exactly ``path``'s bytes (``size``, ``sha256``) or raise StorageError."""
        if isinstance(self.store, S3Store):
            await self._upload_s3(self.store, key, path, size, sha256, gate, progress)
        elif isinstance(self.store, LocalStore):
            await self._upload_local(self.store, key, path, size, sha256, gate, progress)
        else:
            raise StorageError(f"no resumable upload for {type(self.store).__name__}")

    # -- local folder -------------------------------------------------------------------

    async def _upload_local(
        self,
        store: LocalStore,
        key: str,
        path: Path,
        size: int,
        sha256: str,
        gate: Gate,
        progress: Progress | None,
    ) -> None:
        dest = store._path(key)
        if await asyncio.to_thread(_matches, dest, size, sha256):
            if progress:
                progress(size)
            return
        part = dest.with_name(dest.name + ".part")
        await gate()
        await asyncio.to_thread(dest.parent.mkdir, parents=True, exist_ok=True)
        have = part.stat().st_size if part.exists() else 0
        if have > size:
            have = 0
        if progress and have:
            progress(have)
        with path.open("rb") as src, part.open("r+b" if have else "wb") as out:
            src.seek(have)
            out.seek(have)
            out.truncate()
            while have < size:
                await gate()
                await self.rate_cap.take(min(LOCAL_CHUNK, size - have))
                block = await asyncio.to_thread(src.read, min(LOCAL_CHUNK, size - have))
                if not block:
                    raise StorageError(
                        f"{path} is shorter than when it was submitted ({have} of {size} bytes)"
                    )
                await asyncio.to_thread(out.write, block)
                have += len(block)
                self.parts_sent += 1
                if progress:
                    progress(len(block))
            # No fsync, as the store's own put_file: a copy cut by a power loss is caught by
            # the whole file's checksum below, and sent again.
        if not await asyncio.to_thread(_matches, part, size, sha256):
            part.unlink(missing_ok=True)
            raise StorageError(
                f"checksum mismatch for {key}: the copy differs from {path}; it will be sent again"
            )
        os.replace(part, dest)

    # -- S3 multipart -------------------------------------------------------------------

    def _state_path(self, store: S3Store, key: str) -> Path:
        name = hashlib.sha256(f"{store.bucket}/{store.full_key(key)}".encode()).hexdigest()[:32]
        return self.state_dir / "uploads" / f"{name}.json"

    async def _upload_s3(
        self,
        store: S3Store,
        key: str,
        path: Path,
        size: int,
        sha256: str,
        gate: Gate,
        progress: Progress | None,
    ) -> None:
        head = await store.head(key)
        if head is not None and head.size == size and head.sha256 == sha256:
            if progress:
                progress(size)
            return
        client = store.client
        full = store.full_key(key)
        if size <= self.part_bytes:
            # One part: a multipart upload would cost three requests for nothing to resume.
            await gate()
            await self.rate_cap.take(size)
            data = await asyncio.to_thread(path.read_bytes)
            if len(data) != size:
                raise StorageError(f"{path} is no longer {size} bytes long")
            try:
                await asyncio.to_thread(
                    client.put_object,
                    Bucket=store.bucket,
                    Key=full,
                    Body=data,
                    ContentMD5=base64.b64encode(hashlib.md5(data).digest()).decode(),
                    Metadata={"sha256": sha256},
                )
            except (ClientError, BotoCoreError) as exc:
                raise StorageError(f"uploading {store.uri(key)} failed: {exc}") from exc
            self.parts_sent += 1
            if progress:
                progress(size)
            await self._verify(store, key, size, sha256)
            return
        state_path = self._state_path(store, key)
        state = _read_state(state_path)
        done: dict[int, str] = {}
        upload_id: str | None = None
        if state and state.get("sha256") == sha256 and state.get("part_bytes") == self.part_bytes:
            upload_id = str(state["upload_id"])
            try:
                done = await asyncio.to_thread(_list_parts, client, store.bucket, full, upload_id)
            except ClientError:
                upload_id = None  # expired or aborted: start again
        if upload_id is None:
            try:
                resp = await asyncio.to_thread(
                    lambda: client.create_multipart_upload(
                        Bucket=store.bucket, Key=full, Metadata={"sha256": sha256}
                    )
                )
            except (ClientError, BotoCoreError) as exc:
                raise StorageError(f"cannot start uploading {store.uri(key)}: {exc}") from exc
            upload_id = resp["UploadId"]
            _write_state(
                state_path, {"upload_id": upload_id, "sha256": sha256, "part_bytes": self.part_bytes}
            )
        n_parts = max(1, -(-size // self.part_bytes))
        etags: dict[int, str] = {}
        with path.open("rb") as src:
            for number in range(1, n_parts + 1):
                offset = (number - 1) * self.part_bytes
                length = min(self.part_bytes, size - offset)
                block = await asyncio.to_thread(_read_at, src, offset, length)
                if len(block) != length:
                    raise StorageError(f"{path} is shorter than when it was submitted")
                md5 = hashlib.md5(block)
                if done.get(number) == md5.hexdigest():
                    etags[number] = done[number]
                    if progress:
                        progress(length)
                    continue
                await gate()
                await self.rate_cap.take(length)
                try:
                    resp_part = await asyncio.to_thread(
                        client.upload_part,
                        Bucket=store.bucket,
                        Key=full,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=block,
                        ContentMD5=base64.b64encode(md5.digest()).decode(),
                    )
                except (ClientError, BotoCoreError) as exc:
                    raise StorageError(f"uploading part {number} of {store.uri(key)} failed: {exc}") from exc
                etags[number] = str(resp_part["ETag"]).strip('"')
                self.parts_sent += 1
                if progress:
                    progress(length)
        try:
            await asyncio.to_thread(
                lambda: client.complete_multipart_upload(
                    Bucket=store.bucket,
                    Key=full,
                    UploadId=upload_id,
                    MultipartUpload={
                        "Parts": [{"PartNumber": n, "ETag": f'"{e}"'} for n, e in sorted(etags.items())]
                    },
                )
            )
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"finishing the upload of {store.uri(key)} failed: {exc}") from exc
        state_path.unlink(missing_ok=True)
        await self._verify(store, key, size, sha256)

    async def _verify(self, store: S3Store, key: str, size: int, sha256: str) -> None:
        head = await store.head(key)
        if head is None or head.size != size or head.sha256 != sha256:
            raise StorageError(
                f"checksum mismatch after uploading {store.uri(key)}: expected {size} bytes sha256 {sha256}, "
                f"stored {head.size if head else 0} bytes sha256 {head.sha256 if head else None}"
            )


def _matches(path: Path, size: int, sha256: str) -> bool:
    return path.is_file() and path.stat().st_size == size and sha256_file(path) == sha256


def _read_at(src: Any, offset: int, length: int) -> bytes:
    src.seek(offset)
    data: bytes = src.read(length)
    return data


def _list_parts(client: Any, bucket: str, key: str, upload_id: str) -> dict[int, str]:
    parts: dict[int, str] = {}
    marker = 0
    while True:
        resp = client.list_parts(Bucket=bucket, Key=key, UploadId=upload_id, PartNumberMarker=marker)
        for p in resp.get("Parts", []):
            parts[int(p["PartNumber"])] = str(p["ETag"]).strip('"')
        if not resp.get("IsTruncated"):
            return parts
        marker = int(resp["NextPartNumberMarker"])


def _read_state(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_state(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
