"""Settings of the queue service: the ``[queue]`` table, overridden by ``FOTO3D_QUEUE_*``."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from foto3d.libs.settings import Env, Table


class QueueSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    max_attempts: Annotated[
        int,
        Meta(ge=1, le=20, description="attempts per job (first run + retries) before it is dead"),
        Env("FOTO3D_QUEUE_MAX_ATTEMPTS"),
    ] = 3
    # Backoff before retry n (n = 1, 2, ...): min(backoff_s * 2**(n-1), backoff_max_s).
    backoff_s: Annotated[
        float,
        Meta(ge=0.0, description="delay before the first retry; doubles each retry"),
        Env("FOTO3D_QUEUE_BACKOFF_S"),
    ] = 30.0
    backoff_max_s: Annotated[
        float, Meta(ge=0.0, description="cap of the retry delay"), Env("FOTO3D_QUEUE_BACKOFF_MAX_S")
    ] = 900.0
    # A standby takes over once the lease has not been renewed for the TTL of the
    # `queue-leader` KV bucket (5 s).
    renew_s: Annotated[
        float, Meta(gt=0.0, description="leadership lease renewal interval"), Env("FOTO3D_QUEUE_RENEW_S")
    ] = 1.5
    heartbeat_s: Annotated[
        float,
        Meta(gt=0.0, description="heartbeat interval on f3d.hb.queue.<instance>"),
        Env("FOTO3D_QUEUE_HEARTBEAT_S"),
    ] = 2.0
    # The trainer's preflight says if an unchecked s3:// dataset is missing.
    s3_unchecked: Annotated[
        Literal["accept", "reject"],
        Meta(description="what to do with s3:// datasets when no S3 credentials are configured"),
        Env("FOTO3D_QUEUE_S3_UNCHECKED"),
    ] = "accept"
    check_local: Annotated[
        bool,
        Meta(
            description="check that local datasets exist (off when the queue does not see the trainers' disks)"
        ),
        Env("FOTO3D_QUEUE_CHECK_LOCAL"),
    ] = True


SETTINGS = Table("queue", QueueSettings, "the queue service", docs="queue.md")


def backoff(cfg: QueueSettings, retry_number: int) -> float:
    """Seconds to wait before retry ``retry_number`` (1-based), doubling up to the cap."""
    return float(min(cfg.backoff_s * 2 ** max(retry_number - 1, 0), cfg.backoff_max_s))
