"""Catalog: onboarding and naming, timelines from bus events, approval rules, publish, status, CSV."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import msgspec

from foto3d.libs.bus.connection import Bus
from foto3d.libs.config import Settings
from foto3d.proto import subjects
from foto3d.proto.jobs import JobQueued, JobSucceeded
from foto3d.proto.objects import ObjectStatusChanged
from foto3d.services.catalog.service import CatalogService
from testkit.running import running_services
from testkit.waiting import eventually
from tests.catalog.helpers import APPROVE, call, make_artifacts, signed_in, train


async def test_onboarding_assigns_ids_by_the_naming_standard(settings: Settings) -> None:
    async with running_services(settings, ["catalog"]) as rt:
        s = await signed_in(rt, settings)
        async with s:
            assert (await call(s, "POST", "/api/customers", {"slug": "acme", "name": "ACME"}))[0] == 201
            st, body = await call(s, "POST", "/api/customers", {"slug": "acme"})
            assert st == 409 and "already exists" in body["error"]
            st, body = await call(s, "POST", "/api/customers", {"slug": "Big Co"})
            assert st == 400 and "'bigco'" in body["error"]

            st, a = await call(s, "POST", "/api/objects", {"customer": "acme", "display_name": "Désk Lamp"})
            assert st == 201 and a["object_id"] == "acme-desk-lamp-001" and a["created_by"] == "rev"
            st, b = await call(s, "POST", "/api/objects", {"customer": "acme", "display_name": "desk  lamp!"})
            assert b["object_id"] == "acme-desk-lamp-002"  # same slug: next serial, never a clash

            st, body = await call(s, "POST", "/api/objects", {"customer": "nobody", "display_name": "Chair"})
            assert st == 404 and "unknown customer 'nobody'" in body["error"]
            st, body = await call(s, "POST", "/api/objects", {"customer": "acme", "display_name": "!!! ???"})
            assert st == 400 and "no letters or digits" in body["error"]
            st, body = await call(s, "POST", "/api/objects", {"customer": "acme", "display_name": "a\x07b"})
            assert st == 400 and "control characters" in body["error"]

            # not signed in: changes and reads refused
            async with __import__("aiohttp").ClientSession(base_url=rt.http_url) as anon:
                st, body = await call(anon, "POST", "/api/objects", {"customer": "acme", "display_name": "X"})
                assert st == 401
                st, _ = await call(anon, "GET", "/api/objects?customer=acme")
                assert st == 401
                st, listing = await call(s, "GET", "/api/objects?customer=acme")
                assert st == 200 and listing["total"] == 2
    # serials survive a restart (and are never reused)
    async with running_services(settings, ["catalog"]) as rt:
        s = await signed_in(rt, settings)
        async with s:
            st, c = await call(s, "POST", "/api/objects", {"customer": "acme", "display_name": "Desk lamp"})
            assert c["object_id"] == "acme-desk-lamp-003"


async def test_timeline_is_built_from_job_events_once(settings: Settings, bus: Bus, tmp_path: Path) -> None:
    settings.raw["catalog"] = {"stuck_after_s": {"in_review": 0.0, "training": 3600.0}}
    async with running_services(settings, ["catalog"]) as rt:
        s = await signed_in(rt, settings)
        async with s:
            await call(s, "POST", "/api/customers", {"slug": "acme"})
            _, obj = await call(s, "POST", "/api/objects", {"customer": "acme", "display_name": "Vase"})
            oid = obj["object_id"]
            arts = make_artifacts(tmp_path / "a")
            job = await train(bus, oid, arts)

            async def in_review() -> dict[str, object] | None:
                _, o = await call(s, "GET", f"/api/objects/{oid}")
                return o if o["stage"] == "in_review" else None

            await eventually(in_review, "the job events to reach the catalog")
            _, tl = await call(s, "GET", f"/api/objects/{oid}/timeline")
            kinds = [e["kind"] for e in tl]
            assert kinds == ["registered", "submitted", "training", "trained", "reduced"]
            assert tl[0]["actor"] == "rev" and tl[1]["actor"] == "rig-1"
            assert "9,000 → 3,000" in tl[4]["summary"]
            _, board = await call(s, "GET", "/api/board")
            assert board["counts"] == {"in_review": 1}

            # stuck once "in review" is older than 0 s: the events are stamped a few ms after
            # train() sent them, so on a fast machine the first look may come before that
            async def stuck() -> bool:
                _, board = await call(s, "GET", "/api/board")
                return [x["object_id"] for x in board["stuck"]] == [oid] and board["stuck"][0]["for_s"] >= 0

            await eventually(stuck, "the object to count as stuck", timeout=5)

            # the same job events published again (a queue restart re-sending them) add nothing
            svc = next(x for x in rt.services if isinstance(x, CatalogService))
            again = await bus.js.get_msg("JOB_EVENTS", subject=subjects.job_events(job), direct=False)
            assert again is not None
            await bus.publisher.publish_bytes(subjects.job_events(job), again.data or b"", headers=None)
            # an event type from a newer queue is skipped; a broken known one is dead-lettered
            newer = {"type": "job.paused/1", "job_id": job, "object_id": oid, "ts": 1.0}
            broken = {"type": "job.started/1", "job_id": job, "object_id": oid}
            for body in (newer, broken):
                await bus.publisher.publish_bytes(
                    subjects.job_events(job), json.dumps(body).encode(), headers=None
                )
            marker = await train(bus, oid, arts)  # a later job, so we know the re-sent one was read
            await eventually(lambda: _has_job(s, oid, marker), "the marker job to reach the catalog")
            _, tl2 = await call(s, "GET", f"/api/objects/{oid}/timeline")
            assert len(tl2) == len(tl) + 4
            dead = await bus.js.stream_info("DEAD")
            assert dead.state.messages == 1
            letter = await bus.js.get_msg("DEAD", seq=1, direct=False)
            assert letter.headers and "job.started/1" in (letter.data or b"").decode()
            assert letter.headers["F3D-Consumer"] == "catalog-jobs"
            # redelivery of a whole batch to the store changes nothing either
            dec = msgspec.json.Decoder(JobQueued | JobSucceeded)
            assert dec is not None
            before = await svc.store.counts()
            events = [
                JobQueued(**{**msgspec.structs.asdict(_queued(oid, job)), "ts": 1.0}),
            ]
            assert await svc.store.ingest(events) == 0
            assert await svc.store.counts() == before


def _queued(oid: str, job: str) -> JobQueued:
    from foto3d.proto.jobs import Priority, TrainOptions

    return JobQueued(
        job_id=job, object_id=oid, ts=0.0, dataset="d", priority=Priority.NORMAL, options=TrainOptions()
    )


async def _has_job(s: object, oid: str, job: str) -> bool:
    _, tl = await call(s, "GET", f"/api/objects/{oid}/timeline")  # type: ignore[arg-type]
    return any(e["job_id"] == job and e["kind"] == "trained" for e in tl)


async def test_approval_rules_publish_status_and_csv(settings: Settings, bus: Bus, tmp_path: Path) -> None:
    async with running_services(settings, ["catalog", "publisher"]) as rt:
        s = await signed_in(rt, settings)
        async with s:
            await call(s, "POST", "/api/customers", {"slug": "acme"})
            _, obj = await call(s, "POST", "/api/objects", {"customer": "acme", "display_name": "Stool"})
            oid = obj["object_id"]
            st, body = await call(s, "POST", f"/api/objects/{oid}/review", APPROVE)
            assert st == 409 and "only a trained object" in body["error"]
            st, body = await call(s, "POST", f"/api/objects/{oid}/publish")
            assert st == 409 and "only approved objects can be published" in body["error"]

            await train(bus, oid, make_artifacts(tmp_path / "a", extra={"spz": 5000}))
            await eventually(lambda: _stage_is(s, oid, "in_review"), "training to finish")
            half = {**APPROVE, "checklist": {"training_quality": True}}
            st, body = await call(s, "POST", f"/api/objects/{oid}/review", half)
            assert st == 400 and "position/alignment, manual adjustments done" in body["error"]
            st, body = await call(s, "POST", f"/api/objects/{oid}/review", {"decision": "rejected"})
            assert st == 400 and "needs a reason" in body["error"]
            st, body = await call(
                s, "POST", f"/api/objects/{oid}/review", {"decision": "rejected", "comment": "floaters"}
            )
            assert st == 200 and body["stage"] == "rejected"
            st, body = await call(s, "POST", f"/api/objects/{oid}/publish")
            assert st == 409 and "not approved" in body["error"]
            st, body = await call(s, "POST", f"/api/objects/{oid}/resubmit")
            assert st == 503 and "queue service is not running" in body["error"]

            job2 = await train(bus, oid, make_artifacts(tmp_path / "b", extra={"spz": 5000}))
            await eventually(lambda: _stage_is(s, oid, "in_review"), "the second training")
            st, body = await call(s, "POST", f"/api/objects/{oid}/review", APPROVE)
            assert st == 200 and body["stage"] == "approved" and body["approved_job_id"] == job2

            st, body = await call(s, "POST", f"/api/objects/{oid}/publish")
            assert st == 200, body
            pub = body["published"]
            assert body["stage"] == "published" and body["status"] == "production"
            assert pub["version"] == 1 and pub["uploaded"] == 4
            assert body["live_url"].startswith(
                rt.http_url + "/customers/published/models/acme/" + oid + "/v1/"
            )
            # customers get files only through the token gateway; read what was published
            key = body["live_url"].split("/customers/published/", 1)[1]
            config = json.loads((settings.data_dir / "published" / key).read_bytes())
            assert config["object_id"] == oid and len(config["camera"]["position"]) == 3
            assert {f["format"] for f in config["files"]} == {"ply", "spz"}
            st, again = await call(s, "POST", f"/api/objects/{oid}/publish")
            assert (
                st == 200 and again["published"].get("uploaded", 0) == 0 and again["published_version"] == 1
            )

            # disabling publishes object.status/1 at once
            sub = await bus.nc.subscribe(subjects.object_events(oid))
            await bus.nc.flush()  # the server has the subscription before the event can be sent
            st, body = await call(
                s, "POST", f"/api/objects/{oid}/status", {"status": "disabled", "reason": "ended"}
            )
            assert st == 200 and body["stage"] == "disabled"
            msg = await sub.next_msg(timeout=5)
            await sub.unsubscribe()
            ev = msgspec.json.decode(msg.data, type=ObjectStatusChanged)
            assert ev.status == "disabled" and ev.previous == "production" and ev.actor == "rev"
            st, body = await call(s, "POST", f"/api/objects/{oid}/publish")
            assert st == 409 and "disabled" in body["error"]
            st, body = await call(s, "POST", f"/api/objects/{oid}/status", {"status": "demo"})
            assert body["stage"] == "published" and body["status"] == "demo"

            _, tl = await call(s, "GET", f"/api/objects/{oid}/timeline")
            kinds = [e["kind"] for e in tl]
            assert kinds.count("published") == 1 and kinds.count("rejected") == 1
            assert kinds[-2:] == ["status", "status"]

            async with s.get("/api/objects.csv?customer=acme") as r:
                rows = list(csv.DictReader(io.StringIO(await r.text())))
            assert [r["object_id"] for r in rows] == [oid]
            assert rows[0]["status"] == "demo" and rows[0]["published_version"] == "1"
            _, none = await call(s, "GET", "/api/objects?status=production")
            assert none["total"] == 0
            _, bad = await call(s, "GET", "/api/objects?since=yesterday")
            assert "not a date" in bad["error"]


async def _stage_is(s: object, oid: str, stage: str) -> bool:
    _, o = await call(s, "GET", f"/api/objects/{oid}")  # type: ignore[arg-type]
    return bool(o["stage"] == stage)


async def test_rejected_object_goes_back_to_training_through_the_queue(
    settings: Settings, bus: Bus, tmp_path: Path
) -> None:
    dataset = tmp_path / "photos"
    dataset.mkdir()
    for i in range(3):
        (dataset / f"img{i}.jpg").write_bytes(b"\xff\xd8\xff" + bytes(100))
    async with running_services(settings, ["queue", "catalog"]) as rt:
        s = await signed_in(rt, settings)
        async with s:
            await call(s, "POST", "/api/customers", {"slug": "acme"})
            _, obj = await call(s, "POST", "/api/objects", {"customer": "acme", "display_name": "Chair"})
            oid = obj["object_id"]
            await train(bus, oid, make_artifacts(tmp_path / "a"), dataset=str(dataset))
            await eventually(lambda: _stage_is(s, oid, "in_review"), "training events")
            st, body = await call(
                s, "POST", f"/api/objects/{oid}/review", {"decision": "rejected", "comment": "blurry base"}
            )
            assert st == 200 and body["stage"] == "rejected"
            st, body = await call(s, "POST", f"/api/objects/{oid}/resubmit")
            assert st == 200, body
            new_job = body["job_id"]
            await eventually(lambda: _stage_is(s, oid, "submitted"), "the queue's job.queued event")
            _, tl = await call(s, "GET", f"/api/objects/{oid}/timeline")
            assert tl[-1]["kind"] == "submitted" and tl[-1]["job_id"] == new_job
            st, body = await call(s, "POST", f"/api/objects/{oid}/resubmit")
            assert st == 409 and "only rejected or failed objects" in body["error"]
