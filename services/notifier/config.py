"""The notifier's settings: the ``[notifier]`` config section, ``FOTO3D_*`` env vars, the SMTP URL."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import unquote, urlsplit

import msgspec

from foto3d.libs.config import ConfigError, Settings
from foto3d.proto.alerts import SEVERITIES, Severity

Seconds = Annotated[float, msgspec.Meta(ge=0)]


class Route(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One routing rule: who hears about alerts that match every given condition.

    Empty conditions match everything. All matching routes contribute recipients,
    in order, until one with ``stop = true``; the default recipients get an alert
    only when no route matched it.
    """

    to: list[str] = msgspec.field(default_factory=list)
    webhooks: list[str] = msgspec.field(default_factory=list)
    severities: list[Severity] = msgspec.field(default_factory=list)
    min_severity: Severity | None = None
    source_kinds: list[str] = msgspec.field(default_factory=list)
    customers: list[str] = msgspec.field(default_factory=list)
    alert_kinds: list[str] = msgspec.field(default_factory=list)
    stop: bool = False


class NotifierSection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The ``[notifier]`` table of the config file (every key optional)."""

    smtp_url: str | None = None
    mail_from: str | None = None
    to: list[str] = msgspec.field(default_factory=list)
    webhook_url: str | None = None
    routes: list[Route] = msgspec.field(default_factory=list)
    min_severity: Severity = "warning"
    group_wait: Seconds = 0.25
    repeat_interval: Seconds = 3600.0
    resolve_after: Seconds | None = None
    rate_limit_per_hour: Annotated[int, msgspec.Meta(ge=0)] = 60
    retry_max: Annotated[float, msgspec.Meta(gt=0)] = 300.0
    context_timeout: Annotated[float, msgspec.Meta(gt=0, le=5)] = 0.5
    context_lines: Annotated[int, msgspec.Meta(ge=0, le=200)] = 20
    quiet_kinds: list[str] = msgspec.field(default_factory=lambda: ["rig"])
    send_concurrency: Annotated[int, msgspec.Meta(ge=1, le=64)] = 8


@dataclass(frozen=True)
class SmtpTarget:
    """Where and how to hand mail to an SMTP server."""

    host: str
    port: int
    username: str | None
    password: str | None
    use_tls: bool  # implicit TLS (smtps://)
    start_tls: bool | None  # None = when the server offers it; False = never

    def describe(self) -> str:
        mode = "TLS" if self.use_tls else ("plain" if self.start_tls is False else "STARTTLS if offered")
        who = f"{self.username}@" if self.username else ""
        return f"smtp {who}{self.host}:{self.port} ({mode})"


def parse_smtp_url(url: str) -> SmtpTarget:
    """``smtp://user:pass@host:port`` (STARTTLS when offered), ``smtps://`` (TLS), ``smtp+insecure://``."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"FOTO3D_SMTP_URL {url!r} is not a valid URL: {exc}") from None
    schemes = {"smtp": (587, False, None), "smtps": (465, True, False), "smtp+insecure": (25, False, False)}
    if parts.scheme not in schemes:
        raise ConfigError(
            f"FOTO3D_SMTP_URL {url!r}: unknown scheme {parts.scheme!r} "
            "(use smtp://user:pass@host:587, smtps://user:pass@host:465 or smtp+insecure://host:25)"
        )
    if not parts.hostname:
        raise ConfigError(
            f"FOTO3D_SMTP_URL {url!r} has no host (example: smtp://user:pass@mail.example.com:587)"
        )
    default_port, use_tls, start_tls = schemes[parts.scheme]
    return SmtpTarget(
        host=parts.hostname,
        port=port or default_port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        use_tls=use_tls,
        start_tls=start_tls,
    )


def _split_addresses(value: str) -> list[str]:
    return [a.strip() for a in value.replace(";", ",").split(",") if a.strip()]


def _check_address(addr: str, where: str) -> str:
    if "@" not in addr or addr.startswith("@") or addr.endswith("@") or " " in addr:
        raise ConfigError(f"{where}: {addr!r} is not an email address")
    return addr


@dataclass(frozen=True)
class NotifierConfig:
    """Everything the notifier needs, resolved from env and the config file."""

    section: NotifierSection
    smtp: SmtpTarget | None
    mail_from: str
    default_to: list[str]
    default_webhooks: list[str]

    @property
    def resolve_after(self) -> float:
        """How long an error alert must stay quiet before it closes by itself."""
        s = self.section
        return s.resolve_after if s.resolve_after is not None else max(s.repeat_interval, 60.0)

    @classmethod
    def load(cls, settings: Settings) -> NotifierConfig:
        section = settings.section("notifier", NotifierSection)
        smtp_url = os.environ.get("FOTO3D_SMTP_URL") or section.smtp_url
        smtp = parse_smtp_url(smtp_url) if smtp_url else None
        to_env = os.environ.get("FOTO3D_ALERT_TO")
        default_to = _split_addresses(to_env) if to_env else list(section.to)
        for a in default_to:
            _check_address(a, "FOTO3D_ALERT_TO" if to_env else "[notifier] to")
        for i, r in enumerate(section.routes):
            for a in r.to:
                _check_address(a, f"[notifier] routes[{i}].to")
            if r.min_severity and r.min_severity not in SEVERITIES:
                raise ConfigError(f"[notifier] routes[{i}].min_severity {r.min_severity!r} is unknown")
        hook = os.environ.get("FOTO3D_ALERT_WEBHOOK") or section.webhook_url
        hooks = [hook] if hook else []
        for h in [*hooks, *(w for r in section.routes for w in r.webhooks)]:
            if not h.startswith(("http://", "https://")):
                raise ConfigError(f"webhook URL {h!r} must start with http:// or https://")
        mail_from = (
            os.environ.get("FOTO3D_SMTP_FROM")
            or section.mail_from
            or (f"foto3d@{smtp.host}" if smtp else f"foto3d@{socket.gethostname()}")
        )
        _check_address(mail_from, "FOTO3D_SMTP_FROM")
        return cls(
            section=section, smtp=smtp, mail_from=mail_from, default_to=default_to, default_webhooks=hooks
        )
