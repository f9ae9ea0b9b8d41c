"""`foto3d submit` trains only registered objects, and every command records the same actor."""

from __future__ import annotations

import asyncio
import json
import logging
import shlex
import sys
from pathlib import Path

import pytest

from foto3d.libs.config import Settings
from testkit.running import running_services


async def foto3d(settings: Settings, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    urls = ",".join(settings.nats_urls or [])
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "foto3d.cli.main", *args, "--nats", urls, "--data", str(settings.data_dir),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


def suggested_command(err: str) -> list[str]:
    """The `foto3d …` command a refusal names, as argv after `foto3d`."""
    start = err.index("foto3d objects ")
    end = min(i for i in (err.find(")", start), err.find("`", start), len(err)) if i != -1)
    return shlex.split(err[start:end])[1:]


def make_dataset(folder: Path) -> Path:
    (folder / "images").mkdir(parents=True)
    for i in range(3):
        (folder / "images" / f"frame_{i:05d}.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return folder


async def test_submit_refuses_unregistered_objects_and_names_the_command(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    dataset = make_dataset(tmp_path / "photos")
    async with running_services(settings, ["catalog", "queue"], http=False):
        # A customer nobody added: nothing is queued, the refusal says how to add it.
        rc, out, err = await foto3d(
            settings, "submit", "--object", "zzz-chair-001", "--dataset", str(dataset)
        )
        assert rc == 2 and out == "", err
        assert "unknown customer 'zzz'" in err and "foto3d objects customer-add zzz" in err
        rc, out, _ = await foto3d(settings, "jobs", "--json")
        assert rc == 0 and json.loads(out)["jobs"] == []

        # `--customer Acme`: the suggested command is one the catalog accepts, and it works.
        rc, _, err = await foto3d(settings, "objects", "register", "--customer", "Acme", "--name", "Chair")
        assert rc == 2 and "customer-add acme" in err, err
        rc, out, err = await foto3d(settings, *suggested_command(err))
        assert rc == 0 and "added customer acme (Acme)" in out, err
        rc, _, err = await foto3d(settings, "objects", "register", "--customer", "Acme", "--name", "Chair")
        assert rc == 2 and "did you mean 'acme'" in err, err

        # A known customer but an object never registered: the refusal names `objects register`.
        rc, _, err = await foto3d(settings, "submit", "--object", "acme-chair-001", "--dataset", str(dataset))
        assert (
            rc == 2
            and "acme-chair-001 is not registered" in err
            and "objects register --customer acme" in err
        )
        rc, out, _ = await foto3d(settings, "objects", "register", "--customer", "acme", "--name", "Chair")
        assert rc == 0 and out.strip() == "acme-chair-001"

        # Registered: accepted, and `--as` is who the job records as its submitter.
        rc, out, err = await foto3d(
            settings,
            "submit",
            "--object",
            "acme-chair-001",
            "--dataset",
            str(dataset),
            "--as",
            "maria",
            "--json",
        )
        assert rc == 0, err
        job_id = json.loads(out)["job_id"]
        rc, out, _ = await foto3d(settings, "job", job_id, "--json")
        assert rc == 0 and json.loads(out)["timeline"][0]["text"].endswith("by maria"), out

    # Taking the lead is routine: INFO, not a WARNING that looks like trouble.
    leader = [r for r in caplog.records if "is now the leader" in r.getMessage()]
    assert leader and all(r.levelno == logging.INFO for r in leader)
