"""LogShipper: gets log records from any thread to JetStream without ever blocking it.

The caller's side is one ``deque.append`` (thread-safe under the GIL). A
background thread with its own asyncio loop does everything else:

* the *pump* drains the queue, numbers the records (``seq``), truncates oversized
  text and packs many records into one ``LogBatch`` message (below
  ``MAX_BATCH_BYTES``);
* the *sender* publishes batches one at a time and waits for each JetStream
  ack, with ``Nats-Msg-Id = batch_id``. One batch in flight keeps the order per
  source exact: a batch that failed is never overtaken by a newer one;
* while NATS is unreachable, or a publish is not acknowledged, batches go to the
  on-disk :class:`~foto3d.libs.logsdk.spool.Spool` and are replayed, oldest
  first and with their original ids, before anything newer is sent;
* when the spool cannot be written either (a full disk), batches are held in
  memory, up to ``held_max_bytes``, and written or sent as soon as either works
  again; beyond that the oldest are dropped and counted, and an ERROR record says
  exactly how many records were lost (the notifier mails it).

A JetStream publish that timed out may still have been stored; its replay uses
the same ``Nats-Msg-Id``, so the stream's duplicate window drops the copy (and
the collector's ``(source_kind, source_id, seq)`` key drops it after that).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import re
import socket
import sys
import threading
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import msgspec
import nats.errors

from foto3d import __version__
from foto3d.libs.bus.connection import Bus, connect
from foto3d.libs.config import ConfigError, Settings, default_data_dir, split_urls
from foto3d.libs.heartbeat import HeartbeatSender
from foto3d.libs.logsdk.seq import SeqCounter
from foto3d.libs.logsdk.spool import Dropped, Spool
from foto3d.libs.tasks import cancel_and_wait
from foto3d.proto import subjects
from foto3d.proto.logs import (
    MAX_BATCH_BYTES,
    MAX_EXC_CHARS,
    MAX_MESSAGE_CHARS,
    Level,
    LogBatch,
    LogRecord,
    truncate,
)

DEFAULT_QUEUE_MAX = 200_000
DEFAULT_BATCH_MAX_RECORDS = 1_000
DEFAULT_FLUSH_INTERVAL = 0.2
DEFAULT_SPOOL_MAX_BYTES = 256 * 1024 * 1024
DEFAULT_HEARTBEAT_INTERVAL = 5.0
DEFAULT_PUBLISH_TIMEOUT = 2.0
# Batches kept in memory while the spool cannot be written (disk full).
DEFAULT_HELD_MAX_BYTES = 64 * 1024 * 1024
# Batches waiting in memory for the sender; beyond this the pump leaves records in the
# queue (while online) so a slow server slows the pump, not the caller.
OUTBOX_MAX_BATCHES = 8
# A shipper that cannot connect within this long starts spooling what it has.
CONNECT_GRACE_S = 2.0
# At most one "records were lost" record per this many seconds.
LOSS_REPORT_INTERVAL_S = 10.0
SDK_LOGGER = "foto3d.logsdk"

_KIND_RE = re.compile(r"^[a-z0-9_-]{1,32}$")
_ID_RE = re.compile(r"^[A-Za-z0-9_.:@-]{1,128}$")

# (ts, level, message, logger, exc, job_id, object_id)
_Item = tuple[float, int, str, str, str | None, str | None, str | None]


class SpoolFullWarning(RuntimeWarning):
    """The spool reached its size cap and dropped its oldest batches."""


class QueueFullWarning(RuntimeWarning):
    """Records arrived faster than they could be shipped or spooled and were dropped."""


def safe_source_id(text: str) -> str:
    """Turn any text (a command name, a host name) into a valid source id."""
    cleaned = re.sub(r"[^A-Za-z0-9_.:@-]", "_", text)[:128]
    return cleaned or "_"


@dataclass(frozen=True)
class _Batch:
    batch_id: str
    first_seq: int
    last_seq: int
    count: int
    payload: bytes


class LogShipper:
    """Ships log records of one source (``source_kind``/``source_id``) in batches.

    ``emit`` never blocks: it appends to a bounded in-memory queue. When the
    queue is full new records are dropped and counted, and a WARNING record
    reporting the loss is shipped as soon as there is room (the queue is sized
    for minutes of heavy logging; the spool, not the queue, rides out outages).
    """

    def __init__(
        self,
        source_kind: str,
        source_id: str,
        *,
        nats_urls: list[str] | None = None,
        data_dir: str | Path | None = None,
        host: str | None = None,
        job_id: str | None = None,
        object_id: str | None = None,
        spool_dir: str | Path | None = None,
        spool_max_bytes: int = DEFAULT_SPOOL_MAX_BYTES,
        queue_max: int = DEFAULT_QUEUE_MAX,
        batch_max_records: int = DEFAULT_BATCH_MAX_RECORDS,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
        heartbeat: bool | None = None,
        heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL,
        persist_seq: bool = True,
        publish_timeout: float = DEFAULT_PUBLISH_TIMEOUT,
        held_max_bytes: int = DEFAULT_HELD_MAX_BYTES,
        version: str = __version__,
    ) -> None:
        if not _KIND_RE.match(source_kind):
            raise ValueError(f"source kind {source_kind!r} must match [a-z0-9_-]{{1,32}}")
        if not _ID_RE.match(source_id):
            raise ValueError(f"source id {source_id!r} must match [A-Za-z0-9_.:@-]{{1,128}}")
        if queue_max < 1 or batch_max_records < 1 or flush_interval <= 0 or spool_max_bytes < 1:
            raise ValueError(
                "queue_max, batch_max_records, flush_interval and spool_max_bytes must be positive"
            )
        self.source_kind = source_kind
        self.source_id = source_id
        self.host = host or socket.gethostname()
        self.job_id = job_id if job_id is not None else (os.environ.get("FOTO3D_JOB_ID") or None)
        self.object_id = object_id if object_id is not None else (os.environ.get("FOTO3D_OBJECT_ID") or None)
        self.version = version
        self.subject = subjects.logs(source_kind, source_id)
        self._nats_urls = nats_urls
        self._data_dir = Path(data_dir).expanduser() if data_dir is not None else None
        root = (
            spool_dir
            or os.environ.get("FOTO3D_LOG_SPOOL")
            or (self._data_dir or default_data_dir()) / "log-spool"
        )
        self.spool_dir = Path(root).expanduser()
        self._spool = Spool(self.spool_dir, spool_max_bytes)
        seq_path = self.spool_dir / "seq" / f"{source_kind}+{source_id}" if persist_seq else None
        self._seq = SeqCounter(seq_path)
        self._queue: collections.deque[_Item] = collections.deque()
        self._queue_max = queue_max
        self._batch_max = batch_max_records
        self._flush_interval = flush_interval
        self._publish_timeout = publish_timeout
        self._heartbeat = (source_kind == "rig") if heartbeat is None else heartbeat
        self._heartbeat_interval = heartbeat_interval
        self._outbox: collections.deque[_Batch] = collections.deque()
        # Spooled in order after the spool's files; only in memory while the disk refuses them.
        self._held: collections.deque[_Batch] = collections.deque()
        self._held_bytes = 0
        self._held_max = held_max_bytes
        self._disk_lost = 0
        self._disk_lost_reported = 0
        self._disk_error = ""
        self.lost_at_exit = 0
        self._spooling = False
        self._bus: Bus | None = None
        self._hb: HeartbeatSender | None = None
        self._started = time.monotonic()
        self._closed = False
        self._close_lock = threading.RLock()  # a SIGTERM handler may close while close() runs
        # Counters (approximate under heavy multi-thread contention; for stats only).
        self.dropped = 0
        self._dropped_reported = 0
        self._spool_lost = 0
        self._spool_lost_reported = 0
        self._last_spool_drop: Dropped | None = None
        self._last_loss_report = 0.0
        self.published_records = 0
        self.published_batches = 0
        self.spooled_batches = 0
        self.replayed_batches = 0
        self._encoder = msgspec.json.Encoder()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._thread = threading.Thread(
            target=self._thread_main, name=f"foto3d-logsdk-{source_id}", daemon=True
        )
        self._thread.start()
        self._ready.wait()

    # ---------------------------------------------------------------- caller side

    def emit(
        self,
        level: int,
        message: str,
        *,
        logger: str = "",
        exc: str | None = None,
        job_id: str | None = None,
        object_id: str | None = None,
        ts: float | None = None,
    ) -> None:
        """Queue one record; returns at once, whatever the state of NATS or the disk."""
        q = self._queue
        if len(q) >= self._queue_max or self._closed:
            self.dropped += 1
            return
        q.append((time.time() if ts is None else ts, level, message, logger, exc, job_id, object_id))
        if len(q) == self._batch_max:
            self._kick()

    def flush(self, timeout: float = 10.0, *, wait_for_reconnect: bool = True) -> bool:
        """Wait until every queued record is acknowledged by JetStream.

        Returns False if that did not happen within ``timeout``. With
        ``wait_for_reconnect=False`` it returns False as soon as everything is in
        the spool while NATS is unreachable (for a process about to exit).
        """
        if self._closed or not self._thread.is_alive():
            return not self._queue
        if threading.current_thread() is self._thread:
            return False  # called from our own thread (a log call inside the SDK): cannot wait on itself
        fut = asyncio.run_coroutine_threadsafe(self._flush(wait_for_reconnect), self._loop)
        try:
            return fut.result(timeout)
        except TimeoutError:
            fut.cancel()
            return False

    def wait_held(self, timeout: float) -> bool:
        """Wait until nothing is held in memory only (the disk or NATS took it); for a process
        about to exit while the disk is full. True when nothing is held any more."""
        if self._closed or not self._thread.is_alive():
            return not self._held
        fut = asyncio.run_coroutine_threadsafe(self._wait_held(), self._loop)
        try:
            return fut.result(timeout)
        except TimeoutError:
            fut.cancel()
            return False

    async def _wait_held(self) -> bool:
        while True:
            self._pump_once()
            self._send_wake.set()
            if not self._held and not self._queue and not self._outbox:
                return True
            self._progress.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), 0.2)

    def close(self, timeout: float = 10.0) -> bool:
        """Flush, then spool whatever is still unacknowledged, and stop the thread.

        Returns True when everything was delivered (nothing of this shipper left
        in the spool). Safe to call twice and from ``atexit``.
        """
        with self._close_lock:
            if self._closed:
                return True
            delivered = self.flush(timeout, wait_for_reconnect=False)
            self._closed = True
        if self._thread.is_alive():
            fut = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
            with contextlib.suppress(TimeoutError):
                fut.result(max(timeout, 5.0))
            self._thread.join(5.0)
        return delivered and not self._queue

    def __enter__(self) -> LogShipper:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def thread_ident(self) -> int | None:
        """The shipper thread's id: records logged there are about shipping itself."""
        return self._thread.ident

    @property
    def closed(self) -> bool:
        return self._closed

    def stats(self) -> dict[str, int]:
        """Counters for tests, benchmarks and heartbeats."""
        return {
            "queued": len(self._queue),
            "outbox_batches": len(self._outbox),
            "dropped": self.dropped,
            "spool_lost_records": self._spool_lost,
            "held_batches": len(self._held),
            "disk_lost_records": self._disk_lost,
            "published_records": self.published_records,
            "published_batches": self.published_batches,
            "spooled_batches": self.spooled_batches,
            "replayed_batches": self.replayed_batches,
            "next_seq": self._seq.peek(),
        }

    def _kick(self) -> None:
        with contextlib.suppress(RuntimeError):  # loop already closed
            self._loop.call_soon_threadsafe(self._wake.set)

    # ---------------------------------------------------------------- background thread

    def _thread_main(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        finally:
            self._loop.close()

    async def _main(self) -> None:
        self._wake = asyncio.Event()
        self._send_wake = asyncio.Event()
        self._progress = asyncio.Event()
        self._stopped = asyncio.Event()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._connector()),
            loop.create_task(self._pump()),
            loop.create_task(self._sender()),
        ]
        if self._heartbeat:
            self._tasks.append(loop.create_task(self._heartbeats()))
        self._ready.set()
        await self._stopped.wait()

    def _resolve_urls(self) -> list[str]:
        if self._nats_urls:
            return list(self._nats_urls)
        env = os.environ.get("FOTO3D_NATS_URL")
        if env:
            return split_urls(env)
        from foto3d.libs.discovery import resolve_nats_urls

        return resolve_nats_urls(Settings.load(data_dir=self._data_dir))

    async def _connector(self) -> None:
        warned = False
        while True:
            try:
                urls = self._resolve_urls()
                break
            except ConfigError as exc:
                if not warned:
                    warned = True
                    print(
                        f"foto3d logsdk: {exc}; spooling logs to {self.spool_dir} until found",
                        file=sys.stderr,
                    )
                await asyncio.sleep(5.0)
        self._bus = await connect(urls, f"foto3d-logsdk-{self.source_kind}-{self.source_id}")
        self._send_wake.set()

    def _online(self) -> bool:
        return self._bus is not None and bool(self._bus.nc.is_connected)

    def _offline(self) -> bool:
        """True when records should go straight to disk instead of waiting in memory."""
        if self._spooling:
            return True
        if self._bus is None:
            return time.monotonic() - self._started > CONNECT_GRACE_S
        return not self._bus.nc.is_connected

    async def _pump(self) -> None:
        while True:
            timeout = self._flush_interval if self._online() else max(self._flush_interval, 1.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            self._pump_once()

    def _pump_once(self, everything: bool = False) -> int:
        """Move queued records into batches; returns how many records were taken."""
        self._report_losses()
        offline = everything or self._offline()
        q = self._queue
        taken = 0
        while q and (offline or len(self._outbox) < OUTBOX_MAX_BATCHES):
            n = min(len(q), self._batch_max)
            items = [q.popleft() for _ in range(n)]
            taken += n
            for batch in self._make_batches(items):
                if offline or self._spooling:
                    self._spool_batch(batch)
                else:
                    self._outbox.append(batch)
        if taken:
            self._send_wake.set()
        return taken

    def _make_batches(self, items: list[_Item]) -> list[_Batch]:
        job, obj = self.job_id, self.object_id
        records = []
        next_seq = self._seq.next
        for ts, level, msg, logger, exc, rjob, robj in items:
            if len(msg) > MAX_MESSAGE_CHARS:
                msg = truncate(msg, MAX_MESSAGE_CHARS)
            if exc is not None and len(exc) > MAX_EXC_CHARS:
                exc = truncate(exc, MAX_EXC_CHARS)
            records.append(
                LogRecord(
                    ts=ts,
                    seq=next_seq(),
                    level=level,
                    message=msg,
                    logger=logger,
                    exc=exc,
                    job_id=rjob if rjob != job else None,
                    object_id=robj if robj != obj else None,
                )
            )
        return self._encode(records)

    def _encode(self, records: list[LogRecord]) -> list[_Batch]:
        batch_id = uuid.uuid4().hex
        payload = self._encoder.encode(
            LogBatch(
                batch_id=batch_id,
                source_kind=self.source_kind,
                source_id=self.source_id,
                host=self.host,
                records=records,
                job_id=self.job_id,
                object_id=self.object_id,
            )
        )
        if len(payload) > MAX_BATCH_BYTES and len(records) > 1:
            half = len(records) // 2
            return self._encode(records[:half]) + self._encode(records[half:])
        return [_Batch(batch_id, records[0].seq, records[-1].seq, len(records), payload)]

    def _spool_batch(self, b: _Batch) -> None:
        """To disk, behind whatever is held in memory already (the order per source stays)."""
        self._held.append(b)
        self._held_bytes += len(b.payload)
        self._write_held()

    def _write_held(self) -> None:
        while self._held:
            b = self._held[0]
            try:
                dropped = self._spool.write(
                    self.source_kind, self.source_id, b.first_seq, b.last_seq, b.count, b.batch_id, b.payload
                )
            except OSError as exc:
                # A full (or read-only) disk: keep it in memory and try again later.
                self._disk_error = f"{exc.strerror or exc}"
                self._trim_held()
                return
            self._held.popleft()
            self._held_bytes -= len(b.payload)
            self.spooled_batches += 1
            self._progress.set()
            if dropped is not None:
                self._on_spool_full(dropped)

    def _trim_held(self) -> None:
        while self._held_bytes > self._held_max and len(self._held) > 1:
            b = self._held.popleft()
            self._held_bytes -= len(b.payload)
            self._disk_lost += b.count

    def _on_spool_full(self, d: Dropped) -> None:
        self._spool_lost += d.records
        self._last_spool_drop = d
        text = (
            f"log spool {self._spool.dir} reached its cap of {self._spool.max_bytes} bytes: "
            f"dropped the {d.batches} oldest batch(es), {d.records} record(s) "
            f"(seq {_ranges(d.seq_ranges)}) to make room for newer ones"
        )
        warnings.warn(text, SpoolFullWarning, stacklevel=2)
        self._report_losses()

    def _report_losses(self, force: bool = False) -> None:
        """Ship a WARNING record that says what was lost (queue overflow or spool cap).

        At most one per LOSS_REPORT_INTERVAL_S, carrying the totals since the last one.
        """
        lost_q = self.dropped - self._dropped_reported
        lost_s = self._spool_lost - self._spool_lost_reported
        lost_d = self._disk_lost - self._disk_lost_reported
        if lost_q <= 0 and lost_s <= 0 and lost_d <= 0:
            return
        now = time.monotonic()
        if not force and self._last_loss_report and now - self._last_loss_report < LOSS_REPORT_INTERVAL_S:
            return
        self._last_loss_report = now
        parts = []
        if lost_q > 0:
            self._dropped_reported += lost_q
            msg = f"log queue full (max {self._queue_max} records): {lost_q} record(s) dropped"
            warnings.warn(msg, QueueFullWarning, stacklevel=2)
            parts.append(msg)
        if lost_s > 0:
            self._spool_lost_reported += lost_s
            parts.append(
                f"log spool {self._spool.dir} full (cap {self._spool.max_bytes} bytes): "
                f"{lost_s} oldest record(s) dropped to keep the newest "
                f"({self._spool_lost} in all since this shipper started)"
            )
        if lost_d > 0:
            self._disk_lost_reported += lost_d
            parts.append(
                f"log spool {self._spool.dir} could not be written ({self._disk_error}) and NATS did not take "
                f"them: {lost_d} record(s) dropped after holding {self._held_max} bytes in memory "
                f"({self._disk_lost} in all since this shipper started)"
            )
        # Straight into the queue, past the full check: a loss report must not be lost. ERROR,
        # so that it is mailed: records are gone.
        self._queue.appendleft(
            (time.time(), int(Level.ERROR), "; ".join(parts), SDK_LOGGER, None, None, None)
        )

    async def _sender(self) -> None:
        while True:
            retry = 1.0 if (self._spooling or self._outbox or self._held) else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._send_wake.wait(), retry)
            self._send_wake.clear()
            await self._send_all()

    async def _send_all(self) -> None:
        if self._held:
            self._write_held()  # the disk may have room again
            if not self._held:
                self._spool.ensure_reserve()
        if not self._online():
            if self._outbox and self._offline():
                self._fail()
            return
        if not await self._replay_spool():
            self._fail()
            return
        while self._outbox:
            b = self._outbox[0]
            if not await self._publish(self.subject, b.payload, b.batch_id):
                self._fail()
                return
            self._outbox.popleft()
            self.published_records += b.count
            self.published_batches += 1
            self._progress.set()
            self._wake.set()  # room in the outbox: let the pump take more

    async def _replay_spool(self) -> bool:
        """Publish every spooled batch, oldest first; True once the spool is empty."""
        while True:
            entries = self._spool.entries()
            if not entries:
                # Batches the disk refused come after the spooled ones, before the outbox.
                while self._held:
                    b = self._held[0]
                    if not await self._publish(self.subject, b.payload, b.batch_id):
                        return False
                    self._held.popleft()
                    self._held_bytes -= len(b.payload)
                    self.published_records += b.count
                    self.published_batches += 1
                    self._progress.set()
                if self._spool.entries():
                    continue  # the pump spooled more meanwhile
                # No await between the listing and this line, so the pump cannot spool
                # a batch in between that newer outbox batches would then overtake.
                self._spooling = False
                return True
            for e in entries:
                data = self._spool.read(e)
                if data is None:
                    continue
                subject = subjects.logs(e.source_kind, e.source_id)
                if not await self._publish(subject, data, e.batch_id):
                    return False
                self._spool.remove(e)
                self.replayed_batches += 1
                if e.source_kind == self.source_kind and e.source_id == self.source_id:
                    self.published_records += e.records
                    self.published_batches += 1
                self._progress.set()

    async def _publish(self, subject: str, payload: bytes, msg_id: str) -> bool:
        bus = self._bus
        if bus is None:
            return False
        try:
            await bus.js.publish(
                subject, payload, timeout=self._publish_timeout, headers={"Nats-Msg-Id": msg_id}
            )
            return True
        except nats.errors.MaxPayloadError:
            # Cannot happen for our own batches (they stay under MAX_BATCH_BYTES); a
            # foreign file in the spool must not block everything behind it.
            self._reject(msg_id)
            return True
        except Exception:
            # Timeout, no responders, reconnecting, JetStream not ready after a restart:
            # all mean "not stored yet, maybe stored": keep it and retry with the same id.
            return False

    def _reject(self, batch_id: str) -> None:
        for e in self._spool.entries():
            if e.batch_id == batch_id:
                rejected = self.spool_dir / "rejected"
                rejected.mkdir(exist_ok=True)
                with contextlib.suppress(FileNotFoundError):
                    e.path.rename(rejected / e.path.name)
                warnings.warn(
                    f"log batch {e.path.name} is larger than the server accepts; moved to {rejected}",
                    stacklevel=2,
                )

    def _fail(self) -> None:
        """Publishing failed: from now on everything goes to disk until the spool is replayed."""
        self._spooling = True
        while self._outbox:
            self._spool_batch(self._outbox.popleft())

    async def _flush(self, wait_for_reconnect: bool) -> bool:
        while True:
            self._pump_once()
            self._send_wake.set()
            if not self._queue and not self._outbox and not self._held and not self._own_spooled():
                return True
            if not wait_for_reconnect and self._offline() and not self._queue and not self._outbox:
                return False  # everything is on disk; it will be replayed later
            self._progress.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), 0.05)

    def _own_spooled(self) -> int:
        return sum(
            e.records
            for e in self._spool.entries()
            if e.source_kind == self.source_kind and e.source_id == self.source_id
        )

    def _heartbeat_state(self) -> dict[str, Any]:
        pending = (
            len(self._queue)
            + sum(b.count for b in self._outbox)
            + sum(b.count for b in self._held)
            + self._own_spooled()
        )
        return {"pending": pending, "job_id": self.job_id, "object_id": self.object_id}

    def _heartbeat_sender(self) -> HeartbeatSender | None:
        """The sender once connected; beats are skipped while the link is down (never buffered)."""
        bus = self._bus
        if bus is None or not bus.nc.is_connected:
            return None
        if self._hb is None:
            self._hb = HeartbeatSender(
                bus,
                self.source_kind,
                self.source_id,
                host=self.host,
                version=self.version,
                interval=self._heartbeat_interval,
                state_fn=self._heartbeat_state,
            )
        return self._hb

    async def _heartbeats(self) -> None:
        while True:
            if (sender := self._heartbeat_sender()) is not None:
                await sender.beat()
            await asyncio.sleep(self._heartbeat_interval)

    async def _shutdown(self) -> None:
        # Every task must have ended before the backlog is written out (cancel_and_wait
        # re-cancels, as Python 3.11 can lose a cancellation).
        await cancel_and_wait(*self._tasks)
        # Whatever is not acknowledged now goes to disk, in order, for the next run.
        self._pump_once(everything=True)
        while self._outbox:
            self._spool_batch(self._outbox.popleft())
        # The loss report goes last, as the newest record: written ahead of a backlog larger
        # than the spool cap it would be the first batch the cap drops, and it also counts
        # what writing that backlog just dropped.
        self._report_losses(force=True)
        self._pump_once(everything=True)
        if self._held:
            self._give_up_held()
        bus = self._bus
        if bus is not None:
            if self._heartbeat and (sender := self._heartbeat_sender()) is not None:
                await sender.beat(stopping=True)
            try:
                await asyncio.wait_for(bus.nc.flush(), 1.0)
            except Exception:
                pass
            bus.closing = True  # our own close: no "disconnected" warning on the way out
            with contextlib.suppress(Exception):
                await bus.nc.close()
        self._stopped.set()

    def _give_up_held(self) -> None:
        """The process ends with batches that neither the disk nor NATS took: count them,
        and leave one small record saying so (smaller than any backlog, so it may still fit)."""
        held = [b for b in self._held if b.count]
        lost = sum(b.count for b in held)
        self._held.clear()
        self._held_bytes = 0
        self._disk_lost += lost
        self._report_losses(force=True)
        self._pump_once(everything=True)
        if self._held and self._spool.release_reserve():
            self._write_held()  # the loss record fits in the space kept for it
        if self._held:  # not even the loss record fits: the terminal is the last place to say it
            self.lost_at_exit = lost + sum(b.count for b in self._held)
            self._held.clear()
            self._held_bytes = 0
        else:
            self.lost_at_exit = lost
        if self.lost_at_exit:
            print(
                f"foto3d logsdk: {self.lost_at_exit} log record(s) of {self.source_kind}/{self.source_id} could "
                f"not be sent, nor written to {self._spool.dir} ({self._disk_error}), and are lost",
                file=sys.stderr,
            )


def _ranges(ranges: list[tuple[str, str, int, int]]) -> str:
    if not ranges:
        return "-"
    shown = [f"{k}/{i} {a}-{b}" for k, i, a, b in ranges[:3]]
    more = f" and {len(ranges) - 3} more" if len(ranges) > 3 else ""
    return ", ".join(shown) + more
