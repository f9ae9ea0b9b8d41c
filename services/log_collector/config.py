"""The collector's settings: the ``[log_collector]`` config section plus env overrides."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Literal

import msgspec

from foto3d.libs.config import ConfigError, Settings
from foto3d.proto.logs import MAX_BATCH_BYTES

SECTION = "log_collector"
# Environment variable -> field it overrides.
ENV_OVERRIDES = {
    "FOTO3D_LOG_RETENTION_DAYS": "retention_days",
    "FOTO3D_LOG_MAX_DB_MB": "max_db_mb",
    "FOTO3D_LOG_OTLP_ENDPOINT": "otlp_endpoint",
}


class LogCollectorConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Everything an operator can tune; the defaults suit one `foto3d up` host."""

    # Records older than this are pruned (0 = keep forever).
    retention_days: Annotated[float, msgspec.Meta(ge=0)] = 14.0
    # The store is pruned oldest-first while it uses more than this (0 = no cap).
    max_db_mb: Annotated[float, msgspec.Meta(ge=0)] = 2048.0
    # How often the pruner looks, and how many rows it deletes per short transaction.
    prune_interval_s: Annotated[float, msgspec.Meta(gt=0)] = 60.0
    prune_chunk: Annotated[int, msgspec.Meta(ge=100)] = 2000
    # "normal" is safe against process crashes with WAL; "full" also survives power loss.
    synchronous: Literal["normal", "full"] = "normal"
    # Messages fetched from JetStream per transaction.
    fetch_batch: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 64
    # A batch message larger than this is dead-lettered as oversized.
    max_message_bytes: Annotated[int, msgspec.Meta(ge=1024)] = MAX_BATCH_BYTES + 64 * 1024
    # Optional second sink: OTLP/HTTP base URL (e.g. http://otel-collector:4318).
    otlp_endpoint: str | None = None
    otlp_headers: dict[str, str] = msgspec.field(default_factory=dict)
    otlp_batch: Annotated[int, msgspec.Meta(ge=1, le=50_000)] = 2000
    otlp_max_queue: Annotated[int, msgspec.Meta(ge=100)] = 100_000
    otlp_timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 10.0


def load_config(settings: Settings, env: Mapping[str, str] | None = None) -> LogCollectorConfig:
    """Read ``[log_collector]`` and apply the ``FOTO3D_LOG_*`` environment overrides."""
    env = os.environ if env is None else env
    raw = dict(settings.raw.get(SECTION, {}))
    for var, key in ENV_OVERRIDES.items():
        value = env.get(var)
        if value is None or value == "":
            continue
        if key == "otlp_endpoint":
            raw[key] = value
            continue
        try:
            raw[key] = float(value)
        except ValueError:
            raise ConfigError(f"{var} must be a number, got {value!r}") from None
    try:
        cfg = msgspec.convert(raw, LogCollectorConfig, str_keys=True)
    except msgspec.ValidationError as exc:
        where = settings.config_path or "config"
        raise ConfigError(f"{where} [{SECTION}] (or FOTO3D_LOG_*): {exc}") from exc
    if cfg.otlp_endpoint and "://" not in cfg.otlp_endpoint:
        raise ConfigError(f"otlp_endpoint {cfg.otlp_endpoint!r} needs a scheme, e.g. http://host:4318")
    return cfg
