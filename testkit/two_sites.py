"""A production-like topology for end-to-end tests: an on-prem site and a cloud site.

Each site is its own NATS hub (authorization on, a leafnode listener for rigs, the whole
stream topology provisioned), its own S3 endpoint (moto's server) with a bucket for the
datasets rigs upload, and its services as separate ``foto3d serve`` processes: a queue and
a trainer (fake ``ns-*`` on PATH) per site. Every process exports its spans over OTLP/HTTP
to ``otlp_url`` when given. A rig joins both hubs as a leaf node (see :meth:`Site.rig_site`).

Containers cannot be started here, so the images and compose file are not part of it; the
processes are the same entry points the images run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from foto3d.app.topology import assemble
from foto3d.libs.bus.connection import CREDS_ENV, connect
from foto3d.libs.bus.topology import provision
from foto3d.libs.nats_server import NatsServer
from foto3d.proto.permissions import service_role
from foto3d.rig.settings import SiteSettings
from testkit.identities import add_participant, auth_includes, creds_for, reload_on_change
from testkit.servers import MotoServer, free_port

FOTO3D = [sys.executable, "-m", "foto3d.cli.main"]
REPO = Path(__file__).resolve().parents[1]
FAKE_NS = REPO / "tests" / "fake_nerfstudio"
DATASETS_BUCKET = "datasets"


@dataclass
class Site:
    name: str
    root: Path
    hub: NatsServer
    leaf_port: int
    moto: MotoServer
    otlp_url: str = ""
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def nats_url(self) -> str:
        return self.hub.client_url

    @property
    def store(self) -> str:
        return f"s3://{DATASETS_BUCKET}/{self.name}"

    def rig_site(self) -> SiteSettings:
        """This site as a rig sees it: its hub, its leafnode port, its S3 store."""
        return SiteSettings(
            name=self.name,
            nats=self.nats_url,
            leaf=f"nats-leaf://127.0.0.1:{self.leaf_port}",
            store=self.store,
            s3_endpoint=self.moto.url,
        )

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """What this site's processes run with: its S3 endpoint, its OTLP collector, fast retries."""
        env = dict(os.environ)
        env.update(
            {
                "FOTO3D_S3_ENDPOINT_URL": self.moto.url,
                "FOTO3D_QUEUE_BACKOFF_S": "0.2",
                "FOTO3D_TRAINER_REQUIRE_GPU": "0",
                "FOTO3D_TRAINER_MIN_FREE_GB": "0",
                "FOTO3D_TRAINER_ID": f"trainer-{self.name}",
                "FAKE_NS_STEP_DELAY": "0.002",
                "PATH": f"{FAKE_NS}{os.pathsep}{env.get('PATH', '')}",
            }
        )
        if self.otlp_url:
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = self.otlp_url
            env["OTEL_BSP_SCHEDULE_DELAY"] = "100"
        env.update(extra or {})
        return env

    def data(self, service: str) -> Path:
        """The data folder of this site's ``service`` (its users file, its stores)."""
        return self.root / "data" / service

    def key_of(self, service: str) -> Path:
        """The key a deployed ``service`` at this site connects with: its role's (a trainer: its
        own participant's, ``trainer-<site>``, added to the session's identities)."""
        if service == "trainer":
            return add_participant("trainer", self.name)
        return creds_for(service_role(service))

    def serve(
        self, service: str, extra_env: Mapping[str, str] | None = None, *, http_port: int | None = None
    ) -> subprocess.Popen[bytes]:
        """``foto3d serve <service>`` at this site, its output in ``<root>/<service>.log``.

        With ``http_port`` it serves its dashboard there as a deployment does: behind the sign-in,
        the cross-site refusal and the sign-in limits, ``public_url`` naming that address, and
        administrators held to one-time codes; without, no HTTP at all."""
        log = (self.root / f"{service}.log").open("ab")
        args = [*FOTO3D, "serve", service, "--nats", self.nats_url, "--data", str(self.data(service))]
        env = {CREDS_ENV: str(self.key_of(service)), **(extra_env or {})}
        if http_port is None:
            args.append("--no-http")
        else:
            args += ["--port", str(http_port)]
            env = {
                "FOTO3D_PUBLIC_URL": f"http://127.0.0.1:{http_port}",
                "FOTO3D_AUTH_ADMIN_TOTP": "1",
                **env,
            }
        proc = subprocess.Popen(args, env=self.env(env), cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.procs[service] = proc
        return proc

    def log(self, service: str) -> str:
        path = self.root / f"{service}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    async def start_hub(self) -> None:
        await self.hub.astart()
        bus = await connect([self.nats_url], f"provision-{self.name}")
        try:
            await provision(bus.js, assemble())
        finally:
            await bus.close()

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
        self.procs.clear()
        self.hub.stop()
        self.moto.stop()


async def make_site(name: str, root: Path, otlp_url: str = "", *, start_hub: bool = True) -> Site:
    """A site with its moto S3 (bucket made) and its hub (started unless ``start_hub`` is False:
    a site that is down when the test begins)."""
    root.mkdir(parents=True, exist_ok=True)
    # The site trainer's identity before its hub reads the authorization (no reload mid-walk).
    add_participant("trainer", name)
    leaf_port = free_port()
    hub = NatsServer(
        store_dir=root / "nats",
        port=free_port(),
        name=f"hub-{name}",
        config_text=f"leafnodes {{\n  listen: 127.0.0.1:{leaf_port}\n  no_advertise: true\n}}\n",
        includes=auth_includes(),
    )
    reload_on_change(hub)
    moto = MotoServer(free_port()).start()
    moto.client().create_bucket(Bucket=DATASETS_BUCKET)
    site = Site(name=name, root=root, hub=hub, leaf_port=leaf_port, moto=moto, otlp_url=otlp_url)
    if start_hub:
        await site.start_hub()
    return site
