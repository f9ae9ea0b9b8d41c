"""Trainers on EC2 GPU instances, one per launch, started from a launch template.

- ``run_instances`` gets ``ClientToken`` = the job id the machine is started
  for (``<job>-a<attempt>`` for a retry, which needs a fresh machine), and an
  instance tagged with the same token that is pending or running is returned
  instead of starting a second one;
- tags ``foto3d:role=trainer``, ``foto3d:job=<job id>``, ``foto3d:token=<token>``
  find our instances again after a scaler restart;
- ``InstanceInitiatedShutdownBehavior=terminate``: the user-data powers the
  machine off when the trainer exits (e.g. after ``--max-jobs 1``), and that
  ends the bill;
- the reaper (the scaler's policy) terminates instances whose trainer never
  sent a heartbeat or went silent.

boto3 is blocking, so every call runs in a thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import shlex
from pathlib import Path
from typing import Any

import boto3

from foto3d.services.scaler.backends.base import Backend, BackendError
from foto3d.services.scaler.policy import LaunchRequest, Machine
from foto3d.services.scaler.settings import AwsSettings

ROLE_TAG = "foto3d:role"
JOB_TAG = "foto3d:job"
TOKEN_TAG = "foto3d:token"
LIVE_STATES = ["pending", "running"]

# Placeholders: {nats_urls} {image} {artifact_store} {max_jobs_arg} {region} {credentials_secret}
# (already shell-quoted).
USER_DATA = """#!/bin/bash
# foto3d trainer: run one trainer container, then power off (the instance terminates itself).
# The placeholders in braces are filled in by the scaler (a copy lives in deploy/aws/user-data.sh).
# shellcheck disable=SC1083
set -uo pipefail
IMDS=http://169.254.169.254/latest
TOKEN=$(curl -sf -X PUT "$IMDS/api/token" -H "X-aws-ec2-metadata-token-ttl-seconds: 300")
INSTANCE_ID=$(curl -sf -H "X-aws-ec2-metadata-token: $TOKEN" "$IMDS/meta-data/instance-id")
# Its key and TLS certificate on the bus (`foto3d auth bundle`, docs/security.md), from Secrets
# Manager with the instance's role; written owner-only for the container's user, never logged.
CREDS=/etc/foto3d
if ! BUNDLE=$(aws secretsmanager get-secret-value --region {region} --secret-id {credentials_secret} \\
    --query SecretString --output text); then
  echo "foto3d: no trainer credentials in Secrets Manager" >&2
  shutdown -h now
  exit 1
fi
if ! install -d -m 0700 -o 10001 -g 10001 "$CREDS" || ! printf '%s' "$BUNDLE" | CREDS="$CREDS" python3 -c '
import json, os, sys
bundle = json.load(sys.stdin)
for name, field in (("trainer.nk", "nkey"), ("ca.pem", "ca"), ("cert.pem", "cert"), ("key.pem", "key")):
    path = os.path.join(os.environ["CREDS"], name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, bundle[field].encode())
    os.close(fd)
    os.chown(path, 10001, 10001)
'; then
  echo "foto3d: the trainer credentials could not be written" >&2
  shutdown -h now
  exit 1
fi
unset BUNDLE
docker run --rm --gpus all --network host --stop-timeout 60 \\
  -v "$CREDS:/etc/foto3d:ro" \\
  -e FOTO3D_NATS_CREDS=/etc/foto3d/trainer.nk \\
  -e FOTO3D_NATS_TLS_CA=/etc/foto3d/ca.pem \\
  -e FOTO3D_NATS_TLS_CERT=/etc/foto3d/cert.pem \\
  -e FOTO3D_NATS_TLS_KEY=/etc/foto3d/key.pem \\
  -e FOTO3D_NATS_URL={nats_urls} \\
  -e FOTO3D_TRAINER_ID="$INSTANCE_ID" \\
  -e FOTO3D_ARTIFACT_STORE={artifact_store} \\
  {image} serve trainer --data /data --no-http {max_jobs_arg}
