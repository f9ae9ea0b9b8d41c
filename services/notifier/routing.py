"""Who hears about an alert: the routing rules of ``[notifier]`` and the defaults."""

from __future__ import annotations

from dataclasses import dataclass

from foto3d.proto.alerts import severity_rank
from foto3d.proto.naming import OBJECT_ID_RE
from foto3d.services.notifier.model import AlertInfo
from foto3d.services.notifier.settings import NotifierConfig, Route


@dataclass(frozen=True)
class Recipients:
    emails: list[str]
    webhooks: list[str]


def customer_of(info: AlertInfo) -> str | None:
    """The customer slug: the first token of the object id (see the naming standard)."""
    if not info.object_id:
        return None
    m = OBJECT_ID_RE.match(info.object_id)
    return m.group("customer") if m else None


def _matches(route: Route, info: AlertInfo) -> bool:
    if route.severities and info.severity not in route.severities:
        return False
    if route.min_severity and severity_rank(info.severity) < severity_rank(route.min_severity):
        return False
    if route.source_kinds and (info.source_kind or "") not in route.source_kinds:
        return False
    if route.alert_kinds and info.kind not in route.alert_kinds:
        return False
    return not (route.customers and customer_of(info) not in route.customers)


def route(cfg: NotifierConfig, info: AlertInfo) -> Recipients:
    """Matching routes in order (until one says ``stop``); the defaults when none matched.

    Alerts below ``min_severity`` reach nobody (they are still shown on the Alerts page).
    """
    if severity_rank(info.severity) < severity_rank(cfg.section.min_severity):
        return Recipients([], [])
    emails: list[str] = []
    hooks: list[str] = []
    matched = False
    for r in cfg.section.routes:
        if not _matches(r, info):
            continue
        matched = True
        emails += [a for a in r.to if a not in emails]
        hooks += [h for h in r.webhooks if h not in hooks]
        if r.stop:
            break
    if not matched:
        emails = list(cfg.default_to)
        hooks = list(cfg.default_webhooks)
    return Recipients(emails, hooks)
