"""The publisher's settings: ``[publisher]`` in the config file, ``FOTO3D_S3_*`` env overrides.

Without a bucket the publisher writes to ``<data>/published`` and the token gateway serves
it through signed links, so `foto3d up` works with nothing configured.
"""

from __future__ import annotations

import os

import msgspec

from foto3d.libs.config import ConfigError, Settings

MiB = 1024 * 1024


class PublisherSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    bucket: str = ""
    prefix: str = ""
    endpoint_url: str = ""
    region: str = ""
    # Where the bucket's objects are reachable by browsers (a CDN, an R2 public domain, ...).
    public_base_url: str = ""
    multipart_threshold_mb: float = 64.0
    multipart_chunk_mb: float = 16.0
    max_concurrency: int = 4
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 60.0
    retries: int = 3
    thumbnail_size: int = 256

    @property
    def s3(self) -> bool:
        return bool(self.bucket)


_ENV: dict[str, tuple[str, type]] = {
    "bucket": ("FOTO3D_S3_BUCKET", str),
    "prefix": ("FOTO3D_S3_PREFIX", str),
    "endpoint_url": ("FOTO3D_S3_ENDPOINT_URL", str),
    "region": ("FOTO3D_S3_REGION", str),
    "public_base_url": ("FOTO3D_S3_PUBLIC_BASE_URL", str),
    "multipart_threshold_mb": ("FOTO3D_S3_MULTIPART_THRESHOLD_MB", float),
    "multipart_chunk_mb": ("FOTO3D_S3_MULTIPART_CHUNK_MB", float),
}


def load(settings: Settings) -> PublisherSettings:
    cfg = settings.section("publisher", PublisherSettings)
    changes: dict[str, object] = {}
    for field, (env, tp) in _ENV.items():
        value = os.environ.get(env)
        if value is None:
            continue
        try:
            changes[field] = tp(value)
        except ValueError:
            raise ConfigError(f"{env} must be a number, got {value!r}") from None
    cfg = msgspec.structs.replace(cfg, **changes) if changes else cfg
    if cfg.multipart_chunk_mb < 5:
        raise ConfigError("[publisher] multipart_chunk_mb must be at least 5 (S3's smallest part)")
    return cfg
