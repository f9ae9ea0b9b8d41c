"""What the notifier stores about an alert, and how occurrences are fingerprinted."""

from __future__ import annotations

import hashlib
import re

import msgspec

from foto3d.proto.alerts import AlertKind, Severity


class ContextLine(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A log line shown in a mail around the event that raised it."""

    ts: float
    level: int
    message: str
    source: str = ""
    seq: int | None = None


class AlertInfo(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Everything a mail says about one occurrence (stored as JSON with the alert)."""

    kind: AlertKind
    severity: Severity
    title: str
    what: str
    ts: float
    source_kind: str | None = None
    source_id: str | None = None
    host: str | None = None
    job_id: str | None = None
    object_id: str | None = None
    dataset: str | None = None
    logger: str | None = None
    exc: str | None = None
    pending: int | None = None
    progress: str | None = None
    site: str | None = None
    context: list[ContextLine] = msgspec.field(default_factory=list)


class Occurrence(msgspec.Struct, frozen=True, kw_only=True):
    """One thing that happened; occurrences with the same fingerprint share an alert."""

    fingerprint: str
    info: AlertInfo
    count: int = 1


_NUMBERS = re.compile(r"0x[0-9a-fA-F]+|\b[0-9a-fA-F]{8,}\b|\d+(?:\.\d+)?")


def normalize_message(message: str) -> str:
    """First line, numbers and long hex ids masked: ``took 12.5 s`` and ``took 9 s`` are one error."""
    first = message.strip().splitlines()[0] if message.strip() else ""
    return _NUMBERS.sub("#", first)[:300]


def _digest(*parts: str | None) -> str:
    return hashlib.sha1("\x1f".join(p or "" for p in parts).encode()).hexdigest()[:20]


def log_fingerprint(
    source_kind: str, source_id: str, logger: str, level: int, message: str, exc: str | None
) -> str:
    exc_type = exc.strip().splitlines()[-1].split(":", 1)[0] if exc and exc.strip() else ""
    return "log:" + _digest(source_kind, source_id, logger, str(level), normalize_message(message), exc_type)


def job_fingerprint(job_id: str, what: str) -> str:
    return f"job:{job_id}:{what}"


def interruption_fingerprint(kind: str, pid: str) -> str:
    return f"hb:{kind}:{pid}"


def takeover_fingerprint(kind: str, pid: str, at: float) -> str:
    return f"takeover:{kind}:{pid}:{at!r}"


# How long a story of log errors alone stays open to more errors of its source (seconds).
STORY_WINDOW = 10.0
# Which alert of a story is its root cause: a job's verdict outranks the errors it logged.
_RANK = {"log_error": 0, "job_failed": 1, "job_dead": 2}


def rank(kind: str) -> int:
    return _RANK.get(kind, 0)


# Alert kinds threaded by site: silences, and the takeovers they cause.
SITE_STORY_KINDS = ("interruption", "takeover")


def story_key(info: AlertInfo) -> str | None:
    """What groups alerts by root cause: the job they are about, else their source.

    Interruptions stand alone (a silent participant is its own story), unless their sender
    named its site: then the silences of one site (the site itself, its queue, its services)
    share a story, so a site's death and the queue's takeover read as one mail thread. A
    takeover carries the site of the holder it replaced, so it joins that site's story.
    """
    if info.kind in SITE_STORY_KINDS:
        return f"site:{info.site}" if info.site else None
    if info.job_id:
        return f"job:{info.job_id}"
    if info.source_kind and info.source_id:
        return f"src:{info.source_kind}:{info.source_id}"
    return None
