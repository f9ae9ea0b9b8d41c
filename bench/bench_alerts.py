"""Notifier benchmark: how fast a person hears about an error, and about a silent participant.

Starts its own nats-server (JetStream, temp folder), a real SMTP server (aiosmtpd,
records when it accepted each mail) and the notifier service in this process
with its default settings (group wait 0.25 s), then measures:

1. alert latency: from ``logger.error(...)`` in a client (the log SDK's
   NatsLogHandler, as a script would ship its logs) to the SMTP server accepting
   the alert mail, over N alerts with distinct fingerprints (one per logger),
   sent 50 ms apart; p50/p95/max. Baseline in the same run: the same SDK path
   with a mail sent directly by aiosmtplib from a subscriber on the log subject,
   i.e. the transport floor without the notifier (no store, no grouping);
2. the same alerts all at once (a burst of N distinct errors);
3. detection delay for a silent participant: K trainers beat every second
   (grace 3 s) and die without a goodbye; time from the last beat to the
   interruption mail, minus the grace (goal: at most 1 s).

Usage: .venv/bin/python bench/bench_alerts.py [--alerts 200] [--silent 5] [--with-collector]
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.parser
import email.policy
import logging
import os
import statistics
import string
import sys
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
from aiosmtpd.controller import Controller

from foto3d.app.registry import by_name
from foto3d.app.runtime import Runtime
from foto3d.libs.bus.connection import connect
from foto3d.libs.config import Settings
from foto3d.libs.heartbeat import HeartbeatSender
from foto3d.libs.logsdk import LogShipper, NatsLogHandler
from foto3d.libs.nats_server import NatsServer
from foto3d.proto import subjects
from foto3d.proto.logs import LogBatch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from testkit.servers import free_port

_headers = email.parser.BytesHeaderParser(policy=email.policy.default)


class Inbox:
    def __init__(self) -> None:
        self.accepted: dict[str, float] = {}

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        at = time.time()
        # headers only: the harness should not spend the CPU it measures on parsing bodies
        msg = _headers.parsebytes(envelope.content)
        self.accepted[" ".join(str(msg["Subject"]).split())] = at
        return "250 OK"


def word(i: int) -> str:
    """Letters only: the notifier masks digits when fingerprinting, so ids must not be numbers."""
    s = ""
    i += 26 * 26
    while i:
        i, r = divmod(i, 26)
        s = string.ascii_lowercase[r] + s
    return s


def pct(values: list[float], p: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, round(p / 100 * (len(v) - 1)))]


async def wait_mails(inbox: Inbox, subjects_: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not all(s in inbox.accepted for s in subjects_):
        await asyncio.sleep(0.01)


def find(inbox: Inbox, needle: str) -> float | None:
    for subj, at in list(inbox.accepted.items()):
        if needle in subj:
            return at
    return None


async def sdk_errors(
    shipper_logger: logging.Logger, inbox: Inbox, tag: str, n: int, spacing: float
) -> list[float]:
    sent: dict[str, float] = {}
    for i in range(n):
        w = f"{tag}{word(i)}"
        sent[w] = time.time()
        logging.getLogger(f"bench.{w}").error("bench alert %s", w)
        if spacing:
            await asyncio.sleep(spacing)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if all(find(inbox, f"bench alert {w}") for w in sent):
            break
        await asyncio.sleep(0.02)
    out = []
    for w, t0 in sent.items():
        at = find(inbox, f"bench alert {w}")
        if at is None:
            raise SystemExit(f"mail for {w} never arrived")
        out.append(at - t0)
    return out


async def baseline(url: str, smtp_port: int, inbox: Inbox, n: int, spacing: float) -> list[float]:
    """The floor: SDK -> NATS -> a subscriber that mails directly (nothing stored, no grouping)."""
    bus = await connect([url], "bench-baseline")
    dec = __import__("msgspec").json.Decoder(LogBatch)

    tasks: set[asyncio.Task[Any]] = set()

    async def on_msg(msg: Any) -> None:
        b = dec.decode(msg.data)
        for r in b.records:
            if r.level >= 40 and r.message.startswith("bench alert base"):
                m = EmailMessage()
                m["Subject"] = f"[direct] {r.message}"
                m["From"] = "bench@example.com"
                m["To"] = "ops@example.com"
                m.set_content(r.message)
                t = asyncio.create_task(
                    aiosmtplib.send(m, hostname="127.0.0.1", port=smtp_port, start_tls=False)
                )
                tasks.add(t)
                t.add_done_callback(tasks.discard)

    sub = await bus.nc.subscribe(subjects.LOGS_ALL, cb=on_msg)
    try:
        return await sdk_errors(logging.getLogger("bench"), inbox, "base", n, spacing)
    finally:
        await sub.unsubscribe()
        await bus.close()


async def detection(bus_url: str, inbox: Inbox, k: int) -> list[float]:
    bus = await connect([bus_url], "bench-hb")
    senders = [HeartbeatSender(bus, "trainer", f"bench-{word(i)}", interval=1.0) for i in range(k)]
    for s in senders:
        s.start()
    await asyncio.sleep(2.5)
    stopped: dict[str, float] = {}
    for s in senders:
        await s.stop(clean=False)
        # the participant went silent at its last beat, not when it was stopped
        assert s.last_beat_at is not None
        stopped[s.id] = s.last_beat_at
        await asyncio.sleep(0.13)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not all(find(inbox, f"trainer {i} is silent") for i in stopped):
        await asyncio.sleep(0.02)
    await bus.close()
    out = []
    for i, t0 in stopped.items():
        at = find(inbox, f"trainer {i} is silent")
        if at is None:
            raise SystemExit(f"no interruption mail for {i}")
        out.append(at - t0 - 3.0)
    return out


async def main(n: int, k: int, with_collector: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        server = NatsServer(store_dir=root / "nats", port=free_port()).start()
        inbox = Inbox()
        smtp_port = free_port()
        ctl = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
        ctl.start()
        os.environ["FOTO3D_SMTP_URL"] = f"smtp+insecure://127.0.0.1:{smtp_port}"
        os.environ["FOTO3D_ALERT_TO"] = "ops@example.com"
        data = root / "data"
        data.mkdir()
        # default grouping; no rate limit: this measures latency, not policy
        (data / "foto3d.toml").write_text("[notifier]\nrate_limit_per_hour = 0\n")
        settings = Settings.load(data_dir=data, nats=server.client_url, http_port=0)
        names = ["log_collector", "notifier"] if with_collector else ["notifier"]
        rt = Runtime(settings, [server.client_url], [by_name(x) for x in names], http=False)
        await rt.start()
        shipper = LogShipper(
            "script", "bench", nats_urls=[server.client_url], spool_dir=root / "spool", heartbeat=False
        )
        root_log = logging.getLogger("bench")
        root_log.propagate = False
        root_log.setLevel(logging.INFO)
        root_log.addHandler(NatsLogHandler(shipper))
        try:
            root_log.info("warm up")  # the SDK connects in the background; do not time that
            await asyncio.sleep(1.0)
            base = await baseline(server.client_url, smtp_port, inbox, n, 0.05)
            paced = await sdk_errors(root_log, inbox, "paced", n, 0.05)
            burst = await sdk_errors(root_log, inbox, "burst", n, 0.0)
            silent = await detection(server.client_url, inbox, k)
        finally:
            shipper.close()
            await rt.stop()
            ctl.stop()
            server.stop()

    def line(name: str, v: list[float]) -> str:
        return (
            f"{name:<44} p50 {statistics.median(v) * 1000:7.0f} ms   p95 {pct(v, 95) * 1000:7.0f} ms   "
            f"max {max(v) * 1000:7.0f} ms"
        )

    print(f"alerts: {n} distinct fingerprints, mail accepted by aiosmtpd")
    print(line("baseline: SDK -> NATS -> direct SMTP send", base))
    print(line("notifier, 50 ms apart (logger.error -> SMTP)", paced))
    print(line(f"notifier, burst of {n} at once", burst))
    print(
        f"ratio notifier/baseline: p50 {statistics.median(paced) / statistics.median(base):.1f}x, "
        f"p95 {pct(paced, 95) / pct(base, 95):.1f}x (the notifier waits group_wait = 0.25 s on purpose)"
    )
    print(
        f"detection delay beyond grace ({k} silent trainers, interval 1 s, grace 3 s): "
        f"mean {statistics.mean(silent):.2f} s, max {max(silent):.2f} s (goal <= 1 s)"
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--alerts", type=int, default=200, help="alerts per run (default 200)")
    ap.add_argument("--silent", type=int, default=5, help="silent participants (default 5)")
    ap.add_argument(
        "--with-collector",
        action="store_true",
        help="also run the log collector, so each mail asks it for its context lines (as in `foto3d up`)",
    )
    a = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(a.alerts, a.silent, a.with_collector))
