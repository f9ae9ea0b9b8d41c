"""Deliver one dataset submission: upload its files to the site's store, then submit it.

The submission reaches the site only after every file is there with a matching
checksum, so a trainer never sees half a dataset. Files go under
``datasets/<rig>/<request id>/`` in the site's store; the forwarded ``SubmitRequest``
keeps the rig's request id, so the queue makes one job however often it is resent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import msgspec
import nats.errors
from nats.js.api import RawStreamMsg

from foto3d.libs.storage.base import BlobStore, StorageError, open_store, sha256_file
from foto3d.libs.storage.s3 import S3Store
from foto3d.proto import subjects
from foto3d.proto.jobs import SubmitRequest
from foto3d.proto.rig import DATASET_MANIFEST, RigDataset, UploadProgress
from foto3d.rig import problems
from foto3d.rig.forward import RetryLater, SiteUnavailable
from foto3d.rig.problems import ProblemLog
from foto3d.rig.settings import SiteSettings
from foto3d.rig.sites import SiteLink
from foto3d.rig.upload import RateCap, Uploader

_dec = msgspec.json.Decoder(RigDataset)
_enc = msgspec.json.Encoder()
UPLOAD_RETRY_S = 10.0
MANIFEST_NAME = DATASET_MANIFEST


def site_store(site: SiteSettings) -> BlobStore:
    if site.store.startswith("s3://"):
        bucket, _, prefix = site.store[5:].partition("/")
        return S3Store(bucket=bucket, prefix=prefix, endpoint_url=site.s3_endpoint)
    return open_store(site.store)


def dataset_prefix(ds: RigDataset) -> str:
    return f"datasets/{ds.rig_id}/{ds.request_id}"


class UploadMeter:
    """Progress and ETA of the upload in hand (a smoothed rate)."""

    def __init__(self, ds: RigDataset) -> None:
        self.ds = ds
        self.total = sum(f.size for f in ds.files)
        self.done = 0
        self.rate = 0.0
        self._last = time.monotonic()

    def add(self, n: int) -> None:
        now = time.monotonic()
        dt = max(now - self._last, 1e-3)
        self._last = now
        self.done += n
        inst = n / dt
        self.rate = inst if self.rate == 0 else 0.8 * self.rate + 0.2 * inst

    def snapshot(self) -> UploadProgress:
        left = max(self.total - self.done, 0)
        return UploadProgress(
            request_id=self.ds.request_id,
            object_id=self.ds.object_id,
            done_bytes=min(self.done, self.total),
            total_bytes=self.total,
            rate_bps=self.rate,
            eta_s=left / self.rate if self.rate > 0 else None,
        )


class DatasetDelivery:
    def __init__(
        self,
        rig_dir: Path,
        part_bytes: int,
        problem_log: ProblemLog,
        logs_first: Callable[[], Awaitable[None]],
        publish_timeout: float,
        rate_cap: RateCap | None = None,
    ) -> None:
        self.rig_dir = rig_dir
        self.rate_cap = rate_cap or RateCap(None)  # one for the rig's link, across datasets
        self.part_bytes = part_bytes
        self.problems = problem_log
        self.logs_first = logs_first
        self.publish_timeout = publish_timeout
        self.meter: UploadMeter | None = None
        self._stores: dict[str, BlobStore] = {}

    def _store(self, site: SiteSettings) -> BlobStore:
        if site.name not in self._stores:
            self._stores[site.name] = site_store(site)
        return self._stores[site.name]

    async def __call__(self, site: SiteLink, msg: RawStreamMsg) -> None:
        try:
            ds: RigDataset = _dec.decode(msg.data or b"")
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            self.problems.add(problems.dataset_unusable("?", f"unreadable submission ({exc})"))
            return
        problem = await asyncio.to_thread(_check_files, ds)
        if problem:
            self.problems.add(problems.dataset_unusable(ds.object_id, problem))
            return
        store = self._store(site.config)
        uploader = Uploader(store, self.rig_dir / "state", self.part_bytes, self.rate_cap)
        prefix = dataset_prefix(ds)
        self.meter = meter = UploadMeter(ds)
        try:
            for f in ds.files:
                await uploader.upload(
                    f"{prefix}/{f.path}",
                    Path(ds.folder) / f.path,
                    size=f.size,
                    sha256=f.sha256,
                    gate=self.logs_first,
                    progress=meter.add,
                )
            await self._upload_manifest(uploader, prefix, ds)
        except StorageError as exc:
            self.problems.add(problems.upload_failed(ds.object_id, str(exc), UPLOAD_RETRY_S))
            raise RetryLater(str(exc), UPLOAD_RETRY_S) from exc
        finally:
            self.meter = None
        req = SubmitRequest(
            object_id=ds.object_id,
            dataset=store.uri(prefix),
            priority=ds.priority,
            options=ds.options,
            submitted_by=ds.submitted_by or f"rig:{ds.rig_id}",
            request_id=ds.request_id,
        )
        js = site.js
        if js is None:  # the site's connection is being replaced (sites.py) after a long upload
            raise SiteUnavailable(f"submitting {ds.object_id}: the site's connection is being renewed")
        try:
            await js.publish(
                subjects.JOB_SUBMIT,
                _enc.encode(req),
                timeout=self.publish_timeout,
                headers={"Nats-Msg-Id": ds.request_id},
            )
        except (nats.errors.Error, TimeoutError) as exc:
            raise SiteUnavailable(f"submitting {ds.object_id}: {exc or type(exc).__name__}") from exc

    async def _upload_manifest(self, uploader: Uploader, prefix: str, ds: RigDataset) -> None:
        """The manifest goes last, beside the files: the site can check every file against it,
        and its presence says the upload is complete."""
        path = self.rig_dir / "state" / "manifests" / f"{ds.request_id}.json"
        await asyncio.to_thread(_write_manifest, path, _enc.encode(ds))
        digest = await asyncio.to_thread(sha256_file, path)
        await uploader.upload(
            f"{prefix}/{MANIFEST_NAME}", path, size=path.stat().st_size, sha256=digest, gate=self.logs_first
        )
        path.unlink(missing_ok=True)


def _write_manifest(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _check_files(ds: RigDataset) -> str | None:
    """The files must still be what was submitted; say which one is not."""
    root = Path(ds.folder)
    for f in ds.files:
        path = root / f.path
        if not path.is_file():
            return f"{path} is missing"
        if path.stat().st_size != f.size or sha256_file(path) != f.sha256:
            return f"{path} changed after it was submitted"
    return None
