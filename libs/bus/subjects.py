"""Every subject the system uses. All start with ``f3d.``."""

from __future__ import annotations

import re

PREFIX = "f3d"

LOGS_ALL = "f3d.logs.>"
JOB_EVENTS_ALL = "f3d.jobs.events.>"
JOB_SUBMIT = "f3d.jobs.submit"
WORK_TRAIN_ALL = "f3d.work.train.>"
OBJECT_EVENTS_ALL = "f3d.objects.events.>"
HEARTBEATS_ALL = "f3d.hb.>"
ALERTS_ALL = "f3d.alerts.>"
DEAD_ALL = "f3d.dead.>"

_TOKEN_RE = re.compile(r"[^A-Za-z0-9_-]")


def token(value: str) -> str:
    """Make ``value`` safe as one subject token (no dots, spaces or wildcards)."""
    return _TOKEN_RE.sub("_", value) or "_"


def logs(source_kind: str, source_id: str) -> str:
    return f"f3d.logs.{token(source_kind)}.{token(source_id)}"


def job_events(job_id: str) -> str:
    return f"f3d.jobs.events.{token(job_id)}"


def work_train(priority: str) -> str:
    return f"f3d.work.train.{token(priority)}"


def object_events(object_id: str) -> str:
    return f"f3d.objects.events.{token(object_id)}"


def heartbeat(kind: str, pid: str) -> str:
    return f"f3d.hb.{token(kind)}.{token(pid)}"


def alerts(severity: str) -> str:
    return f"f3d.alerts.{token(severity)}"


def dead(origin: str) -> str:
    """Dead-letter subject for messages that came from ``origin`` (a stream name, lowercased)."""
    return f"f3d.dead.{token(origin.lower())}"


# Request/reply APIs live under f3d.api.* so they never fall inside a stream's subjects
# (JetStream would answer a request on a stream subject with a PubAck).
API_PREFIX = "f3d.api"
