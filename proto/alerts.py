"""Alerts the notifier raises and resolves, published on ``f3d.alerts.<severity>`` (stream ALERTS).

An alert is identified by ``alert_id``; ``fingerprint`` says what it is about, so
repeats of the same problem collapse into one open alert with a ``count``.
"""

from __future__ import annotations

from typing import Literal

from foto3d.proto.base import Count, Event, Real

Severity = Literal["info", "warning", "error", "critical"]
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "error", "critical")
# takeover: a standby took a leadership lease over (news in the thread of the site that lost it).
AlertKind = Literal["log_error", "job_failed", "job_dead", "interruption", "no_trainer", "takeover"]


class AlertRaised(Event, frozen=True, kw_only=True, omit_defaults=True, tag="alert.raised/1"):
    """A new problem: the first occurrence of a fingerprint that had no open alert."""

    alert_id: str
    fingerprint: str
    kind: AlertKind
    severity: Severity
    title: str
    ts: Real
    count: Count = 1
    source_kind: str | None = None
    source_id: str | None = None
    host: str | None = None
    job_id: str | None = None
    object_id: str | None = None


class AlertResolved(Event, frozen=True, kw_only=True, omit_defaults=True, tag="alert.resolved/1"):
    """An alert closed: a participant came back ("recovered") or an error went quiet ("quiet")."""

    alert_id: str
    fingerprint: str
    kind: AlertKind
    severity: Severity
    ts: Real
    reason: str
    count: Count = 1


AlertEvent = AlertRaised | AlertResolved


def severity_rank(severity: str) -> int:
    """Order severities so 'warning and above' is a comparison; unknown ones rank lowest."""
    try:
        return SEVERITIES.index(severity)
    except ValueError:
        return -1
