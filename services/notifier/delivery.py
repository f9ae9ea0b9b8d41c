"""The outbox sender: hands every pending message to its channel until it is accepted.

Guarantee: a message is marked sent only after the receiver accepted it (SMTP
250 to DATA, HTTP 2xx, JetStream PubAck, file renamed into place). If the
process dies between the accept and the mark, the message is sent again after
restart with the *same* Message-ID (and the bus event with the same
Nats-Msg-Id), so receivers can drop the duplicate. Temporary failures retry with
exponential backoff up to ``retry_max``; a permanent refusal (SMTP 5xx, HTTP
4xx other than 408/429) marks the row ``rejected`` with the reason.
The messages of one alert reach each target in order (a recovery never arrives
before its alert), and each e-mail recipient has a rate limit per hour: excess
mail waits (it is never dropped).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import random
import re
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import aiosmtplib

from foto3d.libs.bus.connection import Bus
from foto3d.libs.tasks import cancel_and_wait
from foto3d.services.notifier.settings import NotifierConfig, SmtpTarget
from foto3d.services.notifier.store import OutboxRow, Store

log = logging.getLogger(__name__)
HOUR = 3600.0


class Permanent(Exception):
    """The receiver refused the message for good; retrying will not help."""


@dataclass
class DeliveryHealth:
    sent: int = 0
    failures: int = 0
    rejected: int = 0
    # channel -> since when its deliveries fail (cleared by its next success)
    failing: dict[str, float] = field(default_factory=dict)
    last_error: str = ""

    @property
    def failing_since(self) -> float | None:
        return min(self.failing.values()) if self.failing else None

    last_sent_at: float | None = None
    waiting: int = 0


def eml_path(outbox_dir: Path, row: OutboxRow) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "", row.message_id)[:80]
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(row.created_at))
    return outbox_dir / f"{stamp}-{row.id:06d}-{safe}.eml"


@dataclass
class OutboxSender:
    store: Store
    cfg: NotifierConfig
    bus: Bus
    outbox_dir: Path
    health: DeliveryHealth = field(default_factory=DeliveryHealth)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None
    _http: aiohttp.ClientSession | None = None
    _sent_log: dict[str, deque[float]] = field(default_factory=lambda: defaultdict(deque))
    _inflight: set[int] = field(default_factory=set)
    _smtp: SmtpPool | None = None

    async def start(self) -> None:
        if self.cfg.smtp is not None:
            self._smtp = SmtpPool(self.cfg.smtp)
        self.outbox_dir.mkdir(parents=True, exist_ok=True)
        for target, at in await self.store.sent_since("smtp", time.time() - HOUR):
            self._sent_log[target].append(at)
        self._task = asyncio.create_task(self._run(), name="notifier:outbox")

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        if self._task:
            await cancel_and_wait(self._task)
            self._task = None
        if self._http:
            await self._http.close()
            self._http = None
        if self._smtp:
            await self._smtp.close()

    async def _run(self) -> None:
        sem = asyncio.Semaphore(self.cfg.section.send_concurrency)
        tasks: set[asyncio.Task[None]] = set()
        try:
            while True:
                self._wake.clear()
                next_at = await self._pass(sem, tasks)
                timeout = None if next_at is None else max(0.01, next_at - time.time())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout if timeout is not None else 5.0)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _pass(self, sem: asyncio.Semaphore, tasks: set[asyncio.Task[None]]) -> float | None:
        """Start delivery of every due row, in order per target; return when to look again."""
        now = time.time()
        # A delivery that ends while the rows are being read has marked its row sent or
        # failed *after* the read was queued, so the row below is stale: taking it as due
        # would send it a second time. Such rows are skipped; the delivery's end wakes
        # another pass, which reads their new state.
        inflight_at_read = set(self._inflight)
        rows = await self.store.pending()
        self.health.waiting = len(rows)
        blocked: set[tuple[str, str, str]] = set()
        next_at: float | None = None
        start: list[OutboxRow] = []
        for row in rows:
            key = (row.channel, row.target, row.alert_id)
            if row.id in self._inflight or row.id in inflight_at_read:
                blocked.add(key)
                continue
            if key in blocked:
                continue
            if row.next_attempt_at > now:
                blocked.add(key)
                next_at = min(next_at or row.next_attempt_at, row.next_attempt_at)
                continue
            if row.channel == "smtp" and (until := self._rate_limited(row.target, now)) is not None:
                await self.store.postpone(row.id, until, "rate limit: waiting for the next slot")
                blocked.add(key)
                next_at = min(next_at or until, until)
                continue
            blocked.add(key)  # one in flight per alert and target keeps its messages in order
            self._inflight.add(row.id)
            if row.channel == "smtp":
                self._sent_log[row.target].append(now)
            start.append(row)
        payloads = await self.store.payloads([r.id for r in start])
        for row in start:
            row = dataclasses.replace(row, payload=payloads.get(row.id, b""))
            t = asyncio.create_task(self._deliver(sem, row))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
        return next_at

    def _rate_limited(self, target: str, now: float) -> float | None:
        limit = self.cfg.section.rate_limit_per_hour
        if limit <= 0:
            return None
        sent = self._sent_log[target]
        while sent and sent[0] < now - HOUR:
            sent.popleft()
        if len(sent) < limit:
            return None
        return sent[0] + HOUR

    async def _deliver(self, sem: asyncio.Semaphore, row: OutboxRow) -> None:
        try:
            # Bus events are cheap and local; only mail and webhooks share the connection slots.
            async with sem if row.channel != "bus" else contextlib.nullcontext():
                try:
                    await self._send(row)
                except Permanent as exc:
                    self.health.rejected += 1
                    self.health.last_error = f"{row.channel} {row.target}: {exc}"
                    # A warning, not an error: an error would raise an alert about failing alerts.
                    log.warning("outbox: %s to %s refused for good: %s", row.channel, row.target, exc)
                    await self.store.mark_failed(row.id, str(exc), None)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self._forget_slot(row)
                    delay = min(self.cfg.section.retry_max, 0.5 * 2 ** min(row.attempts, 20))
                    delay *= random.uniform(0.8, 1.2)
                    err = f"{type(exc).__name__}: {exc}"
                    self.health.failures += 1
                    self.health.last_error = f"{row.channel} {row.target}: {err}"
                    self.health.failing.setdefault(row.channel, time.time())
                    log.warning(
                        "outbox: %s to %s failed (attempt %d), retry in %.1fs: %s",
                        row.channel,
                        row.target,
                        row.attempts + 1,
                        delay,
                        err,
                    )
                    await self.store.mark_failed(row.id, err, time.time() + delay)
                else:
                    await self.store.mark_sent(row.id)
                    self.health.sent += 1
                    self.health.last_sent_at = time.time()
                    self.health.failing.pop(row.channel, None)
        finally:
            self._inflight.discard(row.id)
            self.wake()

    def _forget_slot(self, row: OutboxRow) -> None:
        if row.channel == "smtp" and self._sent_log[row.target]:
            self._sent_log[row.target].pop()

    async def _send(self, row: OutboxRow) -> None:
        if row.channel == "smtp":
            if self._smtp is None:
                # Mail queued while SMTP was configured; it waits until it is configured again.
                raise RuntimeError("no SMTP server configured (FOTO3D_SMTP_URL) for a queued mail")
            await self._smtp.send(self.cfg.mail_from, row.target, row.payload)
        elif row.channel == "file":
            await asyncio.to_thread(write_eml, eml_path(self.outbox_dir, row), row.payload)
        elif row.channel == "webhook":
            await self._post_webhook(row.target, row.payload)
        elif row.channel == "bus":
            await self.bus.publisher.publish_bytes(
                row.target, row.payload, msg_id=row.message_id, timeout=2.0, deadline=5.0
            )
        else:
            raise Permanent(f"unknown channel {row.channel!r}")

    async def _post_webhook(self, url: str, payload: bytes) -> None:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        async with self._http.post(url, data=payload, headers={"Content-Type": "application/json"}) as r:
            if 200 <= r.status < 300:
                return
            text = (await r.text())[:200]
            if 400 <= r.status < 500 and r.status not in (408, 429):
                raise Permanent(f"HTTP {r.status}: {text}")
            raise RuntimeError(f"HTTP {r.status}: {text}")


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
