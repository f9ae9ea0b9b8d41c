"""The collector's settings: the ``[log_collector]`` table, overridden by ``FOTO3D_LOG_*``."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from foto3d.libs.settings import ConfigError, Env, Table
from foto3d.proto.logs import MAX_BATCH_BYTES


class LogCollectorSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Everything an operator can tune; the defaults suit one `foto3d up` host."""

    retention_days: Annotated[
        float,
        Meta(ge=0, description="records older than this are pruned (0 = keep forever)"),
        Env("FOTO3D_LOG_RETENTION_DAYS"),
    ] = 14.0
    max_db_mb: Annotated[
        float,
        Meta(ge=0, description="the store is pruned oldest-first while it uses more than this (0 = no cap)"),
        Env("FOTO3D_LOG_MAX_DB_MB"),
    ] = 2048.0
    prune_interval_s: Annotated[float, Meta(gt=0, description="how often the pruner looks")] = 60.0
    prune_chunk: Annotated[int, Meta(ge=100, description="rows the pruner deletes per short transaction")] = (
        2000
    )
    synchronous: Annotated[
        Literal["normal", "full"],
        Meta(
            description='sqlite durability: "normal" survives process crashes (WAL), "full" also power loss'
        ),
    ] = "normal"
    fetch_batch: Annotated[
        int, Meta(ge=1, le=10_000, description="messages fetched from JetStream per transaction")
    ] = 64
    max_message_bytes: Annotated[
        int, Meta(ge=1024, description="a batch message larger than this is dead-lettered as oversized")
    ] = MAX_BATCH_BYTES + 64 * 1024
    otlp_endpoint: Annotated[
        str | None,
        Meta(description="optional second sink: OTLP/HTTP base URL (e.g. http://otel-collector:4318)"),
        Env("FOTO3D_LOG_OTLP_ENDPOINT"),
    ] = None
    otlp_headers: Annotated[dict[str, str], Meta(description="HTTP headers sent to the OTLP endpoint")] = (
        msgspec.field(default_factory=dict)
    )
    otlp_batch: Annotated[int, Meta(ge=1, le=50_000, description="records per OTLP request")] = 2000
    otlp_max_queue: Annotated[
        int, Meta(ge=100, description="records held for the OTLP sink before the oldest are dropped")
    ] = 100_000
    otlp_timeout_s: Annotated[float, Meta(gt=0, description="OTLP request timeout")] = 10.0


def _check(cfg: LogCollectorSettings) -> None:
    if cfg.otlp_endpoint and "://" not in cfg.otlp_endpoint:
        raise ConfigError(f"otlp_endpoint {cfg.otlp_endpoint!r} needs a scheme, e.g. http://host:4318")


SETTINGS = Table(
    "log_collector", LogCollectorSettings, "the log collector", check=_check, docs="log-server.md"
)
