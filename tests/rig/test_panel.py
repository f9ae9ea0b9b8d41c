"""The operator panel and `foto3d rig status`: offline, backlog, and errors at once."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from foto3d.cli.main import main as cli
from foto3d.proto.rig import LinkState
from foto3d.rig.agent import RigAgent
from foto3d.rig.client import RigClient
from foto3d.rig.leaf import start_leaf
from foto3d.rig.panel import Panel
from foto3d.rig.settings import SiteSettings
from testkit.servers import free_port
from tests.rig.helpers import site_without_hub, wait_status, write_rig

RIG = "rig-pn"
FOTO3D = [sys.executable, "-m", "foto3d.cli.main"]


@pytest.mark.browser
async def test_error_logged_offline_shows_on_the_panel_within_a_second(tmp_path: Path, page: Any) -> None:
    rig_dir = tmp_path / "rig"
    # A site that is not there: the rig is offline from the start.
    settings = write_rig(
        rig_dir,
        RIG,
        [site_without_hub("cloud", tmp_path / "s")],
    )
    leaf = start_leaf(rig_dir, settings)
    agent = RigAgent(rig_dir, settings, leaf_url=leaf.client_url)
    await agent.start()
    panel = Panel(rig_dir, settings, leaf_url=leaf.client_url)
    url = await panel.start(port=0)
    shipper = RigClient(rig_dir, leaf_url=leaf.client_url).shipper()
    try:
        await wait_status(rig_dir, RIG, lambda s: s.agent_pid is not None, 10, "the agent's first status")
        await page.goto(url)
        await page.wait_for_selector("#head.offline", timeout=5000)
        assert "Offline" in await page.inner_text("#link")
        assert "No site reachable" in await page.inner_text("#problems")
        shipper.emit(20, "warming up")  # the shipper's connection is up before the clock starts
        assert shipper.flush(10)

        started = time.monotonic()
        shipper.emit(40, "camera 2 does not answer", object_id="acme-vase-001")
        await page.wait_for_selector("text=camera 2 does not answer", timeout=1000)
        elapsed = time.monotonic() - started
        assert elapsed < 1.0, f"the error took {elapsed:.2f} s to show"
        text = await page.inner_text("#problems")
        assert "acme-vase-001" in text and "re-shoot it now" in text
        # Both batches wait on the rig, counted on the page.
        await page.wait_for_function(
            "Number(document.getElementById('logs').textContent) === 2", timeout=3000
        )

        # The terminal says the same (exit status 1: offline).
        assert cli(["rig", "status", "--dir", str(rig_dir)]) == 1
    finally:
        shipper.close()
        await panel.stop()
        await agent.stop()
        leaf.stop()


STALLING = "import sys; print('turning'); sys.stderr.write('turntable: motor stalled at 212 degrees\\n'); sys.exit(2)"


@pytest.mark.browser
async def test_a_failed_command_shows_its_own_stderr_on_the_panel_and_in_rig_status(
    tmp_path: Path, page: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    rig_dir = tmp_path / "rig"
    settings = write_rig(rig_dir, RIG, [site_without_hub("cloud", tmp_path / "s")])  # offline
    leaf = start_leaf(rig_dir, settings)
    agent = RigAgent(rig_dir, settings, leaf_url=leaf.client_url)
    await agent.start()
    panel = Panel(rig_dir, settings, leaf_url=leaf.client_url)
    url = await panel.start(port=0)
    try:
        await wait_status(rig_dir, RIG, lambda s: s.agent_pid is not None, 10, "the agent's first status")
        await page.goto(url)
        await page.wait_for_selector("#head.offline", timeout=5000)
        env = {**os.environ, "FOTO3D_NATS_URL": leaf.client_url, "FOTO3D_LOG_SPOOL": str(tmp_path / "spool")}
        proc = await asyncio.create_subprocess_exec(
            *FOTO3D, "run", "--kind", "rig", "--source", "capture-step", "--", sys.executable, "-c", STALLING,
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 2, err.decode()

        # The panel: the failure, and under it the command's own words.
        failed = page.locator(".problem", has_text="command exited with status 2")
        await failed.locator("pre.detail").wait_for(timeout=10_000)
        assert await failed.locator("pre.detail").inner_text() == "turntable: motor stalled at 212 degrees"
        # One time format on the panel: each problem line starts with the only clock time in it.
        for what in await page.locator(".problem .what").all_inner_texts():
            assert len(re.findall(r"\d{1,2}:\d{2}:\d{2}", what)) == 1, what

        # `foto3d rig status` quotes the same lines under the problem.
        st = await wait_status(
            rig_dir, RIG, lambda s: any(p.detail for p in s.problems), 10, "the problem in the status file"
        )
        capsys.readouterr()
        assert cli(["rig", "status", "--dir", str(rig_dir)]) == 1
        out = capsys.readouterr().out
        assert "command exited with status 2" in out
        assert "| turntable: motor stalled at 212 degrees" in out
        problem = next(p for p in st.problems if p.detail)
        assert problem.detail == ["turntable: motor stalled at 212 degrees"]
    finally:
        await panel.stop()
        await agent.stop()
        leaf.stop()


async def test_status_when_the_agent_is_not_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rig_dir = tmp_path / "rig"
    write_rig(
        rig_dir, RIG, [SiteSettings(name="local", nats="nats://127.0.0.1:4222", store=str(tmp_path / "s"))]
    )
    assert cli(["rig", "status", "--dir", str(rig_dir)]) == 1
    out = capsys.readouterr().out
    assert "OFFLINE" in out and "agent is not running" in out and "systemctl restart foto3d-rig" in out


async def test_status_reports_a_dead_agent(tmp_path: Path) -> None:
    rig_dir = tmp_path / "rig"
    settings = write_rig(
        rig_dir,
        RIG,
        [site_without_hub("local", tmp_path / "s")],
    )
    leaf = start_leaf(rig_dir, settings)
    agent = RigAgent(rig_dir, settings, leaf_url=leaf.client_url)
    await agent.start()
    try:
        st = await wait_status(rig_dir, RIG, lambda s: s.agent_pid is not None, 10, "a status")
        assert st.link == LinkState.OFFLINE
    finally:
        await agent.stop()
        leaf.stop()
    # The status file names this process, which lives on, but the file is no longer refreshed.
    st = await wait_status(
        rig_dir, RIG, lambda s: any("agent is not running" in p.text for p in s.problems), 10, "stale status"
    )
    assert st.link == LinkState.OFFLINE


def test_init_writes_settings_and_refuses_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = str(tmp_path / "rig")
    assert cli(["rig", "init", "--dir", d, "--rig-id", "rig-01", "--local-nats", "nats://x:4222"]) == 2
    assert "needs both" in capsys.readouterr().err
    assert (
        cli(
            [
                "rig",
                "init",
                "--dir",
                d,
                "--rig-id",
                "Rig 1",
                "--cloud-nats",
                "nats://h:4222",
                "--cloud-store",
                "s3://b/p",
            ]
        )
        == 2
    )
    assert "rig_id" in capsys.readouterr().err
    assert (
        cli(
            [
                "rig",
                "init",
                "--dir",
                d,
                "--rig-id",
                "rig-01",
                "--cloud-nats",
                "h:4222",
                "--cloud-store",
                "s3://b/p",
            ]
        )
        == 2
    )
    assert "needs a scheme" in capsys.readouterr().err
    args = [
        "rig",
        "init",
        "--dir",
        d,
        "--rig-id",
        "rig-01",
        "--local-nats",
        "nats://site.lan:4222",
        "--local-store",
        str(tmp_path / "store"),
        "--cloud-nats",
        "tls://hub.example.net:4222",
        "--cloud-store",
        "s3://captures/rigs",
        "--cloud-s3-endpoint",
        "https://s3.example.net",
        "--cloud-leaf",
        "tls://leaf.example.net:7422",
    ]
    assert cli(args) == 0
    assert cli(args) == 2  # exists
    assert cli([*args, "--force"]) == 0
    rig = RigClient(d)
    assert [s.name for s in rig.settings.sites] == ["local", "cloud"]
    assert rig.settings.sites[1].s3_endpoint == "https://s3.example.net"
    assert rig.settings.leaf_port == 4290
    conf = (tmp_path / "rig" / "leaf" / "nats.conf").read_text()
    assert 'domain: "rig-rig-01"' in conf
    # One leafnode remote per site, on the default leafnode port of the site's hosts.
    assert '"nats-leaf://site.lan:7422"' in conf and '"tls://leaf.example.net:7422"' in conf


async def test_a_site_that_refuses_is_reported(tmp_path: Path) -> None:
    """A reachable site without the LOGS stream: the operator is told, nothing is dropped."""
    from foto3d.libs.nats_server import NatsServer

    bare = NatsServer(store_dir=tmp_path / "bare", port=free_port()).start()  # JetStream, no streams
    rig_dir = tmp_path / "rig"
    settings = write_rig(
        rig_dir,
        RIG,
        [site_without_hub("local", tmp_path / "s", nats=bare.client_url)],
    )
    leaf = start_leaf(rig_dir, settings)
    agent = RigAgent(rig_dir, settings, leaf_url=leaf.client_url)
    await agent.start()
    try:
        with RigClient(rig_dir, leaf_url=leaf.client_url).shipper() as shipper:
            shipper.emit(20, "hello")
            assert shipper.flush(10)
        st = await wait_status(
            rig_dir, RIG, lambda s: any("does not take" in p.text for p in s.problems), 20, "the problem"
        )
        problem = next(p for p in st.problems if "does not take" in p.text)
        assert "Site local" in problem.text and "Nothing is lost" in problem.action
        assert "stream not found" in problem.text
        assert st.logs_waiting == 1
    finally:
        await agent.stop()
        leaf.stop()
        bare.stop()
