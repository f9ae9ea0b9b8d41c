"""A cloud trainer gets its key and certificate from the command, through a secret.

`foto3d auth bundle` writes a participant's nkey and TLS files as one owner-only JSON (what
goes into Secrets Manager); the scaler's user-data reads it back with the instance's role,
writes each file owner-only for the container's user, and starts the trainer with them.
The script runs here for real, with stand-ins for `aws`, `docker`, `curl` and `shutdown`
(the commands an EC2 machine has and this one must not run).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from foto3d.services.scaler.backends.aws_ec2 import AwsEc2Backend
from foto3d.services.scaler.policy import LaunchRequest
from foto3d.services.scaler.settings import AwsSettings

FOTO3D = [sys.executable, "-m", "foto3d.cli.main"]


def auth(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FOTO3D, "auth", "--dir", str(folder), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def stand_in(bin_dir: Path, name: str, script: str) -> None:
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)


def test_the_user_data_hands_the_trainer_the_bundle_of_the_command(tmp_path: Path) -> None:
    site = tmp_path / "auth"
    assert auth(site, "add", "trainer", "cloud").returncode == 0
    assert auth(site, "tls", "init").returncode == 0
    assert auth(site, "tls", "issue", "trainer-cloud").returncode == 0
    missing = auth(site, "bundle", "trainer-nope", "--out", str(tmp_path / "x.json"))
    assert missing.returncode != 0 and "no live participant" in missing.stderr
    bundle = tmp_path / "bundle.json"
    done = auth(site, "bundle", "trainer-cloud", "--out", str(bundle))
    assert done.returncode == 0, done.stderr
    seed = (site / "keys" / "trainer-cloud.nk").read_text().strip()
    assert seed not in done.stdout
    assert stat.S_IMODE(bundle.stat().st_mode) == 0o600
    body = json.loads(bundle.read_text())
    tls = site / "tls" / "trainer-cloud"
    assert body == {
        "nkey": seed,
        "ca": (tls / "ca.pem").read_text(),
        "cert": (tls / "trainer-cloud.pem").read_text(),
        "key": (tls / "trainer-cloud.key").read_text(),
    }

    cfg = AwsSettings(region="eu-west-1", credentials_secret="foto3d/trainer", image="img:1")
    script = AwsEc2Backend(cfg, ["tls://hub:4222"]).user_data(
        LaunchRequest(token="t", job_id="j", max_jobs=1)
    )
    creds = tmp_path / "etc-foto3d"
    assert "CREDS=/etc/foto3d\n" in script
    script = script.replace("CREDS=/etc/foto3d\n", f"CREDS={creds}\n")
    # The container's user owns the files; off root (a developer's machine) that is oneself.
    user = 10001 if os.geteuid() == 0 else os.geteuid()
    script = script.replace("10001", str(user))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    stand_in(bin_dir, "aws", f'echo "aws $*" >> {calls}\ncat {bundle}\n')
    stand_in(bin_dir, "docker", f'echo "docker $*" >> {calls}\n')
    stand_in(bin_dir, "curl", "echo i-0123\n")
    stand_in(bin_dir, "shutdown", f'echo "shutdown $*" >> {calls}\n')
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    run = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert seed not in run.stdout + run.stderr

    log = calls.read_text()
    assert "aws secretsmanager get-secret-value --region eu-west-1 --secret-id foto3d/trainer" in log
    for name, field in (("trainer.nk", "nkey"), ("ca.pem", "ca"), ("cert.pem", "cert"), ("key.pem", "key")):
        f = creds / name
        assert f.read_text() == body[field], name
        assert stat.S_IMODE(f.stat().st_mode) == 0o600 and f.stat().st_uid == user, name
    assert stat.S_IMODE(creds.stat().st_mode) == 0o700
    (docker,) = [line for line in log.splitlines() if line.startswith("docker ")]
    for arg in (
        f"-v {creds}:/etc/foto3d:ro",
        "-e FOTO3D_NATS_CREDS=/etc/foto3d/trainer.nk",
        "-e FOTO3D_NATS_TLS_CA=/etc/foto3d/ca.pem",
        "-e FOTO3D_NATS_TLS_CERT=/etc/foto3d/cert.pem",
        "-e FOTO3D_NATS_TLS_KEY=/etc/foto3d/key.pem",
        "-e FOTO3D_NATS_URL=tls://hub:4222",
        "img:1 serve trainer",
    ):
        assert arg in docker, arg
    assert log.rstrip().endswith("shutdown -h now")
