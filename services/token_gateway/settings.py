"""The token gateway's settings: ``[token_gateway]`` in the config file, ``FOTO3D_GATEWAY_*`` env overrides.

Where the published files live is the publisher's business: unless set here, the bucket,
prefix, endpoint and region come from ``[publisher]`` and the same ``FOTO3D_S3_*``
variables (read through :data:`PUBLISHER_STORE`, a view of those keys), so one setting
moves both. Without a bucket the files are read from ``<data>/published`` (the
publisher's local store) and served through signed links.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import msgspec
from msgspec import Meta

from foto3d.libs.config import Settings
from foto3d.libs.settings import ConfigError, Env, Table
from foto3d.proto.gateway import MAX_BAN_S

# A link can never be asked to live longer than this, whatever the config says.
HARD_MAX_LINK_TTL_S = 3600.0

Positive = Meta(gt=0)


class GatewaySettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    host: Annotated[
        str,
        Meta(description="address of the customer listener (public-facing), apart from the staff dashboard"),
        Env("FOTO3D_GATEWAY_HOST"),
    ] = "127.0.0.1"
    port: Annotated[
        int,
        Meta(
            ge=0,
            le=65535,
            description="port of the customer listener; 0 picks a free one, as does `--port 0` when this is unset",
        ),
        Env("FOTO3D_GATEWAY_PORT"),
    ] = 8090
    public_url: Annotated[
        str,
        Meta(description="the URL customers reach the listener at (a load balancer); links are built on it"),
        Env("FOTO3D_GATEWAY_PUBLIC_URL"),
    ] = ""
    link_ttl_s: Annotated[
        float,
        Meta(description="lifetime of file links in replies (10 … max_link_ttl_s)"),
        Env("FOTO3D_GATEWAY_LINK_TTL_S"),
    ] = 300.0
    max_link_ttl_s: Annotated[
        float,
        Meta(
            description="cap on any link's lifetime (above 0, at most 3600); links claiming more are refused"
        ),
    ] = 900.0
    link_secret: Annotated[
        str,
        Meta(
            description="HMAC key for self-signed links (at least 32 characters, the same on every instance); "
            "empty: a key generated once in <data>/token_gateway/link.key"
        ),
        Env("FOTO3D_GATEWAY_LINK_SECRET"),
    ] = ""
    bucket: Annotated[
        str,
        Meta(
            description="bucket of the published files; empty: the publisher's (`FOTO3D_S3_BUCKET`, `[publisher] bucket`)"
        ),
    ] = ""
    prefix: Annotated[
        str,
        Meta(
            description="key prefix in the bucket; empty: the publisher's (`FOTO3D_S3_PREFIX`, `[publisher] prefix`)"
        ),
    ] = ""
    endpoint_url: Annotated[
        str,
        Meta(
            description="S3-compatible endpoint; empty: the publisher's (`FOTO3D_S3_ENDPOINT_URL`, `[publisher] endpoint_url`)"
        ),
    ] = ""
    region: Annotated[
        str, Meta(description="S3 region; empty: the publisher's (`FOTO3D_S3_REGION`, `[publisher] region`)")
    ] = ""
    bucket_cors: Annotated[
        bool,
        Env("FOTO3D_GATEWAY_BUCKET_CORS"),
        Meta(
            description="in S3 mode, keep the bucket's CORS rule `foto3d-viewer` equal to the origins of the "
            "usable publishable keys (browsers fetch presigned links cross-origin); off: the operator sets it"
        ),
    ] = True
    local_root: Annotated[
        str, Meta(description="the publisher's local store when there is no bucket; empty: <data>/published")
    ] = ""
    test_origins: Annotated[
        list[str], Meta(description="origins where models in status `test` are shown (staging sites)")
    ] = msgspec.field(default_factory=list)
    credential_rate: Annotated[
        float, Positive, Meta(description="sustained requests per second per credential")
    ] = 50.0
    credential_burst: Annotated[int, Meta(ge=1, description="burst per credential")] = 200
    ip_rate: Annotated[float, Positive, Meta(description="sustained requests per second per client IP")] = (
        20.0
    )
    ip_burst: Annotated[int, Meta(ge=1, description="burst per client IP")] = 100
    ban_after_failures: Annotated[
        int, Meta(ge=1, description="bad credentials from one IP within ban_window_s that ban it")
    ] = 10
    ban_window_s: Annotated[float, Positive, Meta(description="window counting bad credentials")] = 60.0
    ban_s: Annotated[
        float,
        Meta(
            gt=0,
            le=MAX_BAN_S,
            description="length of an automatic ban (shared by every instance; at most 7 days)",
        ),
    ] = 900.0
    allow_ips: Annotated[
        list[str], Meta(description="CIDR list; when not empty only these networks are admitted")
    ] = msgspec.field(default_factory=list)
    deny_ips: Annotated[list[str], Meta(description="CIDR list, always refused (wins over allow_ips)")] = (
        msgspec.field(default_factory=list)
    )
    trusted_proxies: Annotated[
        list[str], Meta(description="peers (the load balancer) whose X-Forwarded-For is believed")
    ] = msgspec.field(default_factory=list)
    max_header_bytes: Annotated[int, Meta(ge=1024, description="largest request header accepted")] = 8192
    max_body_bytes: Annotated[int, Meta(ge=0, description="largest request body accepted")] = 16384
    usage_flush_s: Annotated[
        float, Positive, Meta(description="how often usage counts are shared over the bus")
    ] = 5.0
    beacon_rate: Annotated[
        float,
        Positive,
        Meta(description="sustained viewer beacons per second per key and client network (/24, /48)"),
    ] = 5.0
    beacon_burst: Annotated[
        int, Meta(ge=1, description="burst of viewer beacons per key and client network")
    ] = 60
    analytics_retention_days: Annotated[
        int,
        Meta(
            ge=1,
            le=400,
            description="days the viewer's analytics (per-day sums, no personal data) are kept; "
            "at most the usage stream's 400",
        ),
    ] = 400
    beacon_flush_s: Annotated[
        float, Positive, Meta(description="how often the viewer's beacon sums are shared over the bus")
    ] = 2.0

    @property
    def s3(self) -> bool:
        return bool(self.bucket)


class PublisherStoreView(msgspec.Struct, frozen=True, kw_only=True):
    """The publisher's keys that say where published files are."""

    bucket: Annotated[str, Env("FOTO3D_S3_BUCKET")] = ""
    prefix: Annotated[str, Env("FOTO3D_S3_PREFIX")] = ""
    endpoint_url: Annotated[str, Env("FOTO3D_S3_ENDPOINT_URL")] = ""
    region: Annotated[str, Env("FOTO3D_S3_REGION")] = ""


