"""The aws-ec2 backend against moto's EC2 server: idempotent launches, tags, the reaper."""

from __future__ import annotations

import asyncio
import base64
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from foto3d.libs.bus.connection import Bus
from foto3d.libs.config import Settings
from foto3d.proto import subjects
from foto3d.proto.base import encode
from foto3d.proto.heartbeat import Heartbeat
from foto3d.services.scaler.backends.aws_ec2 import AwsEc2Backend
from foto3d.services.scaler.policy import LaunchRequest
from foto3d.services.scaler.service import Scaler
from foto3d.services.scaler.settings import AwsSettings
from testkit.running import running_services
from testkit.servers import MotoServer, free_port
from testkit.waiting import eventually
from tests.trainer.helpers import make_dataset, submit_work, work_item

REGION = "eu-central-1"


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    server = MotoServer(free_port()).start()
    yield server.url
    server.stop()


@pytest.fixture
def aws(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    ec2 = boto3.client("ec2", region_name=REGION, endpoint_url=moto_url)
    urllib.request.urlopen(urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST")).close()
    ec2.create_launch_template(
        LaunchTemplateName="foto3d-trainer",
        LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "g5.xlarge"},
    )
    return ec2


def aws_cfg(moto_url: str) -> AwsSettings:
    return AwsSettings(
        region=REGION,
        endpoint_url=moto_url,
        image="registry.example/foto3d-trainer:1",
        artifact_store="s3://results/foto3d",
        nats_urls=["nats://hub.example:4222", "nats://site.example:4222"],
    )


def live(ec2: Any) -> list[dict[str, Any]]:
    out = []
    for r in ec2.describe_instances(
        Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}]
    )["Reservations"]:
        out += r["Instances"]
    return out


async def test_launch_is_idempotent_per_job_and_tagged(aws: Any, moto_url: str) -> None:
    backend = AwsEc2Backend(aws_cfg(moto_url), ["nats://ignored:4222"], scaler_id="scaler-1")
    req = LaunchRequest(token="job-123", job_id="job-123", max_jobs=1)
    first = await backend.launch(req)
    again = await backend.launch(req)
    assert again.id == first.id and len(live(aws)) == 1
    inst = live(aws)[0]
    tags = {t["Key"]: t["Value"] for t in inst["Tags"]}
    assert tags["foto3d:role"] == "trainer" and tags["foto3d:job"] == "job-123"
    assert inst["InstanceType"] == "g5.xlarge"  # from the launch template
    attr = aws.describe_instance_attribute(InstanceId=first.id, Attribute="instanceInitiatedShutdownBehavior")
    assert attr["InstanceInitiatedShutdownBehavior"]["Value"] == "terminate"
    ud = aws.describe_instance_attribute(InstanceId=first.id, Attribute="userData")["UserData"]["Value"]
    script = base64.b64decode(ud).decode()
    assert "FOTO3D_NATS_URL=nats://hub.example:4222,nats://site.example:4222" in script
    assert "registry.example/foto3d-trainer:1 serve trainer" in script and "--max-jobs 1" in script
    assert "FOTO3D_ARTIFACT_STORE=s3://results/foto3d" in script
    machines = await backend.machines()
    assert [(m.id, m.job_hint) for m in machines] == [(first.id, "job-123")]
    other = await backend.launch(LaunchRequest(token="job-456", job_id="job-456", max_jobs=1))
    assert other.id != first.id and len(live(aws)) == 2


async def test_scaler_launches_for_waiting_work_and_reaps_silent_instances(
    aws: Any, moto_url: str, settings: Settings, bus: Bus, tmp_path: Path
) -> None:
    settings.raw["scaler"] = {
        "backend": "aws-ec2",
        "max_trainers": 3,
        "one_per_dataset": True,
        "startup_timeout_s": 2.0,
        "heartbeat_timeout_s": 60.0,
        "interval_s": 0.2,
        "aws": {"region": REGION, "endpoint_url": moto_url, "image": "img:1"},
    }
    item = work_item(make_dataset(tmp_path / "ds"))
    await submit_work(bus, item)
    async with running_services(settings, ["scaler"], http=False) as rt:
        scaler = rt.services[0]
        assert isinstance(scaler, Scaler)
        await eventually(lambda: live(aws), "an instance started for the waiting job", 10)
        (inst,) = live(aws)
        tags = {t["Key"]: t["Value"] for t in inst["Tags"]}
        assert tags["foto3d:job"] == item.job_id and tags["foto3d:token"] == item.job_id
        # The instance's trainer beats (as a busy trainer would): it is kept past the startup timeout.
        beat = Heartbeat(
            kind="trainer",
            id=inst["InstanceId"],
            host="ip-10-0-0-1",
            version="0",
            ts=time.time(),
            job_id=item.job_id,
        )
        # no event proves absence here: the startup timeout is the scaler's clock, beats must span it
        for _ in range(30):  # 3 s of beats, longer than startup_timeout_s
            await bus.nc.publish(subjects.heartbeat("trainer", inst["InstanceId"]), encode(beat))
            await asyncio.sleep(0.1)
        assert [i["InstanceId"] for i in live(aws)] == [inst["InstanceId"]]
        assert scaler.launched == 1, "a second instance was started for the same job"
        # Silent for longer than the startup timeout and never beat: the reaper terminates it.
        stray = aws.run_instances(
            MinCount=1,
            MaxCount=1,
            ImageId="ami-12c6146b",
            TagSpecifications=[
                {"ResourceType": "instance", "Tags": [{"Key": "foto3d:role", "Value": "trainer"}]}
            ],
        )["Instances"][0]["InstanceId"]

        async def stray_reaped() -> bool:
            # The busy instance keeps beating all the while: only the silent one may go.
            await bus.nc.publish(subjects.heartbeat("trainer", inst["InstanceId"]), encode(beat))
            return stray not in [i["InstanceId"] for i in live(aws)]

        await eventually(stray_reaped, "the silent instance to be reaped", timeout=15, interval=0.2)
        assert inst["InstanceId"] in [i["InstanceId"] for i in live(aws)]
