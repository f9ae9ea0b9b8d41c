"""The whole pipeline, the way a person runs it: real services, real CLI, real trainer processes.

Customer and object onboarded in the catalog -> dataset submitted -> a `foto3d serve trainer`
process (fake nerfstudio on PATH) trains it -> the catalog timeline shows submitted, training,
trained -> approved -> published to the local store -> the live link serves the files; the
training logs are searchable; a second job whose training fails ends dead and raises an
alert mail in the notifier's local outbox.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from foto3d.libs.bus.connection import CREDS_ENV, Bus
from foto3d.libs.config import Settings
from foto3d.proto.jobs import JobFailed, JobSucceeded
from testkit.identities import creds_for
from testkit.running import running_services
from testkit.signin import staff_cookie
from testkit.waiting import eventually
from tests.trainer.helpers import EventLog, fake_env, make_dataset

REPO = Path(__file__).resolve().parents[1]
SERVICES = ["log_collector", "notifier", "queue", "catalog", "publisher", "token_gateway"]


class Cli:
    """`foto3d` as a subprocess against one system; run off the event loop the services use."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)

    async def __call__(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        proc = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "foto3d.cli.main", *args],
            cwd=REPO,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert "Traceback" not in proc.stderr, proc.stderr
        if ok:
            assert proc.returncode == 0, f"foto3d {' '.join(args)} -> {proc.returncode}: {proc.stderr}"
        return proc

    async def json(self, *args: str) -> Any:
        return json.loads((await self(*args, "--json")).stdout)


