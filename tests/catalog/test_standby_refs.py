"""Reference images outlive the disk that took them: they live in the ``catalog-refs`` bucket.

A reference image registered through the leader is served by the standby (which never had
the file), and after a kill -9 of the leader and the loss of its database and its refs
folder, ``foto3d objects rebuild --replace`` brings the file back byte for byte.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import signal
import sys
from asyncio.subprocess import PIPE, STDOUT
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp

from foto3d.libs.bus.connection import CREDS_ENV, Bus
from foto3d.libs.nats_server import NatsServer
from testkit.identities import creds_for
from testkit.waiting import eventually
from tests.catalog.test_standby import (
    CUSTOMER,
    Instance,
    catalogs,
    leader_then_standby,
    post,
    sign_in,
    stop,
)

# A PNG's signature, then bytes no other test uses: a wrong or truncated file cannot match.
IMAGE = b"\x89PNG\r\n\x1a\n" + os.urandom(200_000)


async def reference(url: str, session: aiohttp.ClientSession, object_id: str) -> tuple[int, bytes]:
    async with session.get(f"{url}/objects/{object_id}/reference") as r:
        return r.status, await r.read()


@asynccontextmanager
async def leader_and_standby(
    tmp_path: Path, nats_url: str, bus: Bus
) -> AsyncIterator[tuple[Instance, Instance]]:
    """Two catalog processes, site-a leading and site-b standing by, both signed in, with the
    customer added; stopped (if still running) on the way out."""
    async with catalogs(tmp_path, nats_url, "site-a") as insts:
        a, b = await leader_then_standby(tmp_path, nats_url, bus, insts)
        await sign_in(a)
        await sign_in(b)
        assert (await post(a, "/api/customers", {"slug": CUSTOMER, "name": "ACME"}))[0] == 201
        yield a, b


def lose_the_leader(a: Instance, b: Instance, *folders: str) -> None:
    """The leader's host dies, and its disk with it (its database and ``folders`` under its
    catalog folder); the standby is stopped for the rebuild."""
    os.killpg(a.proc.pid, signal.SIGKILL)
    a.proc.wait(30)
    stop(b.proc)
    for folder in folders:
        shutil.rmtree(a.data / "catalog" / folder)
    (a.data / "catalog" / "catalog.db").unlink()


async def rebuild_replacing(nats_url: str, data: Path) -> str:
    """``foto3d objects rebuild --replace`` on ``data`` (with the catalog's key); its output."""
    argv = [sys.executable, "-m", "foto3d.cli.main", "objects", "rebuild", "--replace"]
    argv += ["--nats", nats_url, "--data", str(data)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOTO3D_")}
    env[CREDS_ENV] = str(creds_for("catalog"))

    async def rebuilt() -> str | None:
        # The killed leader's lease and bus connection linger for a few seconds: the command
        # refuses while a catalog still seems to answer.
        proc = await asyncio.create_subprocess_exec(*argv, stdout=PIPE, stderr=STDOUT, env=env)
        out = (await asyncio.wait_for(proc.communicate(), 120))[0].decode()
        if proc.returncode != 0 and "the catalog is running" in out:
            return None
        assert proc.returncode == 0, out
        return out

    out: str = await eventually(rebuilt, what="the rebuild to run", timeout=120)
    return out


async def test_a_reference_image_taken_by_the_leader_is_served_by_the_standby_and_rebuilt(
    tmp_path: Path, nats_server: NatsServer, bus: Bus
) -> None:
    async with leader_and_standby(tmp_path, nats_server.client_url, bus) as (a, b):
        status, obj = await post(
            a,
            "/api/objects",
            {
                "customer": CUSTOMER,
                "display_name": "Vase",
                "reference_image_b64": base64.b64encode(IMAGE).decode(),
                "reference_image_name": "vase.png",
            },
        )
        assert status == 201, obj
        oid = obj["object_id"]
        assert (a.data / "catalog" / "refs" / f"{oid}.png").read_bytes() == IMAGE

        # The standby never had the file: it reads it from the bucket.
        assert not (b.data / "catalog" / "refs" / f"{oid}.png").exists()
        assert b.session is not None
        assert await reference(b.url, b.session, oid) == (200, IMAGE)
        assert (b.data / "catalog" / "refs" / f"{oid}.png").read_bytes() == IMAGE

        lose_the_leader(a, b, "refs")

    out = await rebuild_replacing(nats_server.client_url, a.data)
    assert "1 objects" in out and "missing" not in out, out
    assert (a.data / "catalog" / "refs" / f"{oid}.png").read_bytes() == IMAGE
