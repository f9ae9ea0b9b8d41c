"""Presigned S3 links against moto's S3 server, and a gateway that restarts mid-work."""

from __future__ import annotations

import hashlib
import time
from urllib.parse import parse_qs, urlsplit

import aiohttp

from foto3d.libs.bus.connection import Bus
from foto3d.libs.config import Settings
from foto3d.proto import subjects
from foto3d.proto.gateway import CredentialIssued, CredentialKind
from foto3d.proto.objects import LiveStatus, ObjectPublished, ObjectRegistered, PublishedFile
from foto3d.services.token_gateway.credentials import new_token
from testkit.running import running_services
from testkit.servers import MotoServer
from testkit.waiting import eventually
from tests.token_gateway.helpers import Gateway, get
from tests.token_gateway.test_models import OID, bearer


async def test_presigned_links_are_scoped_and_short(settings: Settings, bus: Bus, moto: MotoServer) -> None:
    s3 = moto.client()
    s3.create_bucket(Bucket="models")
    prefix = f"models/acme/{OID}/v1"
    data = {f"{OID}.spz": b"spz" * 100, "viewer.json": b'{"camera": {"fov": 40}}'}
    files = []
    for name, body in data.items():
        key = f"{prefix}/{name}"
        s3.put_object(Bucket="models", Key=f"site/{key}", Body=body)
        kind, fmt = ("viewer_config", "json") if name.endswith(".json") else ("splat", "spz")
        files.append(
            PublishedFile(
                kind=kind,
                format=fmt,
                key=key,
                url="",
                bytes=len(body),
                sha256=hashlib.sha256(body).hexdigest(),
                content_type="application/octet-stream",
            )
        )
    settings.raw["publisher"] = {
        "bucket": "models",
        "prefix": "site",
        "endpoint_url": moto.url,
        "region": "us-east-1",
    }
    settings.raw["token_gateway"] = {"port": 0, "link_ttl_s": 60, "max_link_ttl_s": 120}
    async with running_services(settings, ["token_gateway"], http=False) as rt:
        gw = Gateway(rt=rt, bus=bus, published=settings.data_dir / "unused")
        now = time.time()
        await gw.event(
            ObjectRegistered(
                event_id="r", object_id=OID, ts=now, customer="acme", display_name="Lamp", slug="x", serial=1
            )
        )
        await gw.event(
            ObjectPublished(
                event_id="p", object_id=OID, ts=now, version=1, job_id="j", live_url="", files=files
            )
        )
        await gw.status(OID, LiveStatus.PRODUCTION)
        token = await gw.issue("acme")
        async with aiohttp.ClientSession() as s:

            async def served() -> bool:
                return (await get(s, f"{gw.url}/v1/models/{OID}", headers=bearer(token)))[0] == 200

            await eventually(served, "the model to be served", timeout=5.0)
            st, body, _ = await get(s, f"{gw.url}/v1/models/{OID}", headers=bearer(token))
            assert body["config"] == {"camera": {"fov": 40}}
            link = body["files"][0]["url"]
            parts = urlsplit(link)
            q = parse_qs(parts.query)
            # scoped to exactly this object's key, in this bucket, and short-lived
            assert parts.path == f"/models/site/{prefix}/{OID}.spz"
            assert 0 < int(q["X-Amz-Expires"][0]) <= 120
            st, got, _ = await get(s, link)
            assert st == 200 and got == data[f"{OID}.spz"]
            # the gateway serves no files itself in S3 mode
            assert (await get(s, f"{gw.url}/v1/files/{OID}/v1/{OID}.spz?exp=1&cid=x&sig=y"))[0] == 404
            await gw.status(OID, LiveStatus.DISABLED)

            async def refused() -> bool:
                return (await get(s, f"{gw.url}/v1/models/{OID}", headers=bearer(token)))[0] == 404

            await eventually(refused, "new requests to be refused", timeout=1.0)


async def test_restart_keeps_credentials_and_catches_up(settings: Settings, bus: Bus) -> None:
    settings.raw["token_gateway"] = {"port": 0}
    async with running_services(settings, ["token_gateway"], http=False) as rt:
        gw = Gateway(rt=rt, bus=bus, published=settings.data_dir / "published")
        await gw.publish_model(OID)
        token = await gw.issue("acme")
    # while no gateway runs: another instance issues a credential, and the model is disabled
    made = new_token(CredentialKind.SECRET)
    ev = CredentialIssued(
        credential_id=made.credential_id,
        kind=CredentialKind.SECRET,
        customer="acme",
        token_hash=made.token_hash,
        prefix=made.prefix,
        created_at=time.time(),
    )
    await bus.publish(subjects.gateway_credentials(ev.credential_id), ev, msg_id="issued-" + ev.credential_id)
    async with running_services(settings, ["token_gateway"], http=False) as rt:
        gw = Gateway(rt=rt, bus=bus, published=settings.data_dir / "published")
        async with aiohttp.ClientSession() as s:
            url = f"{gw.url}/v1/models/{OID}"
            assert (await get(s, url, headers=bearer(token)))[0] == 200
            assert (await get(s, url, headers=bearer(made.token)))[0] == 200
            await gw.status(OID, LiveStatus.DISABLED)
    async with running_services(settings, ["token_gateway"], http=False) as rt:
        gw = Gateway(rt=rt, bus=bus, published=settings.data_dir / "published")
        async with aiohttp.ClientSession() as s:
            # the status stored before this start is in force from the first request
            assert (await get(s, f"{gw.url}/v1/models/{OID}", headers=bearer(token)))[0] == 404
        assert gw.svc.parts is not None and len(gw.svc.parts.store.credentials) == 2
