"""`foto3d submit / jobs / job / cancel / requeue` as a person runs them."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from foto3d.libs.config import Settings
from testkit.running import running_services


async def foto3d(settings: Settings, *args: str) -> tuple[int, str, str]:
    urls = ",".join(settings.nats_urls or [])
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "foto3d.cli.main",
        *args,
        "--nats",
        urls,
        "--data",
        str(settings.data_dir),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


async def test_cli_submit_list_show_cancel_requeue(settings: Settings, dataset: Path, tmp_path: Path) -> None:
    async with running_services(settings, ["queue"], http=False):
        rc, out, err = await foto3d(settings, "submit", "--object", "Acme Chair", "--dataset", str(dataset))
        assert rc == 2 and "naming standard" in err and "Traceback" not in err
        rc, out, err = await foto3d(
            settings, "submit", "--object", "acme-chair-001", "--dataset", str(dataset), "--steps", "5"
        )
        assert rc == 2 and "option --steps" in err, err
        rc, out, err = await foto3d(
            settings, "submit", "--object", "acme-chair-001", "--dataset", str(tmp_path / "missing")
        )
        assert rc == 2 and "does not exist" in err, err

        rc, out, err = await foto3d(
            settings, "submit", "--object", "acme-chair-001", "--dataset", str(dataset), "--priority", "vip"
        )
        assert rc == 0, err
        job_id = out.split()[0]
        queued, note = out.strip().split("\n")
        assert queued == f"{job_id} queued (vip)"
        assert note.strip().startswith(
            "no trainer is alive or can start here — waiting since"
        )  # none runs here
        rc, out, _ = await foto3d(settings, "submit", "--object", "acme-chair-001", "--dataset", str(dataset))
        assert rc == 0 and out.startswith(f"{job_id} already exists (queued)")

        rc, out, _ = await foto3d(settings, "jobs", "--json", "--state", "queued")
        listed = json.loads(out)
        assert [j["job_id"] for j in listed["jobs"]] == [job_id]
        rc, out, _ = await foto3d(settings, "jobs")
        assert rc == 0 and job_id in out and "queued" in out

        rc, out, err = await foto3d(settings, "cancel", job_id, "--reason", "wrong turntable")
        assert rc == 0 and "cancelled" in out, err
        rc, out, _ = await foto3d(settings, "job", job_id)
        assert "state     cancelled" in out and "wrong turntable" in out
        assert f"/logs?job={job_id}" in out
        rc, out, err = await foto3d(settings, "requeue", job_id)
        assert rc == 0 and "queued again" in out, err
        rc, out, err = await foto3d(settings, "job", "j-nope")
        assert rc == 2 and "no job j-nope" in err
