"""Writing the messages: mail (plain text + HTML), webhook text, and the bus event.

Every message gets its own Message-ID (the outbox key; receivers can dedupe on
it) and ``References`` the alert's thread id, so a recovery mail lands in the
same thread as the alert it closes.
"""

from __future__ import annotations

import hashlib
import html
import json
from datetime import UTC, datetime
from email import charset
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formatdate
from typing import Literal
from urllib.parse import urlencode

from foto3d.proto import subjects
from foto3d.proto.alerts import AlertRaised, AlertResolved
from foto3d.proto.base import encode
from foto3d.proto.logs import RUN_LOGGER, Level
from foto3d.services.notifier.channels import BusChannel, OutboxChannel, SmtpChannel, WebhookChannel
from foto3d.services.notifier.model import AlertInfo
from foto3d.services.notifier.routing import Recipients
from foto3d.services.notifier.store import AlertRow, NewMail

MailKind = Literal["raised", "repeat", "resolved"]
MSGID_DOMAIN = "foto3d"
# Quoted-printable keeps the local outbox's .eml files readable in a text editor.
_UTF8_QP = charset.Charset("utf-8")
_UTF8_QP.header_encoding = charset.QP
_UTF8_QP.body_encoding = charset.QP


def fmt_ts(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def _short_ts(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M:%S.%f")[:-3]


def level_name(level: int) -> str:
    try:
        return Level(level).name
    except ValueError:
        return str(level)


def logs_link(base_url: str, info: AlertInfo) -> str:
    """The dashboard's logs page filtered to what the alert is about."""
    base = base_url.rstrip("/")
    if info.job_id:
        return f"{base}/logs?{urlencode({'job': info.job_id})}"
    if info.source_kind and info.source_id:
        return f"{base}/logs?{urlencode({'kind': info.source_kind, 'source': info.source_id})}"
    if info.object_id:
        return f"{base}/logs?{urlencode({'object': info.object_id})}"
    return f"{base}/logs"


def thread_id(alert_id: str) -> str:
    return f"<alert-{alert_id}@{MSGID_DOMAIN}>"


def message_id_for(alert: AlertRow, kind: MailKind, target: str) -> str:
    """The same message gets the same id at every notifier instance (see ``ledger.py``).

    The alert id is derived from what opened the alert (``store.alert_id_for``); the
    mail's place in the alert's sequence and its target make it unique.
    """
    digest = hashlib.sha256(target.encode()).hexdigest()[:10]
    return f"<{alert.id}.{kind}.{alert.mails}.{digest}@{MSGID_DOMAIN}>"


def subject_line(alert: AlertRow, kind: MailKind, count: int) -> str:
    sev = alert.severity.upper()
    if kind == "resolved":
        word = "RECOVERED" if alert.kind == "interruption" else "RESOLVED"
        return f"[foto3d {word}] {alert.title}"
    times = f" (×{count})" if count > 1 else ""
    again = " — still happening" if kind == "repeat" else ""
    return f"[foto3d {sev}]{times} {alert.title}{again}"


def _facts(alert: AlertRow, kind: MailKind, count: int, reason: str) -> list[tuple[str, str]]:
    info = alert.info
    facts: list[tuple[str, str]] = []
    if kind == "resolved":
        facts.append(("Resolved", f"{fmt_ts(alert.resolved_at or alert.last_at)} ({reason})"))
    facts.append(("When", fmt_ts(info.ts)))
    if count > 1 or kind == "repeat":
        facts.append(
            ("Count", f"{count} occurrences, first {fmt_ts(alert.opened_at)}, last {fmt_ts(alert.last_at)}")
        )
    if info.source_kind:
        facts.append(("Source", f"{info.source_kind} {info.source_id or ''}".strip()))
    for label, value in (
        ("Host", info.host),
        ("Job", info.job_id),
        ("Object", info.object_id),
        ("Dataset", info.dataset),
        ("Logger", info.logger),
        ("Progress", info.progress),
    ):
        if value:
            facts.append((label, value))
    if info.pending:
        facts.append(("Unsent work", f"{info.pending} item(s) held by the participant"))
    if alert.related:
        facts.append(("Same cause", "; ".join(alert.related)))
    facts.append(("Severity", alert.severity))
    facts.append(("Alert", f"{alert.id} ({alert.fingerprint})"))
    return facts


def _headline(alert: AlertRow, kind: MailKind, reason: str) -> str:
    if kind == "resolved":
        if alert.kind == "interruption":
            who = f"{alert.info.source_kind} {alert.info.source_id}"
            if reason.startswith("replaced"):
                return f"Recovered: {who} was restarted ({reason})."
            return f"Recovered: {who} is sending heartbeats again."
        return f"Resolved ({reason}): {alert.title}"
    return alert.info.what


def render_mail(
    alert: AlertRow,
    kind: MailKind,
    *,
    count: int,
    sender: str,
    to: str,
    base_url: str,
    reason: str = "",
    latest: str | None = None,
) -> tuple[str, bytes]:
    """One message as (Message-ID, RFC 5322 bytes)."""
    info = alert.info
    facts = _facts(alert, kind, count, reason)
    link = logs_link(base_url, info)
    headline = _headline(alert, kind, reason)
    ctx = info.context

    text = [headline, ""]
    text += [f"{k + ':':<12} {v}" for k, v in facts]
    if latest and kind == "repeat":
        text += ["", f"Latest: {latest}"]
    text += ["", f"Logs: {link}"]
    if ctx and kind != "resolved":
        text += ["", f"Last {len(ctx)} log lines:"]
        text += [f"  {_short_ts(c.ts)} {level_name(c.level):<8} {c.source:<20} {c.message}" for c in ctx]
    exc_title = "Its last stderr lines" if info.logger == RUN_LOGGER else "Exception"
    if info.exc and kind != "resolved":
        text += ["", f"{exc_title}:", info.exc]
    text += ["", "— foto3d notifier"]

    e = html.escape
    rows = "".join(
        f'<tr><th align="left" style="padding:2px 12px 2px 0;color:#666">{e(k)}</th><td>{e(v)}</td></tr>'
        for k, v in facts
    )
    lines = "".join(
        f'<tr><td style="color:#888;padding-right:8px">{e(_short_ts(c.ts))}</td>'
        f'<td style="font-weight:bold;padding-right:8px;color:{"#c0392b" if c.level >= 40 else "#555"}">'
        f'{e(level_name(c.level))}</td><td style="color:#888;padding-right:8px">{e(c.source)}</td>'
        f"<td>{e(c.message)}</td></tr>"
        for c in ctx
    )
    color = "#2e7d32" if kind == "resolved" else ("#b71c1c" if alert.severity == "critical" else "#c0392b")
    parts = [
        '<div style="font-family:system-ui,sans-serif;font-size:14px;color:#222">',
        f'<h2 style="color:{color};font-size:17px;margin:0 0 12px">{e(headline)}</h2>',
        f'<table style="border-collapse:collapse;margin-bottom:12px">{rows}</table>',
    ]
    if latest and kind == "repeat":
        parts.append(f"<p><b>Latest:</b> {e(latest)}</p>")
    parts.append(f'<p><a href="{e(link)}">Open the logs</a></p>')
    if ctx and kind != "resolved":
        parts.append(
            f'<h3 style="font-size:14px">Last {len(ctx)} log lines</h3><table style="font-family:monospace;'
            f'font-size:12px;border-collapse:collapse">{lines}</table>'
        )
    if info.exc and kind != "resolved":
        parts.append(
            f'<h3 style="font-size:14px">{e(exc_title)}</h3><pre style="color:#8a2c2c">{e(info.exc)}</pre>'
        )
    parts.append('<p style="color:#888">— foto3d notifier</p></div>')

    # The compat32 MIME classes: about 3x cheaper than EmailMessage, which matters in a burst.
    msg = MIMEMultipart("alternative")
    message_id = message_id_for(alert, kind, to)
    subject = subject_line(alert, kind, count)
    msg["Subject"] = subject if subject.isascii() else Header(subject, "utf-8").encode()
    msg["From"] = sender
    msg["To"] = to
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = message_id
    # A story's later steps join its root's thread, so a mail client shows one conversation.
    msg["References"] = thread_id(alert.thread_root)
    if kind != "raised" or alert.parent_id:
        msg["In-Reply-To"] = thread_id(alert.thread_root)
    msg["X-Foto3d-Alert"] = alert.id
    msg["X-Foto3d-Fingerprint"] = alert.fingerprint
    msg["X-Foto3d-Severity"] = alert.severity
    # MIMEText accepts a Charset at runtime; the stubs only know charset names.
    msg.attach(MIMEText("\n".join(text) + "\n", "plain", _UTF8_QP))  # type: ignore[arg-type]
    msg.attach(MIMEText("".join(parts), "html", _UTF8_QP))  # type: ignore[arg-type]
    return message_id, msg.as_bytes()


def webhook_text(alert: AlertRow, kind: MailKind, count: int, base_url: str, reason: str = "") -> bytes:
    """Slack/Teams-compatible ``{"text": ...}``."""
    info = alert.info
    head = subject_line(alert, kind, count).removeprefix("[foto3d ").replace("]", ":", 1)
    where = ", ".join(
        f"{k} {v}"
        for k, v in (
            ("source", f"{info.source_kind}/{info.source_id}" if info.source_kind else None),
            ("host", info.host),
            ("job", info.job_id),
            ("object", info.object_id),
        )
        if v
    )
    body = f"*{head}*\n{_headline(alert, kind, reason)}\n{where}\n{logs_link(base_url, info)}"
    return json.dumps({"text": body}).encode()


def messages_for(
    alert: AlertRow,
    kind: MailKind,
    recipients: Recipients,
    *,
    smtp: bool,
    sender: str,
    base_url: str,
    count: int,
    reason: str = "",
    latest: str | None = None,
) -> list[NewMail]:
    """The outbox rows for one alert message: a mail per recipient, webhooks, and the bus event.

    Without SMTP (or with no recipients) the mail goes to the local outbox folder,
    so it is never silently dropped.
    """
    out: list[NewMail] = []
    emails = recipients.emails
    channel = SmtpChannel.name if smtp and emails else OutboxChannel.name
    for to in emails or ["alerts@localhost"]:
        mid, payload = render_mail(
            alert, kind, count=count, sender=sender, to=to, base_url=base_url, reason=reason, latest=latest
        )
        out.append(NewMail(channel, to, mid, subject_line(alert, kind, count), payload))
    for hook in recipients.webhooks:
        out.append(
            NewMail(
                WebhookChannel.name,
                hook,
                message_id_for(alert, kind, hook),
                subject_line(alert, kind, count),
                webhook_text(alert, kind, count, base_url, reason),
            )
        )
    return out


def event_for(alert: AlertRow, kind: MailKind, count: int, reason: str = "") -> NewMail | None:
    """The ALERTS stream event for a raise or resolve (repeats publish nothing new)."""
    info = alert.info
    if kind == "raised":
        ev: AlertRaised | AlertResolved = AlertRaised(
            alert_id=alert.id,
            fingerprint=alert.fingerprint,
            kind=info.kind,
            severity=info.severity,
            title=alert.title,
            ts=info.ts,
            count=count,
            source_kind=info.source_kind,
            source_id=info.source_id,
            host=info.host,
            job_id=info.job_id,
            object_id=info.object_id,
        )
    elif kind == "resolved":
        ev = AlertResolved(
            alert_id=alert.id,
            fingerprint=alert.fingerprint,
            kind=info.kind,
            severity=info.severity,
            ts=alert.resolved_at or alert.last_at,
            reason=reason,
            count=alert.count,
        )
    else:
        return None
    return NewMail(
        BusChannel.name,
        subjects.alerts(alert.severity),
        f"{alert.id}:{kind}",
        str(ev.__struct_config__.tag),
        encode(ev),
    )
