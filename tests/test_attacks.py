"""The attacks the bus was open to, tried against running services: all refused, nothing changes.

From a client with no key, and with a rig's and a trainer's keys (``testkit.identities``):
issue a customer token, disable a model by publishing ``object.status``, read log lines
and credential events, submit or cancel a job, delete a stream through ``$JS.API``, and
join as a leaf node. Each refusal is the server's (an authorization or permissions
violation), and afterwards the gateway holds no token, the streams hold no new
message and every stream is still there.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path

import msgspec
import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from foto3d.libs.bus.connection import Bus
from foto3d.libs.config import Settings
from foto3d.libs.nats_server import NatsServer
from foto3d.proto import gateway, jobs, subjects
from testkit.identities import creds_for
from testkit.running import running_services
from testkit.servers import free_port
from testkit.waiting import eventually

WATCHED = [
    subjects.LOGS_STREAM,
    subjects.GATEWAY_CREDENTIALS_STREAM,
    subjects.OBJECT_EVENTS_STREAM,
    subjects.SUBMISSIONS_STREAM,
    subjects.JOB_EVENTS_STREAM,
]


async def stream_counts(bus: Bus) -> dict[str, int]:
    return {name: (await bus.js.stream_info(name)).state.messages for name in WATCHED}


async def as_attacker(server: NatsServer, key: Path | None, errors: list[str]) -> Client:
    async def on_error(exc: Exception) -> None:
        errors.append(str(exc).lower())

    opts = {"nkeys_seed": str(key)} if key else {}
    return await nats.connect(server.client_url, error_cb=on_error, allow_reconnect=False, **opts)


async def test_no_key_cannot_connect(nats_server: NatsServer) -> None:
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await as_attacker(nats_server, None, [])


@pytest.mark.parametrize("role", ["rig", "trainer"])
async def test_a_stolen_rig_or_trainer_key_is_refused_everything_else(
    settings: Settings, bus: Bus, nats_server: NatsServer, role: str
) -> None:
    settings.raw["token_gateway"] = {"port": 0}
    async with running_services(settings, ["token_gateway", "queue", "catalog"], http=False):
        before = await stream_counts(bus)
        errors: list[str] = []
        nc = await as_attacker(nats_server, creds_for(role), errors)
        seen: list[str] = []
        try:

            async def on_msg(msg: Msg) -> None:
                seen.append(msg.subject)

            # Reading: log lines, credential events, object events.
            for subject in (subjects.LOGS_ALL, subjects.GATEWAY_CREDENTIALS_ALL, subjects.OBJECT_EVENTS_ALL):
                await nc.subscribe(subject, cb=on_msg)
            # Writing: a token for any customer, a status change, a submitted or cancelled job.
            issue = gateway.IssueRequest(
                customer="acme", kind=gateway.CredentialKind.SECRET, actor="staff@example.com"
            )
            for subject, body in (
                (gateway.TOKENS_ISSUE.subject, msgspec.json.encode(issue)),
                (jobs.SUBMIT.subject, b"{}"),
                (jobs.CANCEL.subject, msgspec.json.encode(jobs.JobRef(job_id="j1"))),
            ):
                await nc.publish(subject, body, reply="_INBOX.x.1")
            status = {"type": "object.status/1", "object_id": "o1", "status": "disabled", "actor": "x"}
            await nc.publish(subjects.object_events("o1"), json.dumps(status).encode())
            for stream in WATCHED:
                await nc.publish(f"$JS.API.STREAM.DELETE.{stream}", b"", reply="_INBOX.x.2")
                await nc.publish(f"$JS.API.STREAM.PURGE.{stream}", b"", reply="_INBOX.x.3")
            await nc.flush(timeout=10)
            expected = [
                'subscription to "f3d.logs.>"',
                'subscription to "f3d.gateway.credentials.>"',
                'subscription to "f3d.objects.events.>"',
                'publish to "f3d.api.gateway.tokens-issue"',
                'publish to "f3d.api.jobs.submit"',
                'publish to "f3d.api.jobs.cancel"',
                'publish to "f3d.objects.events.o1"',
                'publish to "$js.api.stream.delete.logs"',
                'publish to "$js.api.stream.purge.gateway_credentials"',
            ]

            def missing() -> list[str]:
                return [w for w in expected if not any(f"violation for {w}" in e for e in errors)]

            # Each refusal is the server's -ERR line, which may trail the flush's PONG.
            await eventually(lambda: not missing(), "every refusal", timeout=15)
        finally:
            await nc.close()
        # Nothing changed: no token, no new message, every stream still there.
        tokens = await bus.call(gateway.TOKENS_LIST, gateway.ListRequest())
        assert tokens.credentials == []
        assert await stream_counts(bus) == before
        assert seen == []


async def test_a_leaf_node_needs_a_rig_key(tmp_path: Path, nats_server: NatsServer) -> None:
    """A leaf node with no key, or with a trainer's, is refused; a rig's is accepted."""
    leaf_port = free_port()
    hub = NatsServer(
        store_dir=tmp_path / "hub",
        port=free_port(),
        config_text=f"leafnodes {{\n  listen: 127.0.0.1:{leaf_port}\n}}\n",
        includes=nats_server.includes,
    ).start()
    leaves: list[NatsServer] = []
    try:
        for name, key in (("none", None), ("trainer", creds_for("trainer")), ("rig", creds_for("rig"))):
            nkey = f", nkey: {json.dumps(key.read_text().strip())}" if key else ""
            conf = f'leafnodes {{ reconnect: 1, remotes: [ {{ urls: ["nats-leaf://127.0.0.1:{leaf_port}"]{nkey} }} ] }}\n'
            leaves.append(NatsServer(store_dir=tmp_path / name, port=free_port(), config_text=conf).start())

        def leafs() -> list[dict[str, object]]:
            with urllib.request.urlopen(f"{hub.monitor_url}/leafz", timeout=2) as r:
                return list(json.load(r).get("leafs") or [])

        def refusals() -> int:
            return (
                (tmp_path / "hub" / "nats-server.log")
                .read_text()
                .count("Leafnode connection closed: Authentication")
            )

        # The rig's link comes up; the other two keep being refused (each retry is logged).
        await eventually(lambda: len(leafs()) == 1, "the rig's leaf link", timeout=30)
        await eventually(lambda: refusals() >= 4, "refused leaf links", timeout=30)
        await asyncio.sleep(0)  # let the last retry be counted, then check the link count again
        assert len(leafs()) == 1
    finally:
        for leaf in leaves:
            leaf.stop()
        hub.stop()