def _check(cfg: GatewaySettings) -> None:
    if not 0 < cfg.max_link_ttl_s <= HARD_MAX_LINK_TTL_S:
        raise ConfigError(
            f"[token_gateway] max_link_ttl_s must be above 0 and at most {HARD_MAX_LINK_TTL_S:.0f} s"
        )
    if not 10 <= cfg.link_ttl_s <= cfg.max_link_ttl_s:
        raise ConfigError(
            f"[token_gateway] link_ttl_s must be between 10 and max_link_ttl_s ({cfg.max_link_ttl_s:.0f}) s"
        )
    if cfg.link_secret and len(cfg.link_secret) < 32:
        raise ConfigError("[token_gateway] link_secret must be at least 32 characters")


SETTINGS = Table(
    "token_gateway",
    GatewaySettings,
    "the token gateway (customer API)",
    check=_check,
    docs="token-gateway.md",
)
PUBLISHER_STORE = Table(
    "publisher", PublisherStoreView, "the publisher's keys the gateway reads files from", partial=True
)

_STORE_FIELDS = ("bucket", "prefix", "endpoint_url", "region")


def load(settings: Settings, env: Mapping[str, str] | None = None) -> GatewaySettings:
    """``[token_gateway]``, with the publisher's store filled in where it names none of its own."""
    env = os.environ if env is None else env
    cfg = SETTINGS.load(settings, env)
    store = PUBLISHER_STORE.load(settings, env)
    changes: dict[str, object] = {f: getattr(store, f) for f in _STORE_FIELDS if not getattr(cfg, f)}
    port_chosen = "port" in settings.raw.get("token_gateway", {}) or bool(
        env.get("FOTO3D_GATEWAY_PORT", "").strip()
    )
    if not port_chosen and settings.http_port == 0:
        # `--port 0` asks for free ports (tests, several `up`s on one host): the customer listener too.
        changes["port"] = 0
    return msgspec.structs.replace(cfg, **changes) if changes else cfg


def local_root(cfg: GatewaySettings, settings: Settings) -> Path:
    return Path(cfg.local_root).expanduser() if cfg.local_root else settings.data_dir / "published"
