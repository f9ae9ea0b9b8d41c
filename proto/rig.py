"""Capture rigs: what a rig keeps in its own JetStream server and forwards to a site.

A rig runs a nats-server with its own JetStream domain, joined to each site's hub as a
leaf node. The capture tool writes to it (log batches on the usual ``f3d.logs.rig.<id>``
subjects, dataset manifests on ``f3d.rig.datasets.<rig>``). The site in use *sources*
the rig's log stream over the leaf connection, through a durable consumer on the rig
(``rig_source_consumer``) that delivers on ``rig_source_subject``; the rig agent
forwards dataset submissions itself, once their files are uploaded. The names of the
rig-local streams, the sourcing consumer and the leaf link's filters live here.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import msgspec

from foto3d.proto.base import Count, Int, Real
from foto3d.proto.jobs import Priority, TrainOptions
from foto3d.proto.rules import ObjectId
from foto3d.proto.subjects import LOGS_ALL

RigId = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$")]

# Streams on the rig's own server (JetStream domain ``rig-<id>``), never on a site.
RIG_LOGS_STREAM = "RIG_LOGS"
RIG_LOGS_SUBJECTS = (LOGS_ALL,)
RIG_DATASETS_STREAM = "RIG_DATASETS"
RIG_DATASETS_ALL = "f3d.rig.datasets.>"


# What the rig stores never crosses the leaf link as plain messages, in either direction:
# a site's log traffic must not land in the rig's outbox, and the rig's records reach the
# site only by sourcing (else the site would store them twice). Everything else (the rig's
# heartbeats above all) crosses live, as if published at the site.
LEAF_DENIED = (LOGS_ALL, RIG_DATASETS_ALL)
# The site's leafnode port when a site's URL names none (the nats-server default).
LEAFNODE_PORT = 7422
# Beside an uploaded dataset's files in a site's store: the ``RigDataset`` (JSON) listing every
# file with its size and SHA-256. It goes up last, so its presence says the upload is complete;
# a trainer checks every file it downloads against it. (A dot-name: no capture file has one.)
DATASET_MANIFEST = ".foto3d-manifest.json"


def rig_datasets_subject(rig_id: str) -> str:
    return f"f3d.rig.datasets.{rig_id}"


def rig_domain(rig_id: str) -> str:
    """The rig server's JetStream domain: distinct per rig, so a leaf link never merges streams."""
    return f"rig-{rig_id}"


def rig_js_api(rig_id: str) -> str:
    """The rig's JetStream API as a site reaches it over the leaf link (``external.api``)."""
    return f"$JS.{rig_domain(rig_id)}.API"


def rig_source_consumer(site: str) -> str:
    """The durable consumer on the rig's log stream that feeds ``site``; one exists at a time."""
    return f"to-{site}"


def rig_source_subject(rig_id: str, site: str) -> str:
    """Where that consumer delivers; only ``site``'s sourcing listens there."""
    return f"f3d.leaf.{rig_id}.{site}"


class DatasetFile(msgspec.Struct, frozen=True, kw_only=True):
    """One file of a dataset, as it was when it was submitted (the upload must match it)."""

    path: Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]  # relative, '/'-separated
    size: Count
    sha256: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]


class RigDataset(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A dataset submission as the rig stores it until its files are uploaded.

    ``request_id`` is the idempotency key end to end: it is the rig-local ``Nats-Msg-Id``,
    the upload folder's name, and the forwarded ``SubmitRequest.request_id``.
    """

    request_id: Annotated[str, msgspec.Meta(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
    rig_id: RigId
    object_id: ObjectId
    folder: str  # where the files are on the rig
    files: list[DatasetFile]
    priority: Priority = Priority.NORMAL
    options: TrainOptions = msgspec.field(default_factory=TrainOptions)
    submitted_at: Real = 0.0
    submitted_by: str = ""


class LinkState(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class RigProblem(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """An error for the operator: what happened, in plain words, and what to do about it."""

    ts: Real
    text: str
    action: str
    source: str = "agent"  # "agent" (forwarding, uploads) or "log" (a record the rig logged)
    object_id: str | None = None
    level: Int = 40
    # The failing step's own words: the last lines of its stderr (a command under
    # `foto3d run`) or of its traceback, a few and each cut short.
    detail: list[str] = msgspec.field(default_factory=list)


class UploadProgress(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    request_id: str
    object_id: str
    done_bytes: Count
    total_bytes: Count
    rate_bps: Real = 0.0
    eta_s: Real | None = None


class SiteState(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    name: str
    reachable: bool
    last_ok: Real | None = None
    latency_ms: Real | None = None
    error: str | None = None


class RigStatus(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What the agent reports about itself (``foto3d rig status``, the panel)."""

    rig_id: str
    ts: Real
    link: LinkState
    since: Real  # when ``link`` last changed
    site: str | None = None  # the site now in use
    sites: list[SiteState] = msgspec.field(default_factory=list)
    logs_waiting: Count = 0  # log batches not yet forwarded
    datasets_waiting: Count = 0
    upload: UploadProgress | None = None
    problems: list[RigProblem] = msgspec.field(default_factory=list)
    forwarded_logs: Count = 0
    forwarded_datasets: Count = 0
    agent_pid: Count | None = None


SCHEMAS = (RigDataset, RigStatus)
