"""Processes that end badly: `foto3d run` on a failing command, SDK crash reporting.

Real subprocesses, so exit statuses and signals are the real ones.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
from pathlib import Path

from foto3d.libs.bus.connection import Bus
from foto3d.libs.nats_server import NatsServer
from foto3d.proto.logs import Level, LogRecord
from tests.logsdk.streamread import read_logs

FOTO3D = str(Path(sys.executable).parent / "foto3d")

FAILING = textwrap.dedent(
    """
    import sys
    print("loading 12 images", flush=True)
    print("WARNING: low overlap", flush=True)
    def fit():
        raise RuntimeError("diverged at step 3")
    try:
        fit()
    except RuntimeError:
        import traceback
        traceback.print_exc()
    print("more after the traceback", flush=True)
    sys.exit(3)
    """
)


def child_env(server: NatsServer, tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(FOTO3D_NATS_URL=server.client_url, FOTO3D_LOG_SPOOL=str(tmp_path / "spool"))
    env.update(FOTO3D_DATA=str(tmp_path / "data"))
    return env


async def records_of(bus: Bus, source: str) -> list[LogRecord]:
    return [r for _, r in (await read_logs(bus.js)).records(source)]


async def test_run_ships_lines_traceback_and_exit_status(
    bus: Bus, nats_server: NatsServer, tmp_path: Path
) -> None:
    proc = await asyncio.create_subprocess_exec(
        FOTO3D, "run", "--job", "job-42", "--object", "chair-01", "--source", "legacy-train",
        "--", sys.executable, "-c", FAILING,
        env=child_env(nats_server, tmp_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 3, err.decode()
    assert b"loading 12 images" in out and b"Traceback" in err  # echoed to the terminal too
    stored = await read_logs(bus.js)
    assert {b.job_id for b in stored.batches} == {"job-42"}
    assert {b.object_id for b in stored.batches} == {"chair-01"}
    recs = [r for _, r in stored.records("legacy-train")]
    by_msg = {r.message: r for r in recs}
    assert by_msg["loading 12 images"].level == Level.INFO
    assert by_msg["WARNING: low overlap"].level == Level.WARNING
    tb = by_msg["RuntimeError: diverged at step 3"]
    assert tb.level == Level.ERROR and tb.logger == "stderr"
    assert tb.exc is not None and tb.exc.startswith("Traceback") and "in fit" in tb.exc
    assert not any(r.message.startswith("  File") for r in recs), "traceback lines must be one record"
    assert recs[-1].level == Level.ERROR and "exited with status 3" in recs[-1].message
    assert "more after the traceback" in by_msg


async def test_run_forwards_sigterm_and_reports_the_signal(
    bus: Bus, nats_server: NatsServer, tmp_path: Path
) -> None:
    script = "import time; print('ready', flush=True); time.sleep(60)"
    proc = await asyncio.create_subprocess_exec(
        FOTO3D, "run", "--source", "sleeper", "--", sys.executable, "-c", script,
        env=child_env(nats_server, tmp_path), stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    assert await asyncio.wait_for(proc.stdout.readline(), 30) == b"ready\n"
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), 30) == 128 + signal.SIGTERM
    recs = await records_of(bus, "sleeper")
    assert "killed by SIGTERM (exit status 143)" in recs[-1].message


async def test_run_missing_command_exits_127(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        FOTO3D, "run", "--nats", "nats://127.0.0.1:1", "--", "no-such-command-f3d",
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await proc.communicate()
    assert proc.returncode == 127
    assert err.decode().strip() == "foto3d: error: no-such-command-f3d: command not found"


CRASHING = textwrap.dedent(
    """
    import logging, sys
    from foto3d.libs import logsdk
    logsdk.attach(source="{source}")
    logging.getLogger("train").info("started")
    {ending}
    """
)


async def run_script(server: NatsServer, tmp_path: Path, source: str, ending: str) -> tuple[int, str]:
    code = CRASHING.format(source=source, ending=ending)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, env=child_env(server, tmp_path), stderr=asyncio.subprocess.PIPE
    )
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, err.decode()


async def test_uncaught_exception_is_shipped_as_critical_with_traceback(
    bus: Bus, nats_server: NatsServer, tmp_path: Path
) -> None:
    rc, err = await run_script(nats_server, tmp_path, "crasher", "raise KeyError('camera 7')")
    assert rc == 1 and "KeyError" in err  # the usual traceback still reaches stderr
    recs = await records_of(bus, "crasher")
    assert recs[0].message == "started"
    crit = [r for r in recs if r.level == Level.CRITICAL]
    assert len(crit) == 1
    assert "KeyError" in crit[0].message and crit[0].exc is not None
    assert crit[0].exc.startswith("Traceback (most recent call last):")


async def test_nonzero_sys_exit_and_sigterm_are_shipped_as_critical(
    bus: Bus, nats_server: NatsServer, tmp_path: Path
) -> None:
    rc, _ = await run_script(nats_server, tmp_path, "exiter", "sys.exit(4)")
    assert rc == 4
    rc, _ = await run_script(
        nats_server, tmp_path, "termed", "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"
    )
    assert rc == -signal.SIGTERM  # died of the signal, as without the SDK
    exiter = await records_of(bus, "exiter")
    assert exiter[-1].level == Level.CRITICAL and "exits with status 4" in exiter[-1].message
    termed = await records_of(bus, "termed")
    assert termed[-1].level == Level.CRITICAL and termed[-1].message == "terminated by signal SIGTERM"
