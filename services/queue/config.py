"""Settings of the queue service: the ``[queue]`` table, overridden by ``FOTO3D_QUEUE_*``."""

from __future__ import annotations

import os
from typing import Annotated, Literal

import msgspec

from foto3d.libs.config import ConfigError, Settings


class QueueConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # Attempts per job (first run + retries) before it is dead.
    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=20)] = 3
    # Backoff before retry n (n = 1, 2, ...): min(backoff_s * 2**(n-1), backoff_max_s).
    backoff_s: Annotated[float, msgspec.Meta(ge=0.0)] = 30.0
    backoff_max_s: Annotated[float, msgspec.Meta(ge=0.0)] = 900.0
    # Leadership lease: the leader renews every renew_s; a standby takes over once it
    # has not been renewed for lease_ttl_s (the TTL of the `queue-leader` KV bucket).
    renew_s: Annotated[float, msgspec.Meta(gt=0.0)] = 1.5
    heartbeat_s: Annotated[float, msgspec.Meta(gt=0.0)] = 2.0
    # s3:// datasets when no S3 credentials are configured: "accept" them unchecked
    # (the trainer's preflight will say if they are missing) or "reject" them.
    s3_unchecked: Literal["accept", "reject"] = "accept"
    # Check that local datasets exist. Off when the queue does not see the trainers' disks.
    check_local: bool = True


_ENV: dict[str, str] = {
    "FOTO3D_QUEUE_MAX_ATTEMPTS": "max_attempts",
    "FOTO3D_QUEUE_BACKOFF_S": "backoff_s",
    "FOTO3D_QUEUE_BACKOFF_MAX_S": "backoff_max_s",
    "FOTO3D_QUEUE_RENEW_S": "renew_s",
    "FOTO3D_QUEUE_HEARTBEAT_S": "heartbeat_s",
    "FOTO3D_QUEUE_S3_UNCHECKED": "s3_unchecked",
    "FOTO3D_QUEUE_CHECK_LOCAL": "check_local",
}


def load_queue_config(settings: Settings) -> QueueConfig:
    raw: dict[str, object] = dict(settings.raw.get("queue", {}))
    for env, key in _ENV.items():
        value = os.environ.get(env)
        if value is not None:
            raw[key] = value
    try:
        # strict=False lets env strings such as "3" or "true" convert to numbers and booleans.
        return msgspec.convert(raw, QueueConfig, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"queue settings ([queue] or FOTO3D_QUEUE_*): {exc}") from exc


def backoff(cfg: QueueConfig, retry_number: int) -> float:
    """Seconds to wait before retry ``retry_number`` (1-based), doubling up to the cap."""
    return float(min(cfg.backoff_s * 2 ** max(retry_number - 1, 0), cfg.backoff_max_s))
