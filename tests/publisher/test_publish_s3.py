"""Publishing to S3 (moto's server): layout, content types, cache headers, checksums,
multipart, idempotency, progress, and an S3 outage half-way followed by a retry."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

from foto3d.app.runtime import Runtime
from foto3d.libs.bus.connection import Bus
from foto3d.libs.config import Settings
from foto3d.libs.viewer.png import decode_png_size
from foto3d.proto.objects import PublishProgress, publish_progress_subject
from testkit.running import running_services
from testkit.servers import MotoServer
from testkit.waiting import eventually
from tests.catalog.helpers import APPROVE, call, make_artifacts, signed_in, train

BUCKET = "models-test"
MiB = 1024 * 1024


def s3_settings(settings: Settings, moto: MotoServer) -> Settings:
    settings.raw["publisher"] = {
        "bucket": BUCKET,
        "prefix": "live",
        "endpoint_url": moto.url,
        "region": "us-east-1",
        "public_base_url": "https://cdn.example.com",
        "multipart_threshold_mb": 1,
        "multipart_chunk_mb": 5,
        "retries": 1,
        "connect_timeout_s": 1,
        "read_timeout_s": 5,
    }
    return settings


async def approved_object(
    rt: Runtime,
    s: aiohttp.ClientSession,
    bus: Bus,
    folder: Path,
    extra: dict[str, int],
    moto: MotoServer | None = None,
) -> tuple[str, str]:
    await call(s, "POST", "/api/customers", {"slug": "acme"})
    _, obj = await call(s, "POST", "/api/objects", {"customer": "acme", "display_name": "Arm chair"})
    oid = obj["object_id"]
    artifacts = make_artifacts(folder, extra=extra)
    if moto is not None:  # the trainer stored the .spz in S3: the publisher fetches it from there
        client = moto.client()
        client.create_bucket(Bucket="artifacts")
        spz = next(a for a in artifacts if a.format == "spz")
        client.upload_file(spz.uri.removeprefix("file://"), "artifacts", f"jobs/{oid}/model.spz")
        artifacts = [
            msgspec.structs.replace(a, uri=f"s3://artifacts/jobs/{oid}/model.spz") if a is spz else a
            for a in artifacts
        ]
    job = await train(bus, oid, artifacts)

    async def in_review() -> bool:
        _, o = await call(s, "GET", f"/api/objects/{oid}")
        return bool(o["stage"] == "in_review")

    await eventually(in_review, "training events")
    st, body = await call(s, "POST", f"/api/objects/{oid}/review", APPROVE)
    assert st == 200, body
    return oid, job


async def test_publish_to_s3_is_complete_verified_and_idempotent(
    settings: Settings, bus: Bus, moto: MotoServer, tmp_path: Path
) -> None:
    s3 = moto.client()
    s3.create_bucket(Bucket=BUCKET)
    async with running_services(s3_settings(settings, moto), ["catalog", "publisher"]) as rt:
        s = await signed_in(rt, settings)
        async with s:
            oid, _job = await approved_object(rt, s, bus, tmp_path / "a", {"spz": 6 * MiB}, moto)
            progress: list[PublishProgress] = []

            async def on_progress(msg: Any) -> None:
                progress.append(msgspec.json.decode(msg.data, type=PublishProgress))

            sub = await bus.nc.subscribe(publish_progress_subject(oid), cb=on_progress)
            await bus.nc.flush()  # subscribed at the server before the first progress event
            st, body = await call(s, "POST", f"/api/objects/{oid}/publish")
            assert st == 200, body
            await bus.nc.flush()
            await sub.unsubscribe()
            pub = body["published"]
            prefix = f"live/models/acme/{oid}/v1"
            assert body["live_url"] == f"https://cdn.example.com/{prefix}/viewer.json"
            assert pub["uploaded"] == 4
            assert progress and progress[-1].files_done == progress[-1].files_total == 4

            listed = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"])
            assert listed == sorted(
                f"{prefix}/{name}" for name in (f"{oid}.ply", f"{oid}.spz", "thumbnail.png", "viewer.json")
            )
            types = {"ply": "application/octet-stream", "spz": "application/octet-stream",
                     "png": "image/png", "json": "application/json"}  # fmt: skip
            for f in pub["files"]:
                head = s3.head_object(Bucket=BUCKET, Key=f"live/{f['key']}", ChecksumMode="ENABLED")
                assert head["ContentType"] == types[f["format"]]
                assert "immutable" in head["CacheControl"]
                assert head["Metadata"]["sha256"] == f["sha256"]
                assert head["ContentLength"] == f["bytes"]
                data = s3.get_object(Bucket=BUCKET, Key=f"live/{f['key']}")["Body"].read()
                assert hashlib.sha256(data).hexdigest() == f["sha256"]
                if f["format"] == "spz":  # 6 MiB over a 1 MiB threshold: two parts
                    assert head["ETag"].strip('"').endswith("-2")
                else:
                    assert "-" not in head["ETag"]
                    assert head["ChecksumSHA256"] == base64.b64encode(bytes.fromhex(f["sha256"])).decode()
                if f["format"] == "png":
                    assert decode_png_size(data) == (256, 256)
                if f["format"] == "json":
                    config = json.loads(data)
                    assert config["object_id"] == oid and config["model_version"] == 1
                    assert config["thumbnail"].endswith("/thumbnail.png")
                    assert {x["format"] for x in config["files"]} == {"ply", "spz"}
            stamps = {o["Key"]: o["LastModified"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}

            st, again = await call(s, "POST", f"/api/objects/{oid}/publish")
            assert st == 200 and again["published"].get("uploaded", 0) == 0
            assert {
                o["Key"]: o["LastModified"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]
            } == stamps
            _, tl = await call(s, "GET", f"/api/objects/{oid}/timeline")
            assert [e["kind"] for e in tl].count("published") == 1


async def test_s3_outage_half_way_leaves_catalog_consistent_and_retry_completes(
    settings: Settings, bus: Bus, moto: MotoServer, tmp_path: Path
) -> None:
    moto.client().create_bucket(Bucket=BUCKET)
    async with running_services(s3_settings(settings, moto), ["catalog", "publisher"]) as rt:
        s = await signed_in(rt, settings)
        async with s:
            oid, _job = await approved_object(rt, s, bus, tmp_path / "a", {"spz": 2 * MiB, "splat": 2 * MiB})
            stopped = asyncio.Event()
            stopping: list[asyncio.Task[None]] = []

            async def on_progress(msg: Any) -> None:
                p = msgspec.json.decode(msg.data, type=PublishProgress)
                if p.files_done >= 1 and not stopped.is_set():
                    stopped.set()  # S3 goes away after the first file
                    stopping.append(asyncio.create_task(asyncio.to_thread(moto.stop)))

            sub = await bus.nc.subscribe(publish_progress_subject(oid), cb=on_progress)
            await bus.nc.flush()  # subscribed at the server before the first progress event
            st, body = await call(s, "POST", f"/api/objects/{oid}/publish")
            await sub.unsubscribe()
            assert stopped.is_set()
            assert st == 502 and "nothing was marked published" in body["error"]
            assert f"s3://{BUCKET}/live/models/acme/{oid}/v1/" in body["error"]
            _, o = await call(s, "GET", f"/api/objects/{oid}")
            assert o["stage"] == "approved" and o["published_version"] is None and o["live_url"] is None

            # S3 is back but empty (moto keeps nothing): the bucket is missing -> a clear message
            await stopping[0]
            moto.start()
            st, body = await call(s, "POST", f"/api/objects/{oid}/publish")
            assert st == 502 and f"S3 bucket '{BUCKET}' does not exist" in body["error"]

            moto.client().create_bucket(Bucket=BUCKET)
            st, body = await call(s, "POST", f"/api/objects/{oid}/publish")
            assert st == 200, body
            assert body["stage"] == "published" and body["published"]["uploaded"] == 5
            _, tl = await call(s, "GET", f"/api/objects/{oid}/timeline")
            kinds = [e["kind"] for e in tl]
            assert kinds.count("publish_failed") == 2 and kinds[-1] == "published"
