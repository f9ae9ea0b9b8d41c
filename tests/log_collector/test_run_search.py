"""`foto3d run` on a failing command: its lines and its exit status are searchable."""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap

from foto3d.libs.config import Settings
from foto3d.proto.logs import Level, LogQuery
from foto3d.services.log_collector.service import LogCollector
from testkit.running import running_services
from testkit.waiting import eventually

SCRIPT = textwrap.dedent(
    """
    import sys
    print("loading dataset chair-01", flush=True)
    print("iteration 1 psnr 21.5", flush=True)
    print("RuntimeError: CUDA error: out of memory", file=sys.stderr, flush=True)
    sys.exit(3)
    """
)


async def test_failing_command_lines_and_exit_status_are_searchable(settings: Settings) -> None:
    async with running_services(settings, ["log_collector"], http=False) as rt:
        (svc,) = rt.services
        assert isinstance(svc, LogCollector)
        env = {**os.environ, "FOTO3D_DATA": str(settings.data_dir)}
        proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "foto3d.cli.main", "run", "--nats", (settings.nats_urls or [""])[0]),
            *("--job", "job-run", "--object", "chair-01", "--source", "legacy-train", "--quiet"),
            *("--", sys.executable, "-c", SCRIPT),
            env=env,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 3, err.decode()

        async def exit_record_stored() -> bool:
            return bool((await svc.query(LogQuery(job_id="job-run", text="status 3"))).records)

        await eventually(exit_record_stored, what="the exit-status record")
        lines = (await svc.query(LogQuery(job_id="job-run", limit=50))).records
        messages = [r.message for r in reversed(lines)]
        assert messages[0].startswith("starting: ")
        assert "RuntimeError: CUDA error: out of memory" in messages
        stdout = [m for m in messages if m in ("loading dataset chair-01", "iteration 1 psnr 21.5")]
        assert stdout == ["loading dataset chair-01", "iteration 1 psnr 21.5"]
        assert all(r.object_id == "chair-01" and r.source_id == "legacy-train" for r in lines)
        (exit_rec,) = (await svc.query(LogQuery(job_id="job-run", text="exited status 3"))).records
        assert exit_rec.level >= Level.ERROR
        assert exit_rec.exc == "RuntimeError: CUDA error: out of memory"  # its last stderr lines
        errors = (await svc.query(LogQuery(job_id="job-run", min_level=int(Level.ERROR)))).records
        assert {r.message for r in errors} >= {"RuntimeError: CUDA error: out of memory", exit_rec.message}
        found = (await svc.query(LogQuery(text="cuda memory", object_id="chair-01", min_level=30))).records
        # the line itself, and the exit record that quotes it (newest first)
        assert [r.message for r in found] == [exit_rec.message, "RuntimeError: CUDA error: out of memory"]
