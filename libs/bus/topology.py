"""The declared topology: the shared streams here, each service's consumers and buckets with it.

The streams are the system's shared infrastructure (many write, many read), so they
are declared in one table below. A durable consumer or a KV bucket belongs to the
service that reads it: the service declares it (``Service.consumers`` /
``Service.buckets``, in its own ``topology.py``) and the composition root assembles
every registered service's into one :class:`Topology` (``foto3d.app.topology``).

``provision`` makes the server match the table, idempotently, at every start:
missing things are created, changed declarations update the server's config
(and say what changed), and a change the server cannot apply in place (for
example a stream's retention policy) stops the start with a clear error
instead of silently diverging.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any

from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BadRequestError, NotFoundError

from foto3d.proto import subjects
from foto3d.proto.auth import SIGN_IN_MEMORY_S
from foto3d.proto.gateway import MAX_BAN_S

log = logging.getLogger(__name__)

DAY = 86_400.0
MiB = 1024 * 1024
GiB = 1024 * MiB


@dataclass(frozen=True)
class StreamSpec:
    name: str
    subjects: list[str]
    description: str
    retention: RetentionPolicy = RetentionPolicy.LIMITS
    discard: DiscardPolicy = DiscardPolicy.OLD
    max_age: float = 0.0  # seconds, 0 = forever
    max_bytes: int = -1
    max_msgs: int = -1
    max_msg_size: int = 1 * MiB
    duplicate_window: float = 120.0
    replicas: int = 1
    allow_msg_ttl: bool = False
    max_msgs_per_subject: int = -1  # 1 keeps only the latest message per subject (last-seen state)

    def config(self, replicas: int | None = None) -> StreamConfig:
        return StreamConfig(
            name=self.name,
            description=self.description,
            subjects=list(self.subjects),
            retention=self.retention,
            discard=self.discard,
            max_age=self.max_age or None,
            max_bytes=self.max_bytes,
            max_msgs=self.max_msgs,
            max_msg_size=self.max_msg_size,
            storage=StorageType.FILE,
            num_replicas=replicas or self.replicas,
            duplicate_window=self.duplicate_window,
            allow_msg_ttl=self.allow_msg_ttl or None,
            max_msgs_per_subject=self.max_msgs_per_subject,
        )


@dataclass(frozen=True)
class ConsumerSpec:
    stream: str
    durable: str
    description: str
    filter_subject: str | None = None
    ack_wait: float = 30.0
    max_deliver: int = -1
    max_ack_pending: int = 20_000
    deliver_policy: DeliverPolicy = DeliverPolicy.ALL
    backoff: list[float] = field(default_factory=list)

    def config(self) -> ConsumerConfig:
        return ConsumerConfig(
            name=self.durable,
            durable_name=self.durable,
            description=self.description,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait,
            max_deliver=self.max_deliver,
            max_ack_pending=self.max_ack_pending,
            deliver_policy=self.deliver_policy,
            filter_subject=self.filter_subject,
            backoff=list(self.backoff) or None,
        )


@dataclass(frozen=True)
class KVSpec:
    bucket: str
    description: str
    ttl: float = 0.0  # seconds a value lives, 0 = forever
    history: int = 1
    replicas: int = 1
    per_key_ttl: bool = False


@dataclass(frozen=True)
class ObjectStoreSpec:
    """A JetStream object store (files in chunks on stream ``OBJ_<bucket>``), replicated like
    the streams: for files that must outlive any one host's disk."""

    bucket: str
    description: str


@dataclass(frozen=True)
class Topology:
    streams: list[StreamSpec]
    consumers: list[ConsumerSpec]
    kv: list[KVSpec]
    object_stores: list[ObjectStoreSpec] = field(default_factory=list)


