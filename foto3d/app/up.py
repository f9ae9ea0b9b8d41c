"""`foto3d up`: the whole system in one process on embedded defaults."""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import signal
import sys
from pathlib import Path

from foto3d.app.disk_watch import DiskWatch, jetstream_max_storage
from foto3d.app.embedded_nats import EmbeddedNats
from foto3d.app.registry import ServiceEntry, available_services
from foto3d.app.runtime import Runtime
from foto3d.app.topology import assemble
from foto3d.libs.bus.connection import CREDS_ENV, connect
from foto3d.libs.bus.settings import SETTINGS as BUS_SETTINGS
from foto3d.libs.config import ConfigError, Settings
from foto3d.libs.discovery import Endpoints, clear_endpoints, write_endpoints
from foto3d.libs.diskspace import SETTINGS as DISK_SETTINGS
from foto3d.libs.diskspace import sized_topology
from foto3d.libs.logsdk.drain import SpoolDrainer
from foto3d.libs.logsdk.spool import spool_dir_for
from foto3d.libs.nats_server import NatsServer
from foto3d.libs.service import Health
from foto3d.libs.tasks import cancel_and_wait

log = logging.getLogger(__name__)
# The site's identities in the data folder (`foto3d auth` manages the same folder).
AUTH_DIR = "auth"


class DataDirLock:
    """One `up` per data folder: a second one would corrupt the stores."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "run" / "up.lock"
        self.fd: int | None = None

    def __enter__(self) -> DataDirLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            self.fd = None
            raise ConfigError(
                f"another `foto3d up` is already running on {self.path.parent.parent}; "
                "stop it first or use another --data folder"
            ) from None
        os.ftruncate(self.fd, 0)
        os.write(self.fd, str(os.getpid()).encode())
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)


async def run_up(
    settings: Settings, entries: list[ServiceEntry] | None = None, ready_file: Path | None = None
) -> int:
    entries = entries if entries is not None else available_services(in_up_only=True)
    data = settings.data_dir
    data.mkdir(parents=True, exist_ok=True)
    with DataDirLock(data):
        runtime: Runtime | None = None

        def endpoints() -> Endpoints:
            assert runtime is not None
            return Endpoints(
                nats_url=nats.client_url,
                http_url=runtime.http_url,
                pid=os.getpid(),
                monitor_url=nats.monitor_url,
            )

        async def restarted(_server: NatsServer) -> None:
            if runtime is not None and runtime.http_url:
                await asyncio.to_thread(write_endpoints, data, endpoints())

        nats = EmbeddedNats(
            store_dir=data / "nats",
            on_restart=restarted,
            leafnode_port=BUS_SETTINGS.load(settings).leafnode_port,
            auth_dir=data / AUTH_DIR,
        )
        await nats.start()
        # Every connection of this process (services, log shippers, the spool drainer) is
        # the embedded system's own identity, whatever the environment names.
        os.environ[CREDS_ENV] = str(nats.identities.key_path("up"))
        disk_cfg = DISK_SETTINGS.load(settings)
        try:
            max_storage = await asyncio.to_thread(jetstream_max_storage, nats.monitor_url)
            topology, sizing = sized_topology(assemble(), max_storage, disk_cfg.stream_share_pct)
        except BaseException:
            await nats.stop()
            raise
        runtime = Runtime(
            settings,
            [nats.client_url],
            entries,
            http=True,
            http_host=settings.http_host,
            http_port=settings.http_port,
            topology=topology,
        )
        runtime.extra_health_fns["embedded_nats"] = lambda: _nats_health(nats)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        background: list[asyncio.Task[None]] = []
        drain_bus = None
        watch: DiskWatch | None = None
        try:
            await runtime.start()
            write_endpoints(data, endpoints())
            # Batches that ended processes left in this host's spool arrive without a person.
            drain_bus = await connect([nats.client_url], "foto3d-up")
            drainer = SpoolDrainer(spool_dir_for(data), drain_bus)
            background.append(asyncio.create_task(drainer.run(), name="spool-drain"))
            watch = DiskWatch(disk_cfg, data, drain_bus, topology, [nats.client_url], nats=nats)
            await watch.check()
            runtime.extra_health_fns["disk"] = watch.health
            background.append(asyncio.create_task(watch.run(), name="disk-watch"))
            out = sys.stdout
            print(f"foto3d is up (data: {data})", file=out)
            print(f"  dashboard  {runtime.http_url}/", file=out)
            print(f"  health     {runtime.http_url}/healthz", file=out)
            print(f"  NATS       {nats.client_url}", file=out)
            if nats.monitor_url:
                print(f"  monitor    {nats.monitor_url}", file=out)
            if nats.leafnode_port:
                print(f"  leafnodes  nats-leaf://{nats.host}:{nats.leafnode_port} (capture rigs)", file=out)
            print(f"  services   {', '.join(e.name for e in entries) or '(none)'}", file=out)
            for line in sizing:
                print(f"  small disk: {line}", file=out)
            for svc in runtime.services:
                for line in svc.banner():
                    print(f"  {svc.name}: {line}", file=out)
            print("Press Ctrl-C to stop.", file=out, flush=True)
            if ready_file:
                await asyncio.to_thread(ready_file.write_text, runtime.http_url)
            await stop.wait()
            print("stopping…", file=out, flush=True)
        finally:
            clear_endpoints(data)
            await cancel_and_wait(*background)
            if watch is not None:
                await watch.close()
            if drain_bus is not None:
                await drain_bus.close()
            await runtime.stop()
            await nats.stop()
    print("stopped cleanly", flush=True)
    return 0


def _nats_health(nats: EmbeddedNats) -> Health:
    detail = f"{nats.client_url} (store {nats.store_dir}); restarted {nats.restarts} time(s)"
    return Health("ok" if nats.running else "down", detail)
