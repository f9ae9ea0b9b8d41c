"""Where an outbox message can go: each channel delivers one message to one target.

A channel's ``send`` returns once the receiver accepted the message (SMTP 250 to DATA,
HTTP 2xx, JetStream PubAck, file renamed into place), raises :class:`Permanent` when the
receiver refused it for good, and raises anything else for a retry. Its ``name`` is
stored in each outbox row; the sender looks channels up by it, so a new channel is a
class here and a line in :func:`channels_for`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from pathlib import Path
from typing import ClassVar, Protocol

import aiohttp
import aiosmtplib

from foto3d.libs.bus.connection import Bus
from foto3d.services.notifier.settings import NotifierConfig, SmtpTarget
from foto3d.services.notifier.store import OutboxRow


class Permanent(Exception):
    """The receiver refused the message for good; retrying will not help."""


class Channel(Protocol):
    name: ClassVar[str]
    # Deliveries hold one of the ``send_concurrency`` connection slots.
    uses_slot: ClassVar[bool]
    # Each target (a person's address) gets at most ``rate_limit_per_hour`` messages.
    rate_limited: ClassVar[bool]

    async def send(self, row: OutboxRow) -> None: ...

    async def close(self) -> None: ...


class SmtpChannel:
    """Mail through the configured SMTP server."""

    name: ClassVar[str] = "smtp"
    uses_slot: ClassVar[bool] = True
    rate_limited: ClassVar[bool] = True

    def __init__(self, target: SmtpTarget | None, sender: str) -> None:
        self.pool = SmtpPool(target) if target is not None else None
        self.sender = sender

    async def send(self, row: OutboxRow) -> None:
        if self.pool is None:
            # Mail queued while SMTP was configured; it waits until it is configured again.
            raise RuntimeError("no SMTP server configured (FOTO3D_SMTP_URL) for a queued mail")
        await self.pool.send(self.sender, row.target, row.payload)

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()


class OutboxChannel:
    """Mail written as ``.eml`` files into the local outbox folder (no SMTP, or no recipients)."""

    name: ClassVar[str] = "file"
    uses_slot: ClassVar[bool] = True
    rate_limited: ClassVar[bool] = False

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def send(self, row: OutboxRow) -> None:
        await asyncio.to_thread(write_eml, eml_path(self.folder, row), row.payload)

    async def close(self) -> None:
        return None


class WebhookChannel:
    """A JSON POST to a webhook URL."""

    name: ClassVar[str] = "webhook"
    uses_slot: ClassVar[bool] = True
    rate_limited: ClassVar[bool] = False

    def __init__(self) -> None:
        self._http: aiohttp.ClientSession | None = None

    async def send(self, row: OutboxRow) -> None:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        headers = {"Content-Type": "application/json"}
        async with self._http.post(row.target, data=row.payload, headers=headers) as r:
            if 200 <= r.status < 300:
                return
            text = (await r.text())[:200]
            if 400 <= r.status < 500 and r.status not in (408, 429):
                raise Permanent(f"HTTP {r.status}: {text}")
            raise RuntimeError(f"HTTP {r.status}: {text}")

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None


class BusChannel:
    """The alert's event on the ALERTS stream (deduplicated by the row's message id)."""

    name: ClassVar[str] = "bus"
    # Local and cheap: never waits behind mail and webhooks.
    uses_slot: ClassVar[bool] = False
    rate_limited: ClassVar[bool] = False

    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    async def send(self, row: OutboxRow) -> None:
        await self.bus.publisher.publish_bytes(
            row.target, row.payload, msg_id=row.message_id, timeout=2.0, deadline=5.0
        )

    async def close(self) -> None:
        return None


def channels_for(cfg: NotifierConfig, bus: Bus, outbox_dir: Path) -> dict[str, Channel]:
    channels: list[Channel] = [
        SmtpChannel(cfg.smtp, cfg.mail_from),
        OutboxChannel(outbox_dir),
        WebhookChannel(),
        BusChannel(bus),
    ]
    return {c.name: c for c in channels}


def eml_path(outbox_dir: Path, row: OutboxRow) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "", row.message_id)[:80]
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(row.created_at))
    return outbox_dir / f"{stamp}-{row.id:06d}-{safe}.eml"


class SmtpPool:
    """Keeps a few SMTP connections open, so a burst of mail skips the connect/EHLO/STARTTLS/AUTH.

    A reused connection that the server has dropped meanwhile is replaced once,
    transparently; any other failure closes the connection and reaches the caller.
    """

    IDLE_MAX = 20.0  # seconds; servers drop idle clients, so do not keep them long

    def __init__(self, target: SmtpTarget) -> None:
        self.target = target
        self._idle: list[tuple[aiosmtplib.SMTP, float]] = []

    async def _connect(self) -> aiosmtplib.SMTP:
        t = self.target
        client = aiosmtplib.SMTP(
            hostname=t.host,
            port=t.port,
            username=t.username,
            password=t.password,
            use_tls=t.use_tls,
            start_tls=t.start_tls,
            timeout=15,
        )
        await client.connect()
        return client

    def _take(self) -> aiosmtplib.SMTP | None:
        now = time.monotonic()
        while self._idle:
            client, since = self._idle.pop()
            if client.is_connected and now - since < self.IDLE_MAX:
                return client
            client.close()
        return None

    async def send(self, sender: str, to: str, payload: bytes) -> None:
        client = self._take()
        reused = client is not None
        try:
            if client is None:
                client = await self._connect()
            try:
                await client.sendmail(sender, [to], payload)
            except (aiosmtplib.SMTPServerDisconnected, ConnectionError):
                if not reused:
                    raise
                client.close()
                client = await self._connect()
                await client.sendmail(sender, [to], payload)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            _close(client)
            codes = [r.code for r in exc.recipients]
            if codes and all(500 <= c < 600 for c in codes):
                raise Permanent(f"recipient refused: {exc}") from exc
            raise
        except aiosmtplib.SMTPResponseException as exc:
            _close(client)
            if 500 <= exc.code < 600 and not isinstance(exc, aiosmtplib.SMTPAuthenticationError):
                raise Permanent(f"SMTP {exc.code} {exc.message}") from exc
            raise
        except BaseException:
            _close(client)
            raise
        self._idle.append((client, time.monotonic()))

    async def close(self) -> None:
        while self._idle:
            client, _ = self._idle.pop()
            with contextlib.suppress(Exception):
                await client.quit()
            client.close()


def _close(client: aiosmtplib.SMTP | None) -> None:
    if client is not None:
        client.close()


def write_eml(path: Path, payload: bytes) -> None:
    """Write atomically (temp file + rename), so a crash never leaves half a mail."""
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
