"""The production path across two sites (``testkit.two_sites``).

A rig linked to both sites loses them both and captures while offline; the cloud site comes
back (queue and trainer starting with it); the rig links back and uploads the
photos to the cloud's S3 store as a folder with its manifest and submits; the cloud's queue
and trainer (separate ``foto3d serve`` processes, fake ``ns-*``) train it from S3, the first
attempt failing in training and the retry succeeding; the cloud's notifier (its own process,
its own role's key, the test's SMTP server) mails that failure exactly once, and the proof
that no second mail follows is the notifier having nothing left to send. Meanwhile the on-prem hub comes up,
the rig fails back to it, and the hub is killed mid-training: the job finishes at the cloud
once, nothing is submitted twice. Every step of the job is one trace, read back from an
OTLP/HTTP receiver; the steps' durations are printed (docs/benchmarks.md keeps them).

Seen while building it: a rig started while one of its sites has never been reachable did
not link to the other within 30 s here; the test starts with both sites up (left for a
rig issue).

Past training, at the cloud site (catalog, publisher and token gateway as ``foto3d serve``
processes, the gateway in S3 mode): the catalog serves its dashboard over HTTP as deployed
(public URL, cross-site refusal, sign-in limits, administrators held to one-time codes); the
reviewer, added with ``foto3d users add``, signs in in headless Chromium with password and
one-time code, sees the trained model drawn on the object's page (pixels) and approves there;
the object is published over the bus with the staff key (as the CLI does), to the cloud's S3;
a publishable key is issued for a shop on another origin, whose page in headless Chromium
draws the model from presigned S3 links (the picture checked, not the DOM); disabled, the
gateway refuses the model within a second. The object's trace holds every step from the
submission to the customer's fetch.

One trainer per site: the on-prem site runs its own queue and trainer all along. The job's
events name the trainer of each attempt: the cloud's ran both, each once; the on-prem one,
alive and idle on its hub, took nothing (its site's queue has no job for the object). Every
service runs under its own role's key (a trainer under ``trainer-<site>``), and no service
may log a refusal by the server.

Containers cannot run on this machine, so compose and the images are not started here
(docs/deploy.md).
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
from aiohttp import web
from nats.aio.msg import Msg

from foto3d.libs.auth import UserStore
from foto3d.libs.auth.totp import new_secret, secret_bytes, totp
from foto3d.libs.bus.connection import Bus, connect
from foto3d.libs.tracing.job import CUSTOMER, JOB_ID, OBJECT_ID, STEP
from foto3d.libs.viewer import assets
from foto3d.proto import subjects
from foto3d.proto.api import ServiceError
from foto3d.proto.gateway import TOKENS_ISSUE, CredentialKind, IssueRequest
from foto3d.proto.heartbeat import Heartbeat
from foto3d.proto.jobs import GET, LIST, JobFailed, JobRef, JobsQuery, JobStarted, JobSucceeded, job_id_for
from foto3d.proto.objects import (
    CUSTOMER_ADD,
    PUBLISH,
    REGISTER,
    SHOW,
    STATUS,
    CustomerAdd,
    LiveStatus,
    ObjectRef,
    RegisterObject,
    StatusRequest,
)
from foto3d.proto.rig import DATASET_MANIFEST
from foto3d.rig.agent import RigAgent
from foto3d.rig.client import RigClient
from foto3d.rig.leaf import start_leaf
from foto3d.services.notifier.topology import WATCH_JOBS, WATCH_LOGS, WATCH_NOTICES
from testkit.identities import creds_for
from testkit.otlp import OtlpReceiver
from testkit.servers import SmtpServer, free_port
from testkit.site import local_site
from testkit.two_sites import DATASETS_BUCKET, FOTO3D, Site, make_site
from testkit.waiting import eventually
from tests.notifier.helpers import FAST
from tests.rig.helpers import make_dataset, write_rig
from tests.trainer.helpers import EventLog
from tests.viewer.pixels import canvas_rgb, object_mask

RIG = "rig-e2e"
CLOUD_TRAINER = "trainer-cloud"
ONPREM_TRAINER = "trainer-onprem"
OID = "acme-teapot-001"
STEPS = ("preflight", "process-data", "train", "export", "reduce", "upload")
# The object's steps past training, each a span in the job's trace.
LATER_STEPS = ("approve", "publish", "publish-upload", "token-issue", "model-fetch", "status")
MODELS_BUCKET = "models"
VIEWER = "document.querySelector('foto3d-viewer')"
BACKGROUND = (238, 240, 243)  # the viewer's default background, #eef0f3
# The cloud's reviewer: an administrator, so the dashboard asks for a one-time code too.
REVIEWER = "maria"
PASSWORD = "a long enough passphrase"


def _objects(site: Site, prefix: str) -> list[str]:
    listing = site.moto.client().list_objects_v2(Bucket=DATASETS_BUCKET, Prefix=prefix)
    return [o["Key"] for o in listing.get("Contents", [])]


async def _shop(snippet: dict[str, str]) -> web.Application:
    """A customer's shop page: whatever snippet the test puts in ``snippet["html"]``."""

    async def product(_request: web.Request) -> web.Response:
        body = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,">'
            f'<title>Teapot</title></head><body style="margin:0">{snippet.get("html", "")}</body></html>'
        )
        return web.Response(text=body, content_type="text/html")

    app = web.Application()
    app.router.add_get("/product", product)
    return app