# ---------------------------------------------------------------------------
# The shared streams.
# ---------------------------------------------------------------------------
STREAMS: list[StreamSpec] = [
    StreamSpec(
        subjects.LOGS_STREAM,
        [subjects.LOGS_ALL],
        "Log batches from SDKs, `foto3d run`, trainers and rigs; the collector stores them.",
        max_age=7 * DAY,
        max_bytes=2 * GiB,
        duplicate_window=600.0,
    ),
    StreamSpec(
        subjects.DEAD_STREAM,
        [subjects.DEAD_ALL],
        "Dead letters: malformed messages and exhausted work, each with its reason.",
        max_age=30 * DAY,
        max_bytes=1 * GiB,
    ),
    StreamSpec(
        subjects.JOB_EVENTS_STREAM,
        [subjects.JOB_EVENTS_ALL],
        "Job state changes and progress, the queue's public history.",
        max_age=90 * DAY,
    ),
    StreamSpec(
        subjects.SUBMISSIONS_STREAM,
        [subjects.JOB_SUBMIT],
        "Job submissions from rigs and the CLI, held until the queue leader takes them.",
        retention=RetentionPolicy.WORK_QUEUE,
        discard=DiscardPolicy.NEW,
        max_msgs=100_000,
    ),
    StreamSpec(
        subjects.WORK_STREAM,
        [subjects.WORK_TRAIN_ALL],
        "Training work for trainers, one message per job attempt.",
        retention=RetentionPolicy.WORK_QUEUE,
        discard=DiscardPolicy.NEW,
        max_msgs=100_000,
        # A new queue leader re-sends the work of every queued job with the same
        # Nats-Msg-Id (<job>:<attempt>); a long window keeps waiting work deduplicated.
        duplicate_window=DAY,
    ),
    StreamSpec(
        subjects.QUEUE_ADVISORIES_STREAM,
        [subjects.WORK_MAX_DELIVERIES],
        "MaxDeliver advisories of the WORK consumers, kept until the queue leader marks the job dead.",
        retention=RetentionPolicy.WORK_QUEUE,
        max_age=7 * DAY,
    ),
    StreamSpec(
        subjects.OBJECT_EVENTS_STREAM,
        [subjects.OBJECT_EVENTS_ALL],
        "Everything that happens to a catalog object, the source of its timeline.",
    ),
    StreamSpec(
        subjects.WEBHOOKS_STREAM,
        [subjects.WEBHOOKS_ALL],
        "Webhook deliveries to customers' endpoints, each kept until its endpoint accepts it "
        "(retried with backoff) or it is given up.",
        retention=RetentionPolicy.WORK_QUEUE,
        max_age=7 * DAY,
        max_msgs=1_000_000,
        # The catalog re-enqueues a redelivered source event under the same delivery id.
        duplicate_window=3600.0,
    ),
    StreamSpec(
        subjects.CATALOG_BOOKS_STREAM,
        [subjects.CATALOG_BOOKS_ALL],
        "The catalog's subscription and webhook books and its webhook delivery log, one message "
        "per row as it stands (and per subscription history entry; with the endpoints' secrets: "
        "catalog only; delivery rows expire); every catalog instance folds them in.",
        # A message is a whole row: the newest per subject is all a fold (or rebuild) needs.
        max_msgs_per_subject=1,
        # The delivery log's rows leave after proto.books.DELIVERY_LOG_KEEP_S (Nats-TTL).
        allow_msg_ttl=True,
    ),
    StreamSpec(
        subjects.HEARTBEATS_STREAM,
        [subjects.HEARTBEATS_ALL],
        "Last heartbeat of every participant (one message per subject); read by the notifier "
        "and `foto3d status`. Senders may use plain core publishes.",
        max_age=1 * DAY,
        max_msgs_per_subject=1,
        max_msg_size=64 * 1024,
    ),
    StreamSpec(
        subjects.ALERTS_STREAM,
        [subjects.ALERTS_ALL],
        "Alerts raised and resolved by the notifier.",
        max_age=90 * DAY,
    ),
    StreamSpec(
        subjects.GATEWAY_CREDENTIALS_STREAM,
        [subjects.GATEWAY_CREDENTIALS_ALL],
        "Customer credentials issued and revoked (hashes only); every token gateway folds them in.",
    ),
    StreamSpec(
        subjects.GATEWAY_USAGE_STREAM,
        [subjects.GATEWAY_USAGE_ALL],
        "Usage counts per customer, object and day, as deltas from each token gateway instance.",
        max_age=400 * DAY,
    ),
    StreamSpec(
        subjects.GATEWAY_BANS_STREAM,
        [subjects.GATEWAY_BANS_ALL],
        "Automatic IP bans; every token gateway instance applies each one until it ends.",
        max_age=MAX_BAN_S,
    ),
    StreamSpec(
        subjects.GATEWAY_PORTAL_STREAM,
        [subjects.GATEWAY_PORTAL_ALL],
        "Customer portal accounts, invitations, one-time codes and sessions; every token gateway "
        "instance folds them into its own accounts file. Accounts and invitations are kept; a "
        "session's events and a used code's step expire (per-message TTL) once they no longer matter.",
        allow_msg_ttl=True,
    ),
    StreamSpec(
        subjects.AUTH_SIGNIN_STREAM,
        [subjects.AUTH_SIGNIN_ALL],
        "Checked staff sign-ins and unlocks; every dashboard instance folds them into its "
        "sign-in limits. Kept as long as failures are remembered.",
        max_age=SIGN_IN_MEMORY_S,
        # Bounded by count, not bytes (events are ~300 bytes), so it stays out of the disk sizing
        # of the big streams; only checked attempts are published, and those are rate-limited.
        max_msgs=200_000,
        max_msg_size=4 * 1024,
    ),
    StreamSpec(
        subjects.AUTH_ACCOUNTS_STREAM,
        [subjects.AUTH_ACCOUNTS_ALL],
        "Staff accounts (password hashes, one-time code secrets, e-mail, logins), their sessions "
        "and the dashboards' cookie key; every dashboard instance folds them into its own users "
        "file. Accounts are kept; a session's events and a used code's step expire (per-message "
        "TTL) once they no longer matter.",
        allow_msg_ttl=True,
    ),
    StreamSpec(
        subjects.AUTH_NOTICES_STREAM,
        [subjects.AUTH_NOTICES_ALL],
        "Mails for one staff member about their own account (a sign-in from a new address); "
        "the notifier sends them.",
        max_age=7 * DAY,
        max_msgs=10_000,
        max_msg_size=16 * 1024,
    ),
]


