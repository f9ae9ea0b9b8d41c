"""The token gateway's settings: ``[token_gateway]`` in the config file, ``FOTO3D_GATEWAY_*`` env overrides.

Where the published files live is the publisher's business: unless set here, the bucket,
prefix, endpoint and region come from ``[publisher]`` and the same ``FOTO3D_S3_*``
variables, so one setting moves both. Without a bucket the files are read from
``<data>/published`` (the publisher's local store) and served through signed links.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from foto3d.libs.config import ConfigError, Settings

# A link can never be asked to live longer than this, whatever the config says.
HARD_MAX_LINK_TTL_S = 3600.0


class GatewaySettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # The customer listener (public-facing in production), separate from the staff dashboard.
    host: str = "127.0.0.1"
    port: int = 8090
    # The URL customers reach the listener at (a load balancer); links are built on it.
    public_url: str = ""
    # Lifetime of file links in replies; at most max_link_ttl_s, itself at most one hour.
    link_ttl_s: float = 300.0
    max_link_ttl_s: float = 900.0
    # Shared HMAC key for self-signed links (every instance behind one balancer needs the same);
    # empty: a key generated once in <data>/token_gateway/link.key.
    link_secret: str = ""
    # Published files: S3 (bucket set) or a local folder (default <data>/published).
    bucket: str = ""
    prefix: str = ""
    endpoint_url: str = ""
    region: str = ""
    local_root: str = ""
    # Origins where models in status `test` may be shown (staging sites); elsewhere they are not found.
    test_origins: list[str] = msgspec.field(default_factory=list)
    # Token buckets: sustained requests per second and burst, per credential and per client IP.
    credential_rate: float = 50.0
    credential_burst: int = 200
    ip_rate: float = 20.0
    ip_burst: int = 100
    # Bad credentials from one IP within ban_window_s that ban it for ban_s.
    ban_after_failures: int = 10
    ban_window_s: float = 60.0
    ban_s: float = 900.0
    # CIDR lists: a non-empty allow list admits only those networks; deny always wins.
    allow_ips: list[str] = msgspec.field(default_factory=list)
    deny_ips: list[str] = msgspec.field(default_factory=list)
    # Client address from X-Forwarded-For only when the peer is one of these (the load balancer).
    trusted_proxies: list[str] = msgspec.field(default_factory=list)
    max_header_bytes: int = 8192
    max_body_bytes: int = 16384
    # How often usage counts are shared over the bus.
    usage_flush_s: float = 5.0

    @property
    def s3(self) -> bool:
        return bool(self.bucket)


_ENV: dict[str, tuple[str, type]] = {
    "host": ("FOTO3D_GATEWAY_HOST", str),
    "port": ("FOTO3D_GATEWAY_PORT", int),
    "public_url": ("FOTO3D_GATEWAY_PUBLIC_URL", str),
    "link_ttl_s": ("FOTO3D_GATEWAY_LINK_TTL_S", float),
    "link_secret": ("FOTO3D_GATEWAY_LINK_SECRET", str),
}
# Shared with the publisher: the same bucket, unless [token_gateway] names its own.
_STORE_ENV: dict[str, str] = {
    "bucket": "FOTO3D_S3_BUCKET",
    "prefix": "FOTO3D_S3_PREFIX",
    "endpoint_url": "FOTO3D_S3_ENDPOINT_URL",
    "region": "FOTO3D_S3_REGION",
}


def load(settings: Settings) -> GatewaySettings:
    cfg = settings.section("token_gateway", GatewaySettings)
    changes: dict[str, object] = {}
    publisher = settings.raw.get("publisher", {})
    for field, env in _STORE_ENV.items():
        if getattr(cfg, field):
            continue
        value = os.environ.get(env) or publisher.get(field)
        if value:
            changes[field] = str(value)
    for field, (env, tp) in _ENV.items():
        value = os.environ.get(env)
        if value is None:
            continue
        try:
            changes[field] = tp(value)
        except ValueError:
            raise ConfigError(f"{env} must be a number, got {value!r}") from None
    port_chosen = "port" in settings.raw.get("token_gateway", {}) or "port" in changes
    if not port_chosen and settings.http_port == 0:
        # `--port 0` asks for free ports (tests, several `up`s on one host): the customer listener too.
        changes["port"] = 0
    cfg = msgspec.structs.replace(cfg, **changes) if changes else cfg
    if not 0 <= cfg.port <= 65535:
        raise ConfigError(f"[token_gateway] port must be between 0 and 65535, got {cfg.port}")
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
    for name in ("credential_rate", "ip_rate", "ban_window_s", "ban_s", "usage_flush_s"):
        if getattr(cfg, name) <= 0:
            raise ConfigError(f"[token_gateway] {name} must be above 0")
    return cfg


def local_root(cfg: GatewaySettings, settings: Settings) -> Path:
    return Path(cfg.local_root).expanduser() if cfg.local_root else settings.data_dir / "published"