@pytest.mark.browser
@pytest.mark.timeout(600)  # a few minutes of real processes on a shared 2-core machine
@pytest.mark.usefixtures("aws_env")
async def test_offline_capture_trained_at_the_cloud_from_s3_through_a_hub_kill(
    tmp_path: Path, page: Any
) -> None:
    otlp = OtlpReceiver()
    smtp = SmtpServer().start()
    buses: list[Bus] = []
    async with otlp.running():
        onprem = await make_site("onprem", tmp_path / "onprem", otlp.url)
        cloud = await make_site("cloud", tmp_path / "cloud", otlp.url)
        # The on-prem site's own queue and trainer (fake ns-*), joined to its hub from the start:
        # a second trainer that could take work, so the walk can show that it took none.
        onprem.serve("queue")
        onprem.serve("trainer", {"FOTO3D_TRAINER_HEARTBEAT": "1"})
        # The cloud's catalog runs from the start (through the outage), its dashboard on HTTP as
        # deployed; its reviewer is set up first, with the CLI. The object is registered before
        # it is photographed, as staff do.
        secret = await _add_reviewer(cloud)
        dashboard_port = free_port()
        cloud.serve("catalog", http_port=dashboard_port)
        dashboard = f"http://127.0.0.1:{dashboard_port}"
        staff = await connect([cloud.nats_url], "e2e-staff", creds=creds_for("staff"))
        buses.append(staff)
        await eventually(lambda: _added(staff), "the cloud's catalog to add the customer", timeout=60)
        registered = await staff.call(REGISTER, RegisterObject(customer="acme", display_name="Teapot"))
        assert registered.object_id == OID
        rig_dir = tmp_path / "rig"
        settings = write_rig(rig_dir, RIG, [onprem.rig_site(), cloud.rig_site()])
        leaf = start_leaf(rig_dir, settings)
        agent = RigAgent(rig_dir, settings, leaf_url=leaf.client_url)
        try:
            await agent.start()
            client = RigClient(rig_dir, leaf_url=leaf.client_url)

            def linked(name: str | None) -> bool:
                current = agent.sites.current
                return (current.config.name if current is not None else None) == name

            # Both sites up: the rig links to its preferred one, on-prem, where a trainer waits.
            await eventually(lambda: linked("onprem"), "the rig to link on-prem", timeout=60)
            assert (await _heartbeat(onprem, ONPREM_TRAINER)).pending == 0

            # 1. Both sites become unreachable; the rig captures offline.
            onprem.hub.stop()
            cloud.hub.stop()
            await eventually(lambda: linked(None), "the rig to go offline", timeout=30)
            captured = time.time()
            folder = make_dataset(tmp_path / "capture", "teapot", [40_000] * 6)
            rid = await client.asubmit(OID, folder, steps=100)
            job_id = job_id_for(rid)
            assert not _objects(cloud, "cloud/"), "nothing may be uploaded while offline"

            # 2. The cloud site comes back with its services; the rig links back.
            await cloud.start_hub()
            cloud.serve("queue")
            # The publisher and the token gateway (S3 mode: the cloud's bucket of published models).
            cloud.moto.client().create_bucket(Bucket=MODELS_BUCKET)
            gateway_port = free_port()
            s3 = {"FOTO3D_S3_BUCKET": MODELS_BUCKET, "FOTO3D_S3_REGION": "us-east-1"}
            cloud.serve("publisher", s3)
            cloud.serve("token_gateway", {**s3, "FOTO3D_GATEWAY_PORT": str(gateway_port)})
            gateway = f"http://127.0.0.1:{gateway_port}"
            # The notifier, with the test's SMTP server (under its own role's key, as every service).
            notifier_data = tmp_path / "cloud" / "data" / "notifier"
            notifier_data.mkdir(parents=True)
            (notifier_data / "foto3d.toml").write_text(FAST)
            cloud.serve(
                "notifier",
                {"FOTO3D_SMTP_URL": smtp.url, "FOTO3D_ALERT_TO": "ops@example.com"},
            )
            cloud.serve(
                "trainer",
                {"FAKE_NS_FAIL_ONCE": f"train:{tmp_path / 'failed-once'}", "FAKE_NS_STEP_DELAY": "0.04"},
            )
            bus = await connect([cloud.nats_url], "e2e-cloud")
            buses.append(bus)
            events = await EventLog.watch(bus, job_id)
            await eventually(lambda: linked("cloud"), "the rig to link back to the cloud", timeout=60)

            # 3. The photos are in the cloud's S3 store as a folder, the manifest last.
            prefix = f"cloud/datasets/{RIG}/{rid}/"
            await eventually(
                lambda: f"{prefix}{DATASET_MANIFEST}" in _objects(cloud, prefix), "the upload", timeout=60
            )
            assert len(_objects(cloud, prefix)) == 6 + 1

            # 4. The cloud trains it from S3: the first attempt fails in training, the retry runs.
            failed = await events.wait_for(JobFailed, timeout=90)
            assert failed.step == "train" and failed.attempt == 1
            await events.wait_for(JobStarted, count=2, timeout=60)

            # 5. Mid-training the on-prem hub comes up, the rig fails back to it, and it is killed.
            await onprem.start_hub()
            await eventually(lambda: linked("onprem"), "the rig to fail back on-prem", timeout=30)
            assert not any(isinstance(e, JobSucceeded) for e in events.events), "training ended too soon"
            onprem.hub.kill()
            done = (await eventually(lambda: events.of(JobSucceeded), "the retry to succeed", timeout=120))[0]
            finished = time.time()
            assert done.attempt == 2

            # Which trainer ran which attempt: the cloud's ran both, each once. The on-prem trainer,
            # back on its hub and idle, took none: its site's queue has no job for the object.
            started = [(e.attempt, e.trainer) for e in events.of(JobStarted)]
            assert started == [(1, CLOUD_TRAINER), (2, CLOUD_TRAINER)], started
            await onprem.start_hub()
            assert (await _heartbeat(onprem, ONPREM_TRAINER)).pending == 0
            assert await _jobs_at(onprem) == []

            # Nothing lost or doubled: one submission, one job, one success, at the cloud only.
            jobs = await bus.call(LIST, JobsQuery(object_id=OID))
            assert [j.job_id for j in jobs.jobs] == [job_id]
            assert len(events.of(JobSucceeded)) == 1
            assert len(events.of(JobFailed)) == 1

            # The failed attempt gave exactly one mail, naming the job and the object; no second
            # follows: the notifier has taken every input and has nothing due or pending.
            def about_the_job() -> list[str]:
                return [s for s in smtp.inbox.subjects() if job_id in s]

            mail_check = time.monotonic()
            await eventually(about_the_job, "the failed attempt's mail", timeout=30)
            await eventually(
                lambda: _nothing_left_to_send(bus, notifier_data), "the notifier to have sent all", timeout=30
            )
            [mail] = about_the_job()
            assert OID in mail and "failed in step train" in mail, mail
            print(f"\nthe failure's one mail, checked in {time.monotonic() - mail_check:.2f} s")

            # 6. One trace for the job, every step in it.
            detail = await bus.call(GET, JobRef(job_id=job_id))
            trace_id = (detail.job.traceparent or "").split("-")[1]
            await otlp.wait_for_steps(job_id, 2, STEPS)
            spans = otlp.of(JOB_ID, job_id)
            assert {s.trace_id for s in spans} == {trace_id}
            # Nothing ran twice: each step of each attempt is one span.
            ran = Counter(
                (s.attributes.get("foto3d.attempt"), s.attributes.get(STEP))
                for s in spans
                if s.attributes.get(STEP) in STEPS
            )
            assert set(ran.values()) == {1}, ran
            # The split, from the trace (printed for docs/benchmarks.md).
            first = min(s.start_ns for s in spans) / 1e9
            print(f"\ncapture -> submit span at the cloud: {first - captured:.2f} s")
            for step in STEPS:
                for s in sorted(otlp.of(STEP, step), key=lambda s: s.start_ns):
                    if s.attributes.get(JOB_ID) == job_id:
                        secs = (s.end_ns - s.start_ns) / 1e9
                        print(f"attempt {s.attributes.get('foto3d.attempt')} {step}: {secs:.2f} s")
            print(f"capture -> job succeeded: {finished - captured:.2f} s")

            # 7. Review at the cloud's dashboard in Chromium, signed in as a person does: the
            # trained model drawn on the object's page, approved there; published with the staff key.

            async def in_review() -> bool:
                return (await staff.call(SHOW, ObjectRef(object_id=OID))).stage == "in_review"

            await eventually(in_review, "the catalog to have the trained object in review", timeout=60)
            review_errors: list[str] = []
            page.on(
                "response",
                lambda r: review_errors.append(f"{r.status} {r.url}") if r.status >= 400 else None,
            )
            review_start = time.time()
            await page.goto(f"{dashboard}/login?next=/objects/{OID}")
            await page.fill('input[name="username"]', REVIEWER)
            await page.fill('input[name="password"]', PASSWORD)
            await page.fill('input[name="code"]', totp(secret_bytes(secret), time.time()))
            await page.click('button[type="submit"]')
            await page.wait_for_url(f"**/objects/{OID}", timeout=60_000)
            review3d = page.locator(".review3d")
            assert job_id in await review3d.locator("h2").inner_text()
            await page.wait_for_function(
                "() => [...document.querySelectorAll('.review3d foto3d-viewer')]"
                ".every((v) => v.state === 'ready' && v.idle)",
                timeout=120_000,
            )
            reviewed = object_mask(await canvas_rgb(page), BACKGROUND).mean()
            assert reviewed > 0.01, f"the review drew a blank picture ({reviewed:.4f} of it)"
            form = page.locator("form.review")
            for name in ("training_quality", "alignment", "manual_adjustments"):
                await form.locator(f'input[name="{name}"]').check()
            await form.locator('button[value="approved"]').click()
            await page.locator(".approved-review").wait_for(timeout=60_000)
            assert f"Approved by {REVIEWER} at" in await page.locator(".approved-by").inner_text()
            reviewed_at = time.time()
            assert not review_errors, f"the dashboard refused requests of the review: {review_errors}"
            assert (await staff.call(SHOW, ObjectRef(object_id=OID))).stage == "approved"
            published = await staff.call(PUBLISH, ObjectRef(object_id=OID), timeout=120)
            assert published.published.job_id == job_id
            keys = {o["Key"] for o in cloud.moto.client().list_objects_v2(Bucket=MODELS_BUCKET)["Contents"]}
            assert any(k.endswith("viewer.json") for k in keys), keys

            # 8. A publishable key for a shop on another origin; the bucket's CORS rule names it.
            snippet: dict[str, str] = {}
            async with local_site(await _shop(snippet)) as shop_port:
                shop = f"http://127.0.0.1:{shop_port}"  # another port: another origin
                issued = await staff.call(
                    TOKENS_ISSUE,
                    IssueRequest(
                        customer="acme",
                        kind=CredentialKind.PUBLISHABLE,
                        models=[OID],
                        origins=[shop],
                        expires_in_days=1.0,
                    ),
                    timeout=30,
                )
                key = issued.token

                def cors_origins() -> set[str]:
                    try:
                        rules = cloud.moto.client().get_bucket_cors(Bucket=MODELS_BUCKET)["CORSRules"]
                    except Exception:
                        return set()
                    return {o for r in rules for o in r.get("AllowedOrigins", [])}

                await eventually(
                    lambda: shop in cors_origins(), "the bucket's CORS rule for the shop", timeout=30
                )

                # 9. The shop page draws the model from presigned links to the cloud's S3.
                bundle = assets.bundle()
                snippet["html"] = assets.embed_snippet(
                    object_id=OID,
                    api_base=gateway,
                    key=key,
                    bundle_url=f"{gateway}/viewer/{bundle.file}",
                    sri=bundle.sri,
                )
                fetched: list[str] = []
                page.on("requestfinished", lambda r: fetched.append(r.url))
                await page.goto(f"{shop}/product")
                await page.wait_for_function(
                    f"() => ['ready', 'unavailable'].includes({VIEWER}?.state)", timeout=120_000
                )
                assert await page.evaluate(f"{VIEWER}.state") == "ready"
                await page.wait_for_function(f"() => {VIEWER}.idle", timeout=120_000)
                first_frame = time.time()
                drawn = object_mask(await canvas_rgb(page), BACKGROUND).mean()
                assert drawn > 0.01, f"the shop's viewer drew a blank picture ({drawn:.4f} of it)"
                from_s3 = [u for u in fetched if u.startswith(cloud.moto.url) and "Signature" in u]
                assert from_s3, f"no presigned S3 link was fetched: {fetched}"

                # 10. Disabled: the gateway refuses the model within a second.
                async with aiohttp.ClientSession() as http:
                    url = f"{gateway}/v1/models/{OID}?key={key}"

                    async def refused() -> bool:
                        async with http.get(url, headers={"Origin": shop}) as resp:
                            return resp.status == 404

                    assert not await refused(), "the live model is refused before it is disabled"
                    await staff.call(STATUS, StatusRequest(object_id=OID, status=LiveStatus.DISABLED))
                    start = time.monotonic()
                    await eventually(refused, "the gateway to refuse the disabled model", timeout=1.0)
                    assert time.monotonic() - start < 1.0

            # 11. The object's trace: every step past training is in the job's trace.
            def later_steps() -> set[object]:
                return {s.attributes.get(STEP) for s in otlp.of(OBJECT_ID, OID) if s.trace_id == trace_id}

            def refused_fetch_exported() -> bool:
                return any(
                    s.attributes.get(STEP) == "model-fetch" and "foto3d.refused" in s.attributes
                    for s in otlp.of(OBJECT_ID, OID)
                    if s.trace_id == trace_id
                )

            # The gateway exports its spans in batches: the refused fetch may come a batch later.
            await eventually(
                lambda: later_steps() >= set(LATER_STEPS) and refused_fetch_exported(),
                "the object's later step spans, the refused fetch's included",
                timeout=30,
            )
            later = [s for s in otlp.of(OBJECT_ID, OID) if s.trace_id == trace_id]
            for s in later:
                if s.attributes.get(STEP) in LATER_STEPS:
                    assert s.attributes.get(CUSTOMER) == "acme", (s.name, s.attributes)
            fetches = [s for s in later if s.attributes.get(STEP) == "model-fetch"]
            assert any("foto3d.refused" in s.attributes for s in fetches), "the refused fetch is in the trace"
            assert [s for s in otlp.of(OBJECT_ID, OID) if s.attributes.get(STEP) == "register"]
            # 12. Every service ran under its own role's key, and the server refused it nothing.
            for site in (onprem, cloud):
                for service in site.procs:
                    refusals = [ln for ln in site.log(service).splitlines() if "NATS refused" in ln]
                    assert not refusals, f"{site.name} {service}: {refusals[:3]}"
            print(
                f"capture -> first customer frame: {first_frame - captured:.2f} s ({drawn:.1%} of it drawn)"
            )
            print(
                f"review in Chromium, sign-in to approved: {reviewed_at - review_start:.2f} s "
                f"(at +{review_start - captured:.2f} s; {reviewed:.1%} of the review's view drawn)"
            )
            for step in LATER_STEPS:
                for s in sorted(later, key=lambda s: s.start_ns):
                    if s.attributes.get(STEP) == step:
                        secs = (s.end_ns - s.start_ns) / 1e9
                        print(f"{step}: {secs:.3f} s (at +{s.start_ns / 1e9 - captured:.2f} s)")
        finally:
            for b in buses:
                await b.close()
            await agent.stop()
            leaf.stop()
            onprem.stop()
            cloud.stop()
            smtp.stop()