def _stream_diff(want: StreamConfig, have: StreamConfig) -> dict[str, tuple[Any, Any]]:
    keys = (
        "subjects",
        "description",
        "retention",
        "discard",
        "max_age",
        "max_bytes",
        "max_msgs",
        "max_msg_size",
        "num_replicas",
        "duplicate_window",
        "allow_msg_ttl",
        "max_msgs_per_subject",
    )
    diff: dict[str, tuple[Any, Any]] = {}
    for k in keys:
        w, h = getattr(want, k), getattr(have, k)
        if k == "max_age":
            w, h = w or 0, h or 0
        if k == "allow_msg_ttl":
            w, h = bool(w), bool(h)
        if k == "subjects":
            w, h = sorted(w or []), sorted(h or [])
        if w != h:
            diff[k] = (h, w)
    return diff


class ProvisionError(RuntimeError):
    pass


async def provision_stream(js: JetStreamContext, spec: StreamSpec, replicas: int | None = None) -> str:
    want = spec.config(replicas)
    try:
        info = await js.stream_info(spec.name)
    except NotFoundError:
        await js.add_stream(want)
        return "created"
    diff = _stream_diff(want, info.config)
    if not diff:
        return "unchanged"
    # Sources are not declared here: capture rigs attach themselves (foto3d/rig/sourcing.py).
    want.sources = info.config.sources
    try:
        await js.update_stream(want)
    except BadRequestError as exc:
        changes = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in diff.items())
        raise ProvisionError(
            f"stream {spec.name}: the declaration changed ({changes}) but the server refused to "
            f"update it in place: {exc.description}. Migrate the stream by hand."
        ) from exc
    log.info(
        "updated stream %s: %s", spec.name, ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in diff.items())
    )
    return "updated"


