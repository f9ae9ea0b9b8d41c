"""The publisher's settings: ``[publisher]`` in the config file, ``FOTO3D_S3_*`` env overrides.

Without a bucket the publisher writes to ``<data>/published`` and the token gateway serves
it through signed links, so `foto3d up` works with nothing configured.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from foto3d.libs.settings import ConfigError, Env, Table

MiB = 1024 * 1024


class PublisherSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    bucket: Annotated[
        str, Meta(description="bucket name; empty = local folder mode"), Env("FOTO3D_S3_BUCKET")
    ] = ""
    prefix: Annotated[str, Meta(description="key prefix inside the bucket"), Env("FOTO3D_S3_PREFIX")] = ""
    endpoint_url: Annotated[
        str,
        Meta(description="S3-compatible endpoint (MinIO, R2); empty = AWS"),
        Env("FOTO3D_S3_ENDPOINT_URL"),
    ] = ""
    region: Annotated[
        str, Meta(description="region (`auto` for R2); empty = the AWS chain's"), Env("FOTO3D_S3_REGION")
    ] = ""
    public_base_url: Annotated[
        str,
        Meta(
            description="where browsers reach the bucket's objects (a CDN, an R2 public domain); empty = derived"
        ),
        Env("FOTO3D_S3_PUBLIC_BASE_URL"),
    ] = ""
    multipart_threshold_mb: Annotated[
        float,
        Meta(description="files at least this large go up in parts"),
        Env("FOTO3D_S3_MULTIPART_THRESHOLD_MB"),
    ] = 64.0
    multipart_chunk_mb: Annotated[
        float, Meta(description="part size (S3's minimum is 5)"), Env("FOTO3D_S3_MULTIPART_CHUNK_MB")
    ] = 16.0
    max_concurrency: Annotated[int, Meta(description="parallel part uploads")] = 4
    connect_timeout_s: Annotated[float, Meta(description="boto3 connect timeout")] = 5.0
    read_timeout_s: Annotated[float, Meta(description="boto3 read timeout")] = 60.0
    retries: Annotated[int, Meta(description="boto3 retry attempts")] = 3
    thumbnail_size: Annotated[int, Meta(description="thumbnail edge in pixels")] = 256

    @property
    def s3(self) -> bool:
        return bool(self.bucket)


def _check(cfg: PublisherSettings) -> None:
    if cfg.multipart_chunk_mb < 5:
        raise ConfigError("[publisher] multipart_chunk_mb must be at least 5 (S3's smallest part)")


SETTINGS = Table("publisher", PublisherSettings, "the publisher", check=_check, docs="publisher.md")
