"""The publisher: uploads an approved model version to S3 (or a local folder) on request.

The catalog asks on ``f3d.api.publisher.publish`` with a :class:`PublishRequest` (the
approved job's artifacts and the version number); the publisher answers with a
:class:`PublishReply` after publishing ``object.published/1`` (or
``object.publish_failed/1``) on the object's event subject, so the timeline has the
outcome even if the requester went away. Upload progress goes out on the core subject
``f3d.progress.publish.<object_id>`` for progress bars.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import msgspec

from foto3d.libs.bus.micro import Endpoint, serve
from foto3d.libs.service import Health, Service, ServiceContext
from foto3d.libs.storage.base import BlobStore, StorageError
from foto3d.libs.storage.local import LocalStore
from foto3d.libs.storage.s3 import MiB, S3Store
from foto3d.libs.tasks import cancel_and_wait
from foto3d.libs.tracing.job import current_traceparent, object_span
from foto3d.proto import subjects
from foto3d.proto.api import BAD_REQUEST, FAILED, ServiceError
from foto3d.proto.base import DecodeError, decode, decoder
from foto3d.proto.gateway import STAFF_PUBLISHED_PREFIX
from foto3d.proto.objects import (
    PUBLISHER_PUBLISH,
    ObjectPublished,
    ObjectPublishFailed,
    PublishProgress,
    PublishReply,
    PublishRequest,
    publish_progress_subject,
)
from foto3d.services.publisher.settings import SETTINGS, PublisherSettings
from foto3d.services.publisher.upload import PublishError, prepare, upload, work_dir

log = logging.getLogger(__name__)

_request_decoder = decoder(PublishRequest)


def _decode_request(data: bytes) -> PublishRequest:
    try:
        req: PublishRequest = decode(_request_decoder, data)
    except DecodeError as exc:
        raise ServiceError(BAD_REQUEST, f"bad publish request: {exc}") from None
    return req


class PublisherService(Service):
    name = "publisher"
    description = "Uploads approved models, viewer configs and thumbnails to S3 or a local store"

    def __init__(self) -> None:
        super().__init__()
        self.cfg = PublisherSettings()
        self.store: BlobStore | None = None
        self.local_root: Path | None = None
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.published = 0
        self.failed = 0
        self.last_error = ""

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self, ctx: ServiceContext) -> None:
        self.cfg = SETTINGS.load(ctx.settings)
        if self.cfg.s3:
            self.store = self._s3(self.cfg.bucket, self.cfg.prefix)
        else:
            self.local_root = ctx.settings.data_dir / "published"
            self.local_root.mkdir(parents=True, exist_ok=True)
            self.store = LocalStore(self.local_root)
        self.ctx = ctx

    async def stop(self) -> None:
        # Uploads in flight get a while to finish (their replies are awaited); then they stop.
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=30)
        await cancel_and_wait(*self._tasks)

    def _s3(self, bucket: str, prefix: str = "") -> S3Store:
        c = self.cfg
        return S3Store(
            bucket=bucket,
            prefix=prefix,
            endpoint_url=c.endpoint_url or None,
            region=c.region or None,
            multipart_threshold=int(c.multipart_threshold_mb * MiB),
            multipart_chunksize=int(c.multipart_chunk_mb * MiB),
            max_concurrency=c.max_concurrency,
            connect_timeout=c.connect_timeout_s,
            read_timeout=c.read_timeout_s,
            retries=c.retries,
        )

    def _open_store(self, uri: str) -> BlobStore:
        """Stores for reading artifacts (same endpoint and credentials as publishing)."""
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        return self._s3(bucket, prefix)

    def health(self) -> Health:
        if self.ctx is None:
            return Health("starting")
        where = (
            f"s3://{self.cfg.bucket}/{self.cfg.prefix}" if self.cfg.s3 else f"local folder {self.local_root}"
        )
        extra = {"published": self.published, "failed": self.failed, "target": where}
        if self.last_error:
            return Health("degraded", f"last publish failed: {self.last_error}", extra)
        return Health("ok", f"publishing to {where}", extra)

    def banner(self) -> list[str]:
        if self.cfg.s3:
            return [f"publishes to s3://{self.cfg.bucket}/{self.cfg.prefix}"]
        return [
            f"publishes to the local folder {self.local_root} (customers get it through the token gateway)"
        ]

    def endpoints(self) -> list[Endpoint]:
        # Uploads take a while: each request is answered from its own task.
        return [
            serve(PUBLISHER_PUBLISH, self.publish, tasks=self._tasks, decode=_decode_request, actor="actor")
        ]

    # -- publishing ---------------------------------------------------------------------------

    def url_of(self, key: str) -> str:
        c = self.cfg
        if not c.s3:
            # Staff-only (the gateway serves the store to signed-in staff); customers never get
            # this address: the gateway hands them its own signed links instead.
            return f"{self.context.base_url.rstrip('/')}{STAFF_PUBLISHED_PREFIX}{quote(key)}"
        assert isinstance(self.store, S3Store)
        full = self.store.full_key(key)
        if c.public_base_url:
            return f"{c.public_base_url.rstrip('/')}/{full}"
        if c.endpoint_url:
            return f"{c.endpoint_url.rstrip('/')}/{c.bucket}/{full}"
        region = c.region or "us-east-1"
        return f"https://{c.bucket}.s3.{region}.amazonaws.com/{full}"

    async def publish(self, req: PublishRequest) -> PublishReply:
        lock = self._locks.setdefault(req.object_id, asyncio.Lock())
        async with lock:
            try:
                # A child of the catalog's publish span (the request carried its context), so
                # the upload is in the object's trace.
                with object_span(
                    "upload model",
                    object_id=req.object_id,
                    step="publish-upload",
                    customer=req.customer,
                    job_id=req.job_id,
                ) as span:
                    span.set_attribute("foto3d.version", req.version)
                    event = await self._publish(req)
            except (PublishError, StorageError, OSError) as exc:
                error = str(exc)
                self.failed += 1
                self.last_error = error
                log.warning("publishing %s v%d failed: %s", req.object_id, req.version, error)
                failed = ObjectPublishFailed(
                    event_id=f"publish-failed-{uuid.uuid4().hex}",
                    object_id=req.object_id,
                    ts=max(time.time(), req.not_before),
                    actor=req.actor,
                    version=req.version,
                    job_id=req.job_id,
                    error=error,
                    traceparent=current_traceparent(),
                )
                try:
                    await self.context.bus.publish(
                        subjects.object_events(req.object_id), failed, msg_id=failed.event_id
                    )
                except Exception as bus_exc:
                    log.warning("could not record the failure of %s: %r", req.object_id, bus_exc)
                raise ServiceError(FAILED, error) from None
            self.published += 1
            self.last_error = ""
            return PublishReply(event=event)

    async def _publish(self, req: PublishRequest) -> ObjectPublished:
        store = self.store
        assert store is not None
        if isinstance(store, S3Store):
            await store.check_bucket()
        progress = self._progress_reporter(req.object_id)
        with work_dir() as tmp:
            planned = await prepare(req, self.url_of, Path(tmp), self._open_store, self.cfg.thumbnail_size)
            files, sent = await upload(store, planned, self.url_of, progress)
        live = next(f.url for f in files if f.kind == "viewer_config")
        event = ObjectPublished(
            # one event per version: publishing the same version again records nothing new
            event_id=f"published-{req.object_id}-v{req.version}-{req.job_id}",
            object_id=req.object_id,
            ts=max(time.time(), req.not_before),
            actor=req.actor,
            version=req.version,
            job_id=req.job_id,
            live_url=live,
            files=files,
            uploaded=sent,
            # The upload's span: the gateway parents a fetch of this version on it.
            traceparent=current_traceparent(),
        )
        await self.context.bus.publish(subjects.object_events(req.object_id), event, msg_id=event.event_id)
        log.info("published %s v%d: %d files, %d uploaded", req.object_id, req.version, len(files), sent)
        return event

    def _progress_reporter(self, object_id: str) -> ProgressReporter:
        return ProgressReporter(self, object_id)


class ProgressReporter:
    """Sends at most ~10 progress messages a second per publish (core NATS, not stored)."""

    def __init__(self, svc: PublisherService, object_id: str) -> None:
        self.svc = svc
        self.subject = publish_progress_subject(object_id)
        self.object_id = object_id
        self.last = 0.0
        self.loop = asyncio.get_running_loop()

    def __call__(self, key: str, done: int, total: int, files_done: int, files_total: int) -> None:
        now = time.monotonic()
        final = done >= total
        if not final and now - self.last < 0.1:
            return
        self.last = now
        msg = PublishProgress(
            object_id=self.object_id,
            file=key.rsplit("/", 1)[-1],
            done=done,
            total=total,
            files_done=files_done,
            files_total=files_total,
        )
        data = msgspec.json.encode(msg)
        # called from boto3's worker threads as well as the loop
        self.loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self._send(data)))

    async def _send(self, data: bytes) -> None:
        try:
            await self.svc.context.bus.nc.publish(self.subject, data)
        except Exception:
            pass