async def _nothing_left_to_send(bus: Bus, data: Path) -> bool:
    """Whether the cloud's notifier (another process) has nothing left that could become a mail.

    As ``tests.notifier.helpers.nothing_left_to_send``: every input it consumes acknowledged
    (an input is recorded before its ack), no alert's mail due within a minute, no outbox row
    pending; its store read-only from here, since the service is not in this process.
    """
    for spec in (WATCH_LOGS, WATCH_JOBS, WATCH_NOTICES):
        info = await bus.js.consumer_info(spec.stream, spec.durable)
        if info.num_pending or info.num_ack_pending:
            return False
    db = sqlite3.connect(f"file:{data / 'notifier' / 'notifier.sqlite'}?mode=ro", uri=True)
    try:
        (due,) = db.execute("SELECT min(next_mail_at) FROM alerts WHERE next_mail_at IS NOT NULL").fetchone()
        (pending,) = db.execute("SELECT count(*) FROM outbox WHERE state = 'pending'").fetchone()
    finally:
        db.close()
    return (due is None or due >= time.time() + 60.0) and not pending


async def _add_reviewer(site: Site) -> str:
    """Add the reviewer to the site's dashboard with the CLI (password on stdin), as an
    administrator does, and give them one-time codes; the codes' secret.

    The CLI has no command for codes (a person enrols on their account page): the secret goes
    into the users file the catalog reads, where enrolling stores it."""
    data = site.data("catalog")
    args = [*FOTO3D, "users", "add", REVIEWER, "--admin", "--display-name", "Maria"]
    done = await asyncio.to_thread(
        subprocess.run,
        [*args, "--password-stdin", "--data", str(data)],
        input=PASSWORD + "\n",
        env=site.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    secret = new_secret()
    await UserStore.in_data_dir(data).set_totp(REVIEWER, secret)
    return secret


async def _heartbeat(site: Site, trainer: str) -> Heartbeat:
    """The next heartbeat of ``trainer`` on the site's hub (it beats every second here)."""
    bus = await connect([site.nats_url], f"e2e-beats-{site.name}")
    try:
        beats: list[Heartbeat] = []
        decoder = msgspec.json.Decoder(Heartbeat)

        async def on_beat(msg: Msg) -> None:
            beats.append(decoder.decode(msg.data))

        sub = await bus.nc.subscribe(subjects.heartbeat("trainer", trainer), cb=on_beat)
        try:
            await eventually(lambda: beats, f"a heartbeat of {trainer} at {site.name}", timeout=60)
        finally:
            await sub.unsubscribe()
        return beats[0]
    finally:
        await bus.close()


async def _jobs_at(site: Site) -> list[str]:
    """The job ids the site's queue holds for the object (once it answers)."""
    bus = await connect([site.nats_url], f"e2e-jobs-{site.name}")
    found: list[list[str]] = []

    async def answered() -> bool:
        try:
            found.append([j.job_id for j in (await bus.call(LIST, JobsQuery(object_id=OID))).jobs])
        except Exception:
            return False
        return True

    try:
        await eventually(answered, f"the {site.name} queue to answer", timeout=60)
    finally:
        await bus.close()
    return found[0]


async def _added(staff: Bus) -> bool:
    """Add the customer; False while the catalog is not answering yet."""
    try:
        await staff.call(CUSTOMER_ADD, CustomerAdd(slug="acme", name="Acme"), timeout=5)
    except ServiceError as exc:
        return exc.code == "409"  # added by an earlier try whose reply was lost
    except Exception:
        return False
    return True
