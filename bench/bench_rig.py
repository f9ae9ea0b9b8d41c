"""Rig catch-up benchmark: how fast a rig empties its backlog once the link returns.

Starts a hub (nats-server with the topology and a leafnode listener, a local store
folder or moto's S3 server) and a rig (`foto3d rig up` in its own process, as in
production: its nats-server joins the hub as a leaf node, the hub sources its logs),
cuts the hub, and while offline logs ``--records`` records (lines of a real log file, cycled)
and submits ``--datasets`` datasets (real image files, ``--copies`` copies of each
image per dataset). Then the hub comes back and the clock runs until everything is
there:

* logs: records/s from the hub's restart until the last batch is stored (the hub's
  sourcing over the leaf link; the link is retried every second, so up to a second of
  reconnecting is in this figure), and from the first to the last batch;
* datasets: MB/s from the last log batch until the last submission is stored (logs go
  first, so the uploads start then).

Baselines, same run, same data: the same log batches published directly to the hub
(one awaited publish at a time, as the rig does, and pipelined with publish_async), and
the same files put directly into the same store (``BlobStore.put_file``).

``--outage link`` keeps the hub running and cuts the rig's network instead: both of its
connections (the agent's and the leaf link) go through a small TCP relay in this process
that is closed and opened again; the leaf traffic then also pays for the relay.

Usage: .venv/bin/python bench/bench_rig.py --log-file /var/log/dpkg.log --images DIR
       [--records 200000] [--datasets 5] [--copies 4] [--store local|s3] [--outage hub|link]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgspec
from nats.js.errors import NotFoundError

from foto3d.app.topology import assemble
from foto3d.libs.bus.connection import connect
from foto3d.libs.bus.topology import provision
from foto3d.libs.nats_server import NatsServer
from foto3d.libs.storage.base import BlobStore, open_store
from foto3d.libs.storage.s3 import S3Store
from foto3d.proto.rig import LinkState
from foto3d.rig import settings as rig_settings
from foto3d.rig.client import RigClient
from foto3d.rig.settings import RigSettings
from foto3d.rig.status import read_status

MB = 1_000_000


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def log_lines(path: Path | None) -> list[str]:
    if path is None:
        return [f"frame {i:06d} captured exposure=1/125 iso=200" for i in range(1000)]
    lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    if not lines:
        raise SystemExit(f"{path} has no lines")
    return lines


def image_files(folder: Path | None) -> list[Path]:
    if folder is None:
        return []
    found = sorted(
        p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png") and p.is_file()
    )
    if not found:
        raise SystemExit(f"no .jpg/.png files under {folder}")
    return found


def build_datasets(root: Path, images: list[Path], n: int, copies: int) -> list[Path]:
    folders = []
    for d in range(n):
        folder = root / f"capture-{d}"
        folder.mkdir(parents=True)
        if images:
            for c in range(copies):
                for img in images:
                    shutil.copyfile(img, folder / f"{c:02d}-{img.parent.name}-{img.name}")
        else:  # incompressible, like JPEG
            for c in range(copies * 8):
                (folder / f"img-{c:03d}.jpg").write_bytes(os.urandom(400_000))
        folders.append(folder)
    return folders


def folder_bytes(folders: list[Path]) -> int:
    return sum(p.stat().st_size for f in folders for p in f.iterdir())


def spawn(argv: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Relay:
    """A TCP relay to one port of the hub that can be cut like a network (connections closed,
    new ones refused) and opened again."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.up = True
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    def cut(self) -> None:
        self.up = False
        for w in list(self.writers):
            w.close()

    async def close(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()
        for _ in range(200):  # let the relays notice their closed ends and finish
            if not self.writers:
                break
            await asyncio.sleep(0.01)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            writer.close()
            return
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            writer.close()
            return
        self.writers |= {writer, up_w}
        await asyncio.gather(self._pipe(reader, up_w), self._pipe(up_r, writer), return_exceptions=True)
        self.writers -= {writer, up_w}

    @staticmethod
    async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(256 * 1024):
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            dst.close()


async def count(js: object, stream: str) -> int:
    try:
        return int((await js.stream_info(stream)).state.messages)  # type: ignore[attr-defined]
    except NotFoundError:
        return 0


async def run(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-rig-"))
    moto: subprocess.Popen[bytes] | None = None
    s3_endpoint = None
    if args.store == "s3":
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
        os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
        port = free_port()
        moto = spawn([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)])
        s3_endpoint = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                S3Store("bench", endpoint_url=s3_endpoint).client.create_bucket(Bucket="bench")
                break
            except Exception:
                await asyncio.sleep(0.1)
        store_uri = "s3://bench/site"
    else:
        store_uri = str(tmp / "site-store")

    leaf_port = free_port()
    hub = NatsServer(
        store_dir=tmp / "hub",
        port=free_port(),
        # no_advertise: the rig must not learn the hub's own leafnode address (and go round the relay).
        config_text=f"leafnodes {{\n  listen: 127.0.0.1:{leaf_port}\n  no_advertise: true\n}}\n",
    ).start()
    bus = await connect([hub.client_url], "bench")
    await provision(bus.js, assemble())
    await bus.close()
    relays: list[Relay] = []
    rig_nats, rig_leaf = hub.client_url, f"nats-leaf://127.0.0.1:{leaf_port}"
    if args.outage == "link":
        relays = [Relay(hub.port), Relay(leaf_port)]
        nats_relay, leaf_relay = [await r.start() for r in relays]
        rig_nats, rig_leaf = f"nats://127.0.0.1:{nats_relay}", f"nats-leaf://127.0.0.1:{leaf_relay}"
    rig_dir = tmp / "rig"
    settings = msgspec.convert(
        {
            "rig_id": "bench-rig",
            "sites": [
                {
                    "name": "local",
                    "nats": rig_nats,
                    "leaf": rig_leaf,
                    "store": store_uri,
                    "s3_endpoint": s3_endpoint,
                }
            ],
            "leaf_port": free_port(),
            "probe_interval_s": 0.2,
            "site_grace_s": 1.0,
        },
        RigSettings,
    )
    rig_settings.save(rig_dir, settings)
    rig = spawn([sys.executable, "-m", "foto3d.cli.main", "rig", "up", "--dir", str(rig_dir)])
    try:
        while read_status(rig_dir, settings.rig_id).link != LinkState.ONLINE:
            await asyncio.sleep(0.05)
        if relays:
            for r in relays:
                r.cut()
        else:
            hub.stop()
        while read_status(rig_dir, settings.rig_id).link != LinkState.OFFLINE:
            await asyncio.sleep(0.05)

        lines = log_lines(args.log_file)
        client = RigClient(rig_dir)
        with client.shipper(batch_max_records=args.batch) as shipper:
            for i in range(args.records):
                shipper.emit(20, lines[i % len(lines)])
                if i % 100_000 == 99_999:  # stay below the SDK's in-memory queue
                    assert shipper.flush(120)
            assert shipper.flush(120)
        folders = build_datasets(tmp / "captures", image_files(args.images), args.datasets, args.copies)
        total_bytes = folder_bytes(folders)
        for n, folder in enumerate(folders):
            await client.asubmit(f"bench-object-{n:03d}", folder)

        if relays:
            for r in relays:
                r.up = True
        else:
            hub.start()
        t0 = time.perf_counter()
        bus = await connect([hub.client_url], "bench-check")
        js = bus.js
        batches = -(-args.records // args.batch)
        t_first = t_logs = t_ds = None
        while t_ds is None:
            if t_first is None and await count(js, "LOGS") > 0:
                t_first = time.perf_counter()
            if t_logs is None and await count(js, "LOGS") >= batches:
                t_logs = time.perf_counter()
            if t_logs is not None and await count(js, "SUBMISSIONS") >= args.datasets:
                t_ds = time.perf_counter()
            await asyncio.sleep(0.05)
        assert t_logs is not None and t_first is not None
        rig_logs_s, rig_ds_s = t_logs - t0, t_ds - t_logs
        steady_s = max(t_logs - t_first, 1e-6)

        # Baseline 1: the same batches straight to the hub, one awaited publish at a time.
        info = await js.stream_info("LOGS")
        payloads = [
            (m.subject, m.data or b"")
            for m in [
                await js.get_msg("LOGS", s) for s in range(info.state.first_seq, info.state.last_seq + 1)
            ]
        ]
        await js.purge_stream("LOGS")
        t = time.perf_counter()
        for i, (subject, data) in enumerate(payloads):
            await js.publish(subject or "", data, headers={"Nats-Msg-Id": f"base1-{i}"})
        direct_awaited_s = time.perf_counter() - t
        await js.purge_stream("LOGS")
        t = time.perf_counter()
        for i, (subject, data) in enumerate(payloads):
            await js.publish_async(subject or "", data, headers={"Nats-Msg-Id": f"base2-{i}"})
        await js.publish_async_completed()
        direct_async_s = time.perf_counter() - t
        await bus.close()

        # Baseline 2: the same files put straight into the same store.
        store: BlobStore = (
            S3Store("bench", "site", endpoint_url=s3_endpoint)
            if args.store == "s3"
            else open_store(store_uri)
        )
        t = time.perf_counter()
        for n, folder in enumerate(folders):
            for p in sorted(folder.iterdir()):
                await store.put_file(f"baseline/{n}/{p.name}", p)
        direct_store_s = time.perf_counter() - t

        rec = args.records
        back = "the hub's restart" if args.outage == "hub" else "the link's return"
        print(
            f"records {rec:,} in {batches} batches of {args.batch}; datasets {args.datasets}, {total_bytes / MB:.1f} MB"
        )
        print(
            f"store: {args.store}; log lines from {args.log_file or 'generated'}; images from {args.images or 'random bytes'}"
        )
        print()
        print("| what | rig catch-up | direct to the hub/store | ratio (rig / direct) |")
        print("|---|---|---|---|")
        print(
            f"| logs, records/s from {back} (awaited) | {rec / rig_logs_s:,.0f} | {rec / direct_awaited_s:,.0f} "
            f"| {direct_awaited_s / rig_logs_s:.2f} |"
        )
        print(
            f"| logs, records/s, first to last batch (awaited) | {rec / steady_s:,.0f} | {rec / direct_awaited_s:,.0f} "
            f"| {direct_awaited_s / steady_s:.2f} |"
        )
        print(
            f"| logs, records/s (vs. pipelined publish_async) | {rec / rig_logs_s:,.0f} | {rec / direct_async_s:,.0f} "
            f"| {direct_async_s / rig_logs_s:.2f} |"
        )
        print(
            f"| datasets, MB/s | {total_bytes / MB / rig_ds_s:,.1f} | {total_bytes / MB / direct_store_s:,.1f} "
            f"| {direct_store_s / rig_ds_s:.2f} |"
        )
        print()
        print(
            f"rig: first log batch {t_first - t0:.2f} s after {back} (the site resuming its "
            f"sourcing), last {rig_logs_s:.2f} s; datasets {rig_ds_s:.2f} s after the logs"
        )
    finally:
        rig.send_signal(signal.SIGTERM)
        try:
            rig.wait(20)
        except subprocess.TimeoutExpired:
            rig.kill()
        for r in relays:
            await r.close()
        hub.stop()
        if moto is not None:
            moto.terminate()
            moto.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=1000, help="records per log batch (the SDK's default)")
    ap.add_argument("--datasets", type=int, default=5)
    ap.add_argument("--copies", type=int, default=4, help="copies of each image per dataset")
    ap.add_argument("--images", type=Path, help="folder of real .jpg/.png files (else random bytes)")
    ap.add_argument(
        "--log-file", type=Path, help="a real log file whose lines are the records (else generated)"
    )
    ap.add_argument("--store", choices=["local", "s3"], default="local")
    ap.add_argument(
        "--outage", choices=["hub", "link"], default="hub", help="stop the hub, or cut the rig's network"
    )
    asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()
