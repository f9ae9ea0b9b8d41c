"""S3 (or any S3-compatible endpoint: AWS, MinIO, R2) as a blob store, through boto3.

Every blob carries its SHA-256 as object metadata (``sha256``), so a later ``head`` can
tell whether the bytes already there are the ones we hold (idempotent uploads) without
downloading them. Uploads ask S3 for a SHA-256 checksum too; after an upload the object
is HEADed and both are compared with the local file before it counts as stored.
Large files go up in parts (boto3's managed transfer, thresholds configurable).

boto3 is blocking, so every call runs in a worker thread. Credentials come from the
standard AWS chain (env, profile, instance role); the endpoint and region from the
arguments or ``FOTO3D_S3_ENDPOINT_URL`` / ``FOTO3D_S3_REGION``.
"""

from __future__ import annotations

import asyncio
import base64
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from foto3d.libs.storage.base import BlobInfo, BlobStore, ProgressFn, StorageError, sha256_file

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MiB = 1024 * 1024


def _describe(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return f"{err.get('Code', '?')}: {err.get('Message', '') or exc}"
    return str(exc) or type(exc).__name__


def default_endpoint() -> str | None:
    """The S3-compatible endpoint (MinIO, R2) every S3 client here uses unless told otherwise."""
    return os.environ.get("FOTO3D_S3_ENDPOINT_URL") or None


class S3Store(BlobStore):
    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        multipart_threshold: int = 64 * MiB,
        multipart_chunksize: int = 16 * MiB,
        max_concurrency: int = 4,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        retries: int = 3,
    ) -> None:
        if not bucket:
            raise StorageError("S3 store needs a bucket name")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url or default_endpoint()
        self.region = region or os.environ.get("FOTO3D_S3_REGION") or None
        self.transfer = TransferConfig(
            multipart_threshold=multipart_threshold,
            multipart_chunksize=multipart_chunksize,
            max_concurrency=max_concurrency,
        )
        self._config = Config(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"max_attempts": retries, "mode": "standard"},
            signature_version="s3v4",
        )
        self._client: S3Client | None = None
        self._lock = threading.Lock()

    @property
    def client(self) -> S3Client:
        # boto3 clients are thread-safe once built; building one is not.
        with self._lock:
            if self._client is None:
                self._client = boto3.session.Session().client(
                    "s3", endpoint_url=self.endpoint_url, region_name=self.region, config=self._config
                )
            return self._client

    def full_key(self, key: str) -> str:
        key = key.lstrip("/")
        return f"{self.prefix}/{key}" if self.prefix else key

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.full_key(key)}"

    async def put_file(
        self,
        key: str,
        path: Path,
        *,
        content_type: str | None = None,
        cache_control: str | None = None,
        progress: ProgressFn | None = None,
    ) -> BlobInfo:
        return await asyncio.to_thread(self._put_file, key, path, content_type, cache_control, progress)

    def _put_file(
        self,
        key: str,
        path: Path,
        content_type: str | None,
        cache_control: str | None,
        progress: ProgressFn | None,
    ) -> BlobInfo:
        full = self.full_key(key)
        size = path.stat().st_size
        digest = sha256_file(path)
        extra: dict[str, Any] = {"Metadata": {"sha256": digest}, "ChecksumAlgorithm": "SHA256"}
        if content_type:
            extra["ContentType"] = content_type
        if cache_control:
            extra["CacheControl"] = cache_control
        done = 0
        lock = threading.Lock()

        def callback(n: int) -> None:
            nonlocal done
            with lock:
                done += n
                if progress:
                    progress(min(done, size), size)

        try:
            self.client.upload_file(
                str(path), self.bucket, full, ExtraArgs=extra, Callback=callback, Config=self.transfer
            )
        except (ClientError, BotoCoreError, OSError) as exc:
            raise StorageError(f"uploading {self.uri(key)} failed: {_describe(exc)}") from exc
        except Exception as exc:  # boto3's transfer manager wraps errors in its own types
            raise StorageError(f"uploading {self.uri(key)} failed: {_describe(exc)}") from exc
        info = self._head(key, checksum=True)
        if info is None:
            raise StorageError(f"uploaded {self.uri(key)} but it is not there afterwards")
        if info.size != size or info.sha256 != digest:
            raise StorageError(
                f"checksum mismatch after uploading {self.uri(key)}: sent {size} bytes sha256 {digest}, "
                f"stored {info.size} bytes sha256 {info.sha256}"
            )
        if progress:
            progress(size, size)
        return BlobInfo(key=key, size=size, sha256=digest, content_type=content_type, uri=self.uri(key))

    async def head(self, key: str) -> BlobInfo | None:
        return await asyncio.to_thread(self._head, key, False)

    def head_raw(self, key: str) -> dict[str, Any] | None:
        """The whole HEAD answer (headers, metadata, checksum) or None when absent."""
        try:
            resp = self.client.head_object(Bucket=self.bucket, Key=self.full_key(key), ChecksumMode="ENABLED")
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchKey", "NotFound"):
                return None
            raise StorageError(f"cannot read {self.uri(key)}: {_describe(exc)}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"cannot read {self.uri(key)}: {_describe(exc)}") from exc
        return dict(resp)

    def _head(self, key: str, checksum: bool) -> BlobInfo | None:
        resp = self.head_raw(key)
        if resp is None:
            return None
        meta = resp.get("Metadata") or {}
        sha = meta.get("sha256")
        s3_sum = resp.get("ChecksumSHA256")
        # A single-part upload's ChecksumSHA256 is the SHA-256 of the whole object; a
        # multipart one is a checksum of the parts' checksums (ChecksumType COMPOSITE, an
        # ETag ending in "-<parts>") and cannot be compared with the file's own SHA-256.
        multipart = "-" in str(resp.get("ETag", "")) or resp.get("ChecksumType") == "COMPOSITE"
        if checksum and sha and s3_sum and not multipart and "-" not in s3_sum:
            whole = base64.b64encode(bytes.fromhex(sha)).decode()
            if whole != s3_sum:
                raise StorageError(
                    f"{self.uri(key)}: S3's SHA-256 {s3_sum} differs from the metadata's {whole}"
                )
        return BlobInfo(
            key=key,
            size=int(resp.get("ContentLength", 0)),
            sha256=sha,
            content_type=resp.get("ContentType"),
            uri=self.uri(key),
        )

    async def get_file(self, key: str, dest: Path) -> Path:
        def download() -> Path:
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                self.client.download_file(self.bucket, self.full_key(key), str(dest), Config=self.transfer)
            except (ClientError, BotoCoreError) as exc:
                raise StorageError(f"downloading {self.uri(key)} failed: {_describe(exc)}") from exc
            return dest

        return await asyncio.to_thread(download)

    async def delete(self, key: str) -> None:
        def remove() -> None:
            try:
                self.client.delete_object(Bucket=self.bucket, Key=self.full_key(key))
            except (ClientError, BotoCoreError) as exc:
                raise StorageError(f"deleting {self.uri(key)} failed: {_describe(exc)}") from exc

        await asyncio.to_thread(remove)

    async def check_bucket(self) -> None:
        """Fail early with a readable message when the bucket is missing or unreachable."""

        def check() -> None:
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code", ""))
                if code in ("404", "NoSuchBucket", "NotFound"):
                    raise StorageError(f"S3 bucket {self.bucket!r} does not exist") from exc
                raise StorageError(f"S3 bucket {self.bucket!r}: {_describe(exc)}") from exc
            except BotoCoreError as exc:
                raise StorageError(f"cannot reach S3 for bucket {self.bucket!r}: {_describe(exc)}") from exc

        await asyncio.to_thread(check)

    def presigned_get(self, key: str, expires_s: int) -> str:
        """A GET link to ``key`` valid for ``expires_s`` seconds (signed locally; no request to S3)."""
        try:
            return self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": self.full_key(key)}, ExpiresIn=expires_s
            )
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"cannot sign a link to {self.uri(key)}: {_describe(exc)}") from exc

    async def get_bytes(self, key: str, limit: int) -> bytes:
        """The whole of a small object (at most ``limit`` bytes), e.g. a viewer config."""

        def read() -> bytes:
            try:
                body = self.client.get_object(Bucket=self.bucket, Key=self.full_key(key))["Body"]
                data = body.read(limit + 1)
            except (ClientError, BotoCoreError) as exc:
                raise StorageError(f"reading {self.uri(key)} failed: {_describe(exc)}") from exc
            if len(data) > limit:
                raise StorageError(f"{self.uri(key)} is larger than {limit} bytes")
            return data

        return await asyncio.to_thread(read)
