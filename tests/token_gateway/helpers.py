"""A running gateway on a real nats-server, and published models made of real files."""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
from yarl import URL

from foto3d.app.runtime import Runtime
from foto3d.libs.bus.connection import Bus
from foto3d.libs.splat.formats import registry as splat_formats
from foto3d.libs.viewer import assets
from foto3d.proto import subjects
from foto3d.proto.gateway import STAFF_PUBLISHED_PREFIX, TOKENS_ISSUE, CredentialKind, IssueRequest
from foto3d.proto.objects import (
    LiveStatus,
    ObjectPublished,
    ObjectRegistered,
    ObjectStatusChanged,
    PublishedFile,
)
from foto3d.services.token_gateway import embed
from foto3d.services.token_gateway.links import expiry
from foto3d.services.token_gateway.service import TokenGateway
from testkit.gateway_fuzz import FuzzInputs

ORIGIN = "https://shop.example.com"
OID = "acme-desk-lamp-001"
# Stand-ins for splat files (the gateway serves bytes, it never parses them), sizes distinct
# so that "smallest first" has one answer.
SPLAT_BODIES = {
    "ply": b"ply\n" + b"p" * 3000,
    "compressed-ply": b"ply\n" + b"c" * 1500,
    "spz": b"spz" + b"s" * 500,
    "splat": b"\0" + b"t" * 2000,
    "sog": b"PK" + b"g" * 900,
}


@dataclass
class Gateway:
    rt: Runtime
    bus: Bus
    published: Path

    @property
    def svc(self) -> TokenGateway:
        svc = next(s for s in self.rt.services if s.name == "token_gateway")
        assert isinstance(svc, TokenGateway)
        return svc

    @property
    def url(self) -> str:
        assert self.svc.listener is not None
        return self.svc.listener.url

    async def issue(self, customer: str, kind: CredentialKind = CredentialKind.SECRET, **kw: Any) -> str:
        if kind == CredentialKind.PUBLISHABLE:
            kw.setdefault("origins", [ORIGIN])
        reply = await self.bus.call(TOKENS_ISSUE, IssueRequest(customer=customer, kind=kind, **kw))
        return reply.token

    async def event(self, ev: msgspec.Struct) -> None:
        await self.bus.publish(subjects.object_events(ev.object_id), ev, msg_id=ev.event_id)  # type: ignore[attr-defined]

    async def status(self, object_id: str, status: LiveStatus) -> None:
        await self.event(
            ObjectStatusChanged(event_id=uuid.uuid4().hex, object_id=object_id, ts=time.time(), status=status)
        )

    async def publish_model(
        self,
        object_id: str,
        name: str = "Desk lamp",
        version: int = 1,
        status: LiveStatus | None = LiveStatus.PRODUCTION,
        formats: tuple[str, ...] = ("ply", "spz", "sog"),
    ) -> dict[str, bytes]:
        """Write a version's files into the local store and announce them as the publisher does:
        one file per splat format (named by the format registry's suffix), a thumbnail, viewer.json."""
        customer = object_id.split("-", 1)[0]
        prefix = f"models/{customer}/{object_id}/v{version}"
        splats = {
            f"{object_id}{splat_formats.get(fmt).suffixes[0]}": (fmt, SPLAT_BODIES[fmt]) for fmt in formats
        }
        # viewer.json links as the publisher writes them for the local store: staff addresses
        staff = f"{self.rt.http_url}{STAFF_PUBLISHED_PREFIX}{prefix}/"
        config = {
            "object_id": object_id,
            "camera": {"fov": 50},
            "version": 1,
            "files": [
                {
                    "format": fmt,
                    "url": staff + name,
                    "bytes": len(data),
                    "sha256": hashlib.sha256(data).hexdigest(),
                }
                for name, (fmt, data) in splats.items()
            ],
            "thumbnail": staff + "thumbnail.png",
        }
        contents = {name: data for name, (_, data) in splats.items()} | {
            "thumbnail.png": b"\x89PNG" + b"t" * 100,
            "viewer.json": msgspec.json.encode(config),
        }
        kinds = {
            "thumbnail.png": ("thumbnail", "png", "image/png"),
            "viewer.json": ("viewer_config", "json", "application/json"),
        }
        files: list[PublishedFile] = []
        for fname, data in contents.items():
            path = self.published / prefix / fname
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            spec = splat_formats.from_name(fname)
            kind, fmt, ctype = kinds.get(fname) or (
                "splat",
                spec.name if spec else "",
                "application/octet-stream",
            )
            files.append(
                PublishedFile(
                    kind=kind,
                    format=fmt,
                    key=f"{prefix}/{fname}",
                    url=f"unused://{prefix}/{fname}",
                    bytes=len(data),
                    sha256=hashlib.sha256(data).hexdigest(),
                    content_type=ctype,
                )
            )
        now = time.time()
        await self.event(
            ObjectRegistered(
                event_id=f"reg-{object_id}",
                object_id=object_id,
                ts=now,
                customer=customer,
                display_name=name,
                slug=object_id,
                serial=1,
            )
        )
        await self.event(
            ObjectPublished(
                event_id=f"pub-{object_id}-{version}",
                object_id=object_id,
                ts=now,
                version=version,
                job_id="job-1",
                live_url="",
                files=files,
            )
        )
        if status is not None:
            await self.status(object_id, status)
        return contents


async def get(session: aiohttp.ClientSession, url: str | URL, **kw: Any) -> tuple[int, Any, dict[str, str]]:
    async with session.get(url, **kw) as r:
        body = await r.read()
        ctype = r.headers.get("Content-Type", "")
        return r.status, (msgspec.json.decode(body) if "json" in ctype else body), dict(r.headers)


async def fuzz_inputs(gw: Gateway) -> FuzzInputs:
    """A published model and every credential, link and pass the document's operations take."""
    await gw.publish_model(OID)
    token = await gw.issue("acme")
    key = await gw.issue("acme", kind=CredentialKind.PUBLISHABLE)
    async with aiohttp.ClientSession() as s:
        st, body, _ = await get(s, f"{gw.url}/v1/models/{OID}", headers={"Authorization": f"Bearer {token}"})
        assert st == 200, body
    link = URL(body["poster_url"])
    parts = gw.svc.parts
    assert parts is not None
    key_id = key.split("_")[1]
    embed_pass = embed.issue(parts.signer, OID, ORIGIN, key_id, expiry(parts.cfg.link_ttl_s))
    _, _, version, name = link.path.rsplit("/", 3)
    try:
        bundle_file = assets.bundle().file
    except assets.ViewerBundleMissing:  # not built here: the bundle and the embed page answer 503
        bundle_file = "foto3d-viewer.js"
    examples: dict[str, dict[str, Any]] = {
        "getModel": {"object_id": OID, "formats": ["ply", "spz"]},
        "getFile": {
            "object_id": OID,
            "version": int(version.removeprefix("v")),
            "name": name,
            **{k: link.query[k] for k in ("exp", "cid", "sig")},
        },
        "getUsage": {"since": "2026-01-01", "until": "2099-12-31", "object_id": OID},
        "embedPage": {"object_id": OID},
        "embedModel": {"pass": embed_pass, "object_id": OID, "formats": ["sog"]},
        "embedBeacon": {"pass": embed_pass},
        "viewerBundle": {"file": bundle_file},
    }
    return FuzzInputs(
        base_url=gw.url, secret_token=token, publishable_key=key, origin=ORIGIN, examples=examples
    )
