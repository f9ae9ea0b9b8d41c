"""Two notifier processes, one mail: the lease holder delivers, a standby takes over after a kill -9.

Each instance reads every message through its own consumers into its own sqlite (a warm
standby); the holder of the ``notifier-leader`` lease delivers and records each delivery
in the ``notifier-sent`` ledger before starting the next, so the instance that takes over
sends exactly what is left.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import threading
from pathlib import Path
from typing import Any

import msgspec
from nats.js.errors import KeyNotFoundError, NotFoundError

from foto3d.libs.bus.connection import Bus
from foto3d.libs.lease import KEY, LeaseHolder
from foto3d.libs.nats_server import NatsServer
from foto3d.proto.logs import Level
from foto3d.proto.permissions import NOTIFIER_LEASE_BUCKET
from testkit.servers import Inbox, SmtpServer
from testkit.waiting import eventually
from tests.notifier.helpers import batch, publish_batch, start_notifier_process, stop_process_group

BURST = 24
HOLD_AT = 6
ONE_AT_A_TIME = (
    "send_concurrency = 1\n"  # the SMTP server keeps the 6th mail's RCPT waiting until the leader is dead
)


class HoldingInbox(Inbox):
    """Accepts mail, but keeps one transaction at RCPT until released: a kill lands mid-mail."""

    def __init__(self, hold_at: int) -> None:
        super().__init__()
        self.hold_at = hold_at
        self.rcpt_seen = 0
        self.holding = threading.Event()
        self.release = threading.Event()

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        self.rcpt_seen += 1
        if self.rcpt_seen == self.hold_at:
            self.holding.set()
            while not self.release.is_set():
                await asyncio.sleep(0.02)
        envelope.rcpt_tos.append(address)
        return "250 OK"


async def lease_holder(bus: Bus) -> str | None:
    kv = await bus.js.key_value(NOTIFIER_LEASE_BUCKET)
    try:
        entry = await kv.get(KEY)
    except KeyNotFoundError:
        return None
    return msgspec.json.decode(entry.value or b"", type=LeaseHolder).instance


async def has_consumer(bus: Bus, durable: str) -> bool:
    try:
        await bus.js.consumer_info("LOGS", durable)
    except NotFoundError:
        return False
    return True


def pending_rows(data: Path) -> int:
    db = next(data.rglob("notifier.sqlite"))
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return int(conn.execute("SELECT count(*) FROM outbox WHERE state = 'pending'").fetchone()[0])


async def test_kill_9_of_the_delivering_notifier_mid_burst_mails_every_alert_exactly_once(
    tmp_path: Path, nats_server: NatsServer, bus: Bus
) -> None:
    smtp = SmtpServer()
    inbox = smtp.inbox = HoldingInbox(HOLD_AT)
    smtp.start()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        a = start_notifier_process("site-a", tmp_path, [nats_server.client_url], smtp.url, ONE_AT_A_TIME)
        procs.append(a)
        await eventually(lambda: lease_holder(bus), what="site-a to take the lease", timeout=60)
        assert await lease_holder(bus) == "site-a"
        procs.append(
            start_notifier_process("site-b", tmp_path, [nats_server.client_url], smtp.url, ONE_AT_A_TIME)
        )
        await eventually(
            lambda: has_consumer(bus, "notifier-logs-site-b"), what="site-b's consumer", timeout=60
        )

        for i in range(BURST):
            b = batch(
                [(int(Level.ERROR), f"burst failure {i}")], source_id=f"gpu-{i}", job_id=None, object_id=None
            )
            await publish_batch(bus, b)

        await eventually(lambda: inbox.holding.is_set(), what="the held mail", timeout=60)
        os.killpg(a.pid, signal.SIGKILL)
        a.wait(10)
        before_kill = len(inbox.messages)
        inbox.release.set()  # the dead leader's transaction is gone: that mail was never accepted

        def burst_subjects() -> list[str]:
            return [s for s in inbox.subjects() if "burst failure" in s]

        await eventually(lambda: len(set(burst_subjects())) >= BURST, what="every alert's mail", timeout=90)
        # Nothing left to send at the survivor: whatever arrives has arrived.
        await eventually(lambda: pending_rows(tmp_path / "site-b") == 0, what="site-b's outbox to drain")
        assert await lease_holder(bus) == "site-b"
        got = burst_subjects()
        assert len(got) == BURST, sorted(got)
        assert len(set(got)) == BURST
        assert before_kill == HOLD_AT - 1  # the kill came mid-burst: the rest came from site-b
    finally:
        inbox.release.set()
        for p in procs:
            stop_process_group(p)
        smtp.stop()