def start_trainer(nats_url: str, data: Path, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """A real trainer process that takes one job and exits (one trainer per dataset)."""
    argv = ["serve", "trainer", "--nats", nats_url, "--data", str(data), "--no-http", "--max-jobs", "1"]
    argv += ["--creds", str(creds_for("trainer"))]  # the trainer's own key, as in the cloud
    return subprocess.Popen(
        [sys.executable, "-m", "foto3d.cli.main", *argv],
        cwd=REPO,
        env=dict(env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


async def test_capture_to_live_link_and_a_failure_that_alerts(
    settings: Settings, bus: Bus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("FOTO3D_SMTP_URL", "FOTO3D_ALERT_TO", "FOTO3D_ALERT_WEBHOOK", "FOTO3D_ARTIFACT_STORE"):
        monkeypatch.delenv(var, raising=False)
    # One attempt per job, so an injected failure is final at once (retries are the queue's tests).
    settings.raw["queue"] = {"max_attempts": 1, "backoff_s": 0}
    settings.raw["token_gateway"] = {"port": 0}
    assert settings.nats_urls
    nats_url = settings.nats_urls[0]
    cli_env = {k: v for k, v in os.environ.items() if not k.startswith("FOTO3D_")}
    cli_env |= {"FOTO3D_NATS_URL": nats_url, "FOTO3D_DATA": str(settings.data_dir), "FOTO3D_USER": "rita"}
    cli_env[CREDS_ENV] = str(creds_for("staff"))  # a person's key, as on a staff laptop
    cli = Cli(cli_env)
    dataset = make_dataset(tmp_path / "chair-photos")
    trainers: list[subprocess.Popen[bytes]] = []

    try:
        async with running_services(settings, SERVICES) as rt:
            http = rt.http_url
            # -- onboarding ------------------------------------------------------------------
            await cli("objects", "customer-add", "acme", "--name", "Acme Furniture")
            object_id = (
                await cli("objects", "register", "--customer", "acme", "--name", "Oak chair")
            ).stdout.strip()
            assert object_id == "acme-oak-chair-001"

            # -- training that succeeds -------------------------------------------------------
            reply = await cli.json(
                "submit", "--object", object_id, "--dataset", str(dataset), "--steps", "200"
            )
            job_id = reply["job_id"]
            events = await EventLog.watch(bus, job_id)
            trainers.append(start_trainer(nats_url, settings.data_dir, fake_env()))
            done = await events.wait_for(JobSucceeded, timeout=30)
            assert done.artifacts, "a succeeded job must name its files"
            job = await cli.json("job", job_id)
            assert job["job"]["state"] == "succeeded"

            async def timeline_kinds() -> list[str]:
                return [e["kind"] for e in await cli.json("objects", "timeline", object_id)]

            kinds = await eventually(
                lambda: _when(timeline_kinds(), lambda k: "trained" in k), "the catalog to record 'trained'"
            )
            for earlier, later in [
                ("registered", "submitted"),
                ("submitted", "training"),
                ("training", "trained"),
            ]:
                assert kinds.index(earlier) < kinds.index(later), kinds

            # -- review and publish ---------------------------------------------------------
            refused = await cli("publish", object_id, "-q", ok=False)
            assert refused.returncode != 0 and "approved" in refused.stderr
            await cli("objects", "approve", object_id, "--all", "--comment", "sharp and aligned")
            await cli("publish", object_id, "-q")
            shown = await cli.json("objects", "show", object_id)
            live = shown.get("live_url") or shown.get("live_link")
            assert live, f"no live link after publishing: {shown}"
            kinds = await timeline_kinds()
            assert kinds.index("trained") < kinds.index("approved") < kinds.index("published"), kinds

            # -- customers see it through the token gateway (published = production) -----------
            issued = await cli("tokens", "issue", "acme", "--label", "e2e")
            found = re.search(r"sk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}", issued.stdout)
            assert found, issued.stdout
            token = found.group(0)
            gateway = next(s for s in rt.services if s.name == "token_gateway")
            customers = gateway.health().extra["listener"]
            # A staff session for the dashboard's log search below; the gateway ignores it.
            async with aiohttp.ClientSession(cookies=await staff_cookie(settings)) as session:
                auth = {"Authorization": f"Bearer {token}"}
                async with session.get(f"{customers}/v1/models/{object_id}", headers=auth) as resp:
                    assert resp.status == 200, await resp.text()
                    model = await resp.json()
                assert model["object_id"] == object_id and model["config"]["object_id"] == object_id
                ply = next(f for f in model["files"] if f["format"] == "ply")
                async with session.get(ply["url"]) as resp:
                    assert resp.status == 200
                    assert (await resp.read()).startswith(b"ply\n")
                # the unauthenticated store route is gone
                async with session.get(http + "/published/" + live.split("/published/", 1)[1]) as resp:
                    assert resp.status == 404

                # -- the training logs are searchable -----------------------------------------
                async def log_records() -> list[dict[str, Any]]:
                    async with session.get(f"{http}/api/logs", params={"job": job_id, "limit": "500"}) as r:
                        assert r.status == 200
                        return list((await r.json())["records"])

                records = await eventually(
                    lambda: _when(log_records(), lambda rs: any("succeeded" in x["message"] for x in rs)),
                    "the trainer's log records",
                )
                assert all(r["job_id"] == job_id for r in records)
                assert any(r["logger"].startswith("nerfstudio") for r in records), (
                    "ns-train output not shipped"
                )
                async with session.get(f"{http}/api/logs", params={"job": job_id, "q": "gaussians"}) as r:
                    assert r.status == 200
                    found = (await r.json())["records"]
                assert found, "full-text search found nothing"
                assert all("gaussians" in x["message"].lower() for x in found)
                assert len(found) < len(records), "the search did not narrow anything down"

            # -- training that fails ----------------------------------------------------------
            outbox = settings.data_dir / "notifier" / "outbox"
            before = set(outbox.glob("*.eml")) if outbox.exists() else set()
            reply = await cli.json(
                "submit", "--object", object_id, "--dataset", str(dataset), "--steps", "300", "--force"
            )
            bad_job = reply["job_id"]
            assert bad_job != job_id
            events = await EventLog.watch(bus, bad_job)
            trainers.append(start_trainer(nats_url, settings.data_dir, fake_env({"FAKE_NS_FAIL": "train"})))
            failed = await events.wait_for(JobFailed, timeout=30)
            assert "train" in failed.step
            state = await eventually(
                lambda: _when(cli.json("job", bad_job), lambda j: j["job"]["state"] in ("dead", "failed")),
                "the queue to give the job up",
            )
            assert state["job"]["state"] == "dead", "one attempt allowed, so the job is dead"

            def new_mail_about_job() -> str:
                for f in sorted(set(outbox.glob("*.eml")) - before):
                    text = f.read_text(errors="replace")
                    if bad_job in text:
                        return text
                return ""

            mail = await eventually(new_mail_about_job, "an alert mail about the failed job")
            assert object_id in mail
            kinds = await eventually(
                lambda: _when(timeline_kinds(), lambda k: "failed" in k), "the catalog to record the failure"
            )
    finally:
        for proc in trainers:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            if proc.stderr is not None:
                proc.stderr.close()
    assert [p.returncode for p in trainers] == [0, 0], "each trainer should exit by itself after its job"


async def _when(value: Any, cond: Callable[[Any], bool]) -> Any:
    """``await value`` and return it if ``cond`` holds, else None (for :func:`wait_until`)."""
    got = await value
    return got if cond(got) else None
