"""`foto3d objects …`, `foto3d publish` and `foto3d users` against running services."""

from __future__ import annotations

import asyncio
import csv
from pathlib import Path

import pytest

from foto3d.cli.main import main
from foto3d.libs.auth import UserStore
from foto3d.libs.bus.connection import Bus
from foto3d.libs.config import Settings
from foto3d.libs.viewer.png import encode_png
from testkit.running import running_services
from testkit.waiting import eventually
from tests.catalog.helpers import make_artifacts, train


async def test_objects_and_publish_commands(
    settings: Settings, bus: Bus, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert settings.nats_urls
    system = ["--nats", settings.nats_urls[0], "--data", str(settings.data_dir)]

    async def cli(*argv: str) -> tuple[int, str, str]:
        code = await asyncio.to_thread(main, [*argv[:2], *system, *argv[2:]])
        out, err = capsys.readouterr()
        return code, out, err

    async with running_services(settings, ["catalog", "publisher"]):
        code, out, _ = await cli("objects", "customer-add", "acme", "--name", "ACME", "--as", "ops")
        assert code == 0 and "added customer acme" in out
        image = tmp_path / "ref.png"
        import numpy as np

        image.write_bytes(encode_png(np.zeros((8, 8, 3), np.uint8)))
        code, out, _ = await cli(
            "objects", "register", "--customer", "acme", "--name", "Desk lamp", "--image", str(image)
        )
        assert code == 0 and out.strip() == "acme-desk-lamp-001"
        oid = out.strip()
        code, _, err = await cli("objects", "register", "--customer", "umbrella", "--name", "Desk lamp")
        assert code == 2 and "unknown customer 'umbrella'" in err and "Traceback" not in err

        code, out, _ = await cli(
            "objects", "captured", oid, "--dataset", "/data/lamp", "--photos", "120", "--rig", "rig-2"
        )
        assert code == 0 and out.strip() == f"{oid}: captured"
        await train(bus, oid, make_artifacts(tmp_path / "a"))

        async def trained() -> bool:
            _, out, _ = await cli("objects", "show", oid)
            return "in_review" in out

        await eventually(trained, "training events")
        code, _, err = await cli("objects", "approve", oid, "--check", "alignment")
        assert code == 2 and "training quality" in err
        code, out, _ = await cli("objects", "approve", oid, "--all", "--comment", "fine", "--as", "maria")
        assert code == 0 and "approved job" in out
        code, out, err = await cli("publish", oid, "--as", "maria")
        assert code == 0 and "is live (3 of 3 files uploaded)" in out and "/v1/viewer.json" in out
        assert "3/3 files" in err  # the progress bar
        code, out, _ = await cli("publish", oid, "-q")
        assert code == 0 and "nothing new to upload" in out
        code, out, _ = await cli("objects", "status", oid, "disabled", "--reason", "contract ended")
        assert code == 0 and "status disabled" in out
        code, out, _ = await cli("objects", "timeline", oid)
        assert "approved job" in out and "maria" in out and "contract ended" in out
        export = tmp_path / "objects.csv"
        code, _, _ = await cli("objects", "export", "--status", "disabled", "-o", str(export))
        rows = list(csv.DictReader(export.open()))
        assert code == 0 and [r["object_id"] for r in rows] == [oid]
        code, out, _ = await cli("objects", "list", "--customer", "acme", "--stage", "disabled")
        assert code == 0 and oid in out
        code, out, _ = await cli("objects", "board")
        assert code == 0 and "disabled: 1" in out

    code, out, _ = await cli("users", "add", "ana", "--generate", "--display-name", "Ana")
    assert code == 0 and "with password" in out
    password = out.split("with password ")[1].split()[0]
    assert await UserStore.in_data_dir(settings.data_dir).authenticate("ana", password) is not None
    code, _, err = await cli("users", "add", "ana", "--generate")
    assert code == 2 and "already exists" in err
    code, _, err = await cli("objects", "list")
    assert code == 2 and "catalog service is not running" in err
