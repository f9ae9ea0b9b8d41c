"""The notifier's settings: the ``[notifier]`` table, its ``FOTO3D_*`` env vars, the SMTP URL."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import unquote, urlsplit

import msgspec
from msgspec import Meta

from foto3d.libs.settings import ConfigError, Env, Table
from foto3d.proto.alerts import SEVERITIES, Severity
from foto3d.proto.rules import HostName


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


class NotifierSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The ``[notifier]`` table of the config file (every key optional)."""

    smtp_url: Annotated[
        str | None,
        Meta(
            description="smtp://user:pass@host:587 (STARTTLS when offered), smtps://… (TLS) or "
            "smtp+insecure://host:25; unset = mail goes to the local outbox"
        ),
        Env("FOTO3D_SMTP_URL"),
    ] = None
    mail_from: Annotated[
        str | None, Meta(description="sender address; default foto3d@<smtp host>"), Env("FOTO3D_SMTP_FROM")
    ] = None
    to: Annotated[
        list[str],
        Meta(description="default recipients (comma-separated in the environment)"),
        Env("FOTO3D_ALERT_TO"),
    ] = msgspec.field(default_factory=list)
    webhook_url: Annotated[
        str | None, Meta(description="default webhook (http:// or https://)"), Env("FOTO3D_ALERT_WEBHOOK")
    ] = None
    routes: Annotated[list[Route], Meta(description="routing rules, see notifier.md")] = msgspec.field(
        default_factory=list
    )
    min_severity: Annotated[Severity, Meta(description="alerts below this severity are not sent")] = "warning"
    group_wait: Annotated[float, Meta(ge=0, description="seconds to gather related alerts into one mail")] = (
        0.25
    )
    repeat_interval: Annotated[
        float, Meta(ge=0, description="seconds before a still-open alert is sent again")
    ] = 3600.0
    resolve_after: Annotated[
        Annotated[float, Meta(ge=0)] | None,
        Meta(
            description="quiet seconds after which an error alert closes (default max(repeat_interval, 60))"
        ),
    ] = None
    rate_limit_per_hour: Annotated[int, Meta(ge=0, description="mails per recipient per hour")] = 60
    retry_max: Annotated[float, Meta(gt=0, description="longest delay between delivery retries, seconds")] = (
        300.0
    )
    context_timeout: Annotated[
        float, Meta(gt=0, le=5, description="seconds to wait for the log lines around an error")
    ] = 0.5
    context_lines: Annotated[
        int, Meta(ge=0, le=200, description="log lines around an error quoted in its mail")
    ] = 20
    quiet_kinds: Annotated[
        list[str], Meta(description="source kinds whose interruptions are not alerted")
    ] = msgspec.field(default_factory=lambda: ["rig"])
    send_concurrency: Annotated[int, Meta(ge=1, le=64, description="deliveries at the same time")] = 8
    no_trainer_wait: Annotated[
        float,
        Meta(gt=0, description="seconds jobs may wait with no trainer alive before an alert"),
        Env("FOTO3D_ALERT_NO_TRAINER_WAIT"),
    ] = 300.0
    instance: Annotated[
        HostName | None,
        Meta(
            description="this instance's name where several notifiers run (one per site or more): each "
            "reads the bus through its own consumers and the lease holder sends; unset = the only instance"
        ),
        Env("FOTO3D_NOTIFIER_INSTANCE"),
    ] = None
    site_beat: Annotated[
        float,
        Meta(gt=0, description="seconds between this notifier's announcements of its site (core `site`)"),
    ] = 2.0
    site_grace: Annotated[
        float, Meta(gt=0, description='seconds without any notifier of a site before "site X down" is mailed')
    ] = 10.0
    checkin_url: Annotated[
        str | None,
        Meta(
            description="dead man's switch: URL requested every checkin_every seconds while this instance "
            "is connected (a Healthchecks or Uptime Kuma push URL; <url>/fail while mail cannot go out); "
            "unset = off"
        ),
        Env("FOTO3D_NOTIFIER_CHECKIN_URL"),
    ] = None
    checkin_every: Annotated[float, Meta(gt=0, description="seconds between check-ins")] = 60.0


SETTINGS = Table("notifier", NotifierSettings, "the notifier", docs="notifier.md")


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


def _check_address(addr: str, where: str) -> str:
    if "@" not in addr or addr.startswith("@") or addr.endswith("@") or " " in addr:
        raise ConfigError(f"{where}: {addr!r} is not an email address")
    return addr


@dataclass(frozen=True)
class NotifierConfig:
    """Everything the notifier needs, resolved from its settings."""

    section: NotifierSettings
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
    def resolve(cls, section: NotifierSettings) -> NotifierConfig:
        smtp = parse_smtp_url(section.smtp_url) if section.smtp_url else None
        for a in section.to:
            _check_address(a, "[notifier] to (FOTO3D_ALERT_TO)")
        for i, r in enumerate(section.routes):
            for a in r.to:
                _check_address(a, f"[notifier] routes[{i}].to")
            if r.min_severity and r.min_severity not in SEVERITIES:
                raise ConfigError(f"[notifier] routes[{i}].min_severity {r.min_severity!r} is unknown")
        hooks = [section.webhook_url] if section.webhook_url else []
        for h in [*hooks, *(w for r in section.routes for w in r.webhooks)]:
            if not h.startswith(("http://", "https://")):
                raise ConfigError(f"webhook URL {h!r} must start with http:// or https://")
        if section.checkin_url and not section.checkin_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"[notifier] checkin_url {section.checkin_url!r} must start with http:// or https://"
            )
        mail_from = section.mail_from or (f"foto3d@{smtp.host}" if smtp else f"foto3d@{socket.gethostname()}")
        _check_address(mail_from, "[notifier] mail_from (FOTO3D_SMTP_FROM)")
        return cls(
            section=section,
            smtp=smtp,
            mail_from=mail_from,
            default_to=list(section.to),
            default_webhooks=hooks,
        )