async def provision_consumer(js: JetStreamContext, spec: ConsumerSpec) -> str:
    # Without an explicit action the server creates the consumer or updates its
    # editable fields; a non-editable change is refused, which we surface.
    try:
        await js.add_consumer(spec.stream, spec.config())
    except BadRequestError as exc:
        raise ProvisionError(f"consumer {spec.stream}/{spec.durable}: {exc.description}") from exc
    return "ok"


async def instance_copy(js: JetStreamContext, spec: ConsumerSpec, instance: str | None) -> ConsumerSpec:
    """``spec`` as one named instance's own durable consumer (``<durable>-<instance>``, provisioned),
    or ``spec`` itself for the unnamed single instance.

    Services with warm standbys (the notifier, the catalog) read every message in every
    instance this way; the declared consumer would share the messages out among them.
    """
    if instance is None:
        return spec
    own = dataclasses.replace(spec, durable=f"{spec.durable}-{instance}")
    await provision_consumer(js, own)
    return own


async def provision_kv(js: JetStreamContext, spec: KVSpec, replicas: int | None = None) -> str:
    from nats.js.api import KeyValueConfig

    cfg = KeyValueConfig(
        bucket=spec.bucket,
        description=spec.description,
        ttl=spec.ttl or None,
        history=spec.history,
        replicas=replicas or spec.replicas,
    )
    stream = f"KV_{spec.bucket}"
    try:
        info = await js.stream_info(stream)
    except NotFoundError:
        await js.create_key_value(cfg)
        if spec.per_key_ttl:
            info = await js.stream_info(stream)
            info.config.allow_msg_ttl = True
            await js.update_stream(info.config)
        return "created"
    have = info.config
    changed = (have.max_age or 0) != (spec.ttl or 0) or have.max_msgs_per_subject != spec.history
    changed = changed or (have.description or "") != spec.description
    changed = changed or (spec.per_key_ttl and not have.allow_msg_ttl)
    if not changed:
        return "unchanged"
    have.max_age = spec.ttl or None
    have.max_msgs_per_subject = spec.history
    have.description = spec.description
    if spec.per_key_ttl:
        have.allow_msg_ttl = True
    await js.update_stream(have)
    log.info("updated KV bucket %s", spec.bucket)
    return "updated"


async def provision_object_store(
    js: JetStreamContext, spec: ObjectStoreSpec, replicas: int | None = None
) -> str:
    from nats.js.api import ObjectStoreConfig

    stream = f"OBJ_{spec.bucket}"
    try:
        info = await js.stream_info(stream)
    except NotFoundError:
        cfg = ObjectStoreConfig(bucket=spec.bucket, description=spec.description, replicas=replicas or 1)
        await js.create_object_store(spec.bucket, cfg)
        return "created"
    have = info.config
    if (have.description or "") == spec.description:
        return "unchanged"
    have.description = spec.description
    await js.update_stream(have)
    log.info("updated object store %s", spec.bucket)
    return "updated"


async def provision(js: JetStreamContext, topology: Topology, replicas: int | None = None) -> dict[str, str]:
    """Create or update everything in ``topology``; returns what happened to each item."""
    result: dict[str, str] = {}
    for s in topology.streams:
        result[f"stream:{s.name}"] = await provision_stream(js, s, replicas)
    for c in topology.consumers:
        result[f"consumer:{c.stream}/{c.durable}"] = await provision_consumer(js, c)
    for kv in topology.kv:
        result[f"kv:{kv.bucket}"] = await provision_kv(js, kv, replicas)
    for obj in topology.object_stores:
        result[f"objects:{obj.bucket}"] = await provision_object_store(js, obj, replicas)
    return result