shutdown -h now
"""


def client_token(token: str) -> str:
    """EC2 accepts at most 64 ASCII characters; a longer token is hashed to fit."""
    return token if len(token) <= 64 else hashlib.sha256(token.encode()).hexdigest()[:64]


class AwsEc2Backend(Backend):
    name = "aws-ec2"

    def __init__(self, cfg: AwsSettings, nats_urls: list[str], scaler_id: str = "foto3d") -> None:
        self.cfg = cfg
        self.nats_urls = cfg.nats_urls or nats_urls
        self.scaler_id = scaler_id
        self._client: Any = None

    def describe(self) -> str:
        return f"EC2 in {self.cfg.region} from launch template {self.cfg.launch_template}"

    @property
    def ec2(self) -> Any:
        if self._client is None:
            self._client = boto3.client(
                "ec2", region_name=self.cfg.region, endpoint_url=self.cfg.endpoint_url or None
            )
        return self._client

    def user_data(self, req: LaunchRequest) -> str:
        template = Path(self.cfg.user_data_file).read_text() if self.cfg.user_data_file else USER_DATA
        return template.format(
            nats_urls=shlex.quote(",".join(self.nats_urls)),
            image=shlex.quote(self.cfg.image),
            artifact_store=shlex.quote(self.cfg.artifact_store),
            max_jobs_arg=f"--max-jobs {int(req.max_jobs)}" if req.max_jobs else "",
            region=shlex.quote(self.cfg.region),
            credentials_secret=shlex.quote(self.cfg.credentials_secret),
        )

    def _template(self) -> dict[str, str]:
        lt = self.cfg.launch_template
        key = "LaunchTemplateId" if lt.startswith("lt-") else "LaunchTemplateName"
        return {key: lt, "Version": self.cfg.launch_template_version}

    def _find(self, filters: list[dict[str, Any]]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        paginator = self.ec2.get_paginator("describe_instances")
        for page in paginator.paginate(Filters=filters):
            for res in page.get("Reservations", []):
                found.extend(res.get("Instances", []))
        return found

    @staticmethod
    def _machine(inst: dict[str, Any]) -> Machine:
        tags = {t["Key"]: t["Value"] for t in inst.get("Tags", [])}
        launched = inst.get("LaunchTime")
        return Machine(
            id=inst["InstanceId"],
            launched_at=launched.timestamp() if launched is not None else 0.0,
            job_hint=tags.get(JOB_TAG) or None,
            token=tags.get(TOKEN_TAG) or None,
        )

    def _launch(self, req: LaunchRequest) -> Machine:
        existing = self._find(
            [
                {"Name": f"tag:{TOKEN_TAG}", "Values": [req.token]},
                {"Name": "instance-state-name", "Values": LIVE_STATES},
            ]
        )
        if existing:
            return self._machine(existing[0])
        tags = [
            {"Key": ROLE_TAG, "Value": "trainer"},
            {"Key": TOKEN_TAG, "Value": req.token},
            {"Key": "foto3d:scaler", "Value": self.scaler_id},
            {"Key": "Name", "Value": f"foto3d-trainer-{(req.job_id or req.token)[:40]}"},
            *({"Key": k, "Value": v} for k, v in self.cfg.extra_tags.items()),
        ]
        if req.job_id:
            tags.append({"Key": JOB_TAG, "Value": req.job_id})
        kwargs: dict[str, Any] = {
            "MinCount": 1,
            "MaxCount": 1,
            "LaunchTemplate": self._template(),
            "ClientToken": client_token(req.token),
            "InstanceInitiatedShutdownBehavior": "terminate",
            "UserData": self.user_data(req),
            "TagSpecifications": [
                {"ResourceType": "instance", "Tags": tags},
                {"ResourceType": "volume", "Tags": tags[:2]},
            ],
        }
        if self.cfg.instance_type:
            kwargs["InstanceType"] = self.cfg.instance_type
        try:
            resp = self.ec2.run_instances(**kwargs)
        except Exception as exc:
            raise BackendError(f"run_instances failed: {exc}") from exc
        return self._machine(resp["Instances"][0])

    async def launch(self, req: LaunchRequest) -> Machine:
        return await asyncio.to_thread(self._launch, req)

    async def machines(self) -> list[Machine]:
        filters = [
            {"Name": f"tag:{ROLE_TAG}", "Values": ["trainer"]},
            {"Name": "instance-state-name", "Values": LIVE_STATES},
        ]
        found = await asyncio.to_thread(self._find, filters)
        return [self._machine(i) for i in found]

    async def stop(self, machine_id: str) -> None:
        # Terminating sends the OS an ACPI shutdown: systemd stops the container with SIGTERM,
        # and the trainer hands its job back within its grace.
        try:
            await asyncio.to_thread(self.ec2.terminate_instances, InstanceIds=[machine_id])
        except Exception as exc:
            raise BackendError(f"terminate_instances {machine_id} failed: {exc}") from exc
