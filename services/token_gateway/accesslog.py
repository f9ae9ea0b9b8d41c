"""The access log and usage counts, both sent over the bus in batches.

Every request becomes one log record (source kind ``access``) in the log server, so
``foto3d logs --kind access --grep "cred=<id>"`` finds a credential's requests; the
object is the record's ``object_id``, and customer, credential, IP and status are
``key=value`` words of the message (the log server's full-text search finds them). Query
strings are never logged: they carry keys and signatures.

Records are batched (one JetStream message per flush, as the log SDK does) because one
message per request would cap the gateway near the client's publish rate. Usage is summed
per (day, customer, object, credential) and shared as deltas on GATEWAY_USAGE.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from foto3d.libs.bus.connection import Bus
from foto3d.libs.logsdk.batched import BatchedRecords
from foto3d.libs.tasks import cancel_and_wait
from foto3d.proto import subjects
from foto3d.proto.gateway import ACCESS_LOG_SOURCE_KIND, UsageCount, UsageDelta
from foto3d.proto.logs import Level, LogRecord

log = logging.getLogger(__name__)

MAX_BATCH = 500
MAX_BUFFERED = 50_000
MAX_PATH_CHARS = 300  # paths are the client's text: keep records small


@dataclass(frozen=True)
class Access:
    method: str
    path: str
    status: int
    ip: str
    ms: float
    bytes: int = 0
    customer: str = ""
    object_id: str = ""
    credential_id: str = ""
    reason: str = ""

    def message(self) -> str:
        path = self.path if len(self.path) <= MAX_PATH_CHARS else self.path[:MAX_PATH_CHARS] + "…"
        words = [self.method[:16], path, str(self.status), f"{self.ms:.1f}ms", f"ip={self.ip}"]
        if self.customer:
            words.append(f"customer={self.customer}")
        if self.credential_id:
            words.append(f"cred={self.credential_id}")
        words.append(f"bytes={self.bytes}")
        if self.reason:
            words.append(f"reason={self.reason.replace(' ', '_')}")
        return " ".join(words)


def utc_day(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


class AccessLog:
    def __init__(
        self, bus: Bus, instance: str, host: str, flush_s: float = 0.5, usage_flush_s: float = 5.0
    ) -> None:
        self.bus = bus
        self.instance = instance
        self.host = host
        self.usage_flush_s = usage_flush_s
        self._seq = int(time.time() * 1000) * 1000  # grows across restarts of the same instance id
        self.batches = BatchedRecords(
            bus,
            ACCESS_LOG_SOURCE_KIND,
            f"token_gateway.{instance}",
            host,
            flush_s=flush_s,
            max_batch=MAX_BATCH,
            max_buffered=MAX_BUFFERED,
            deadline_s=5.0,
        )
        self._usage: dict[tuple[str, str, str, str], list[int]] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self.batches.start("gateway-access-log")
        self._tasks = [asyncio.create_task(self._usage_loop(), name="gateway-usage")]

    async def stop(self) -> None:
        await cancel_and_wait(*self._tasks)
        self._tasks = []
        await self.batches.stop()
        await self._flush_usage()

    @property
    def dropped(self) -> int:
        return self.batches.dropped

    @property
    def sent(self) -> int:
        return self.batches.sent

    def add(self, a: Access) -> None:
        now = time.time()
        self._seq += 1
        # A refusal (4xx) and the gateway's own fault (5xx) are WARNINGs here: the fault is reported
        # once, by the ERROR record (with its traceback) the failing handler logs, which reaches the
        # notifier with the services' own records. An ERROR here too would be a second mail.
        level = Level.WARNING if a.status >= 400 else Level.INFO
        self.batches.add(
            LogRecord(
                ts=now,
                seq=self._seq,
                level=int(level),
                message=a.message(),
                logger="access",
                host=self.host,
                object_id=a.object_id or None,
            )
        )
        if a.customer:
            key = (utc_day(now), a.customer, a.object_id, a.credential_id)
            c = self._usage.get(key)
            if c is None:
                c = self._usage[key] = [0, 0, 0]
            c[0] += 1
            c[1] += 1 if a.status >= 400 else 0
            c[2] += a.bytes

    async def _usage_loop(self) -> None:
        while True:
            await asyncio.sleep(self.usage_flush_s)
            await self._flush_usage()

    async def _flush_usage(self) -> None:
        if not self._usage:
            return
        taken, self._usage = self._usage, {}
        delta = UsageDelta(
            delta_id=f"{self.instance}-{uuid.uuid4().hex}",
            instance=self.instance,
            counts=[
                UsageCount(
                    day=k[0],
                    customer=k[1],
                    object_id=k[2],
                    credential_id=k[3],
                    requests=v[0],
                    denied=v[1],
                    bytes=v[2],
                )
                for k, v in taken.items()
            ],
        )
        try:
            await self.bus.publish(
                subjects.gateway_usage(self.instance), delta, msg_id=delta.delta_id, deadline=10.0
            )
        except Exception as exc:  # put the counts back; they go out with the next delta
            log.warning("usage delta not sent (%d rows kept): %r", len(taken), exc)
            for k, v in taken.items():
                c = self._usage.setdefault(k, [0, 0, 0])
                for i in range(3):
                    c[i] += v[i]
