"""Trainers as processes on this host (``foto3d up`` trains on its own machine this way).

Each trainer is ``python -m foto3d.cli.main serve trainer --nats URLS --data DIR --no-http``
with ``FOTO3D_TRAINER_ID`` set, so its heartbeats name the process the scaler
started. Its output goes to ``<data>/scaler/local/<id>.log``. Trainers get
SIGTERM when the scaler process dies, so none is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from foto3d.libs.child import die_with_parent
from foto3d.services.scaler.backends.base import Backend
from foto3d.services.scaler.policy import LaunchRequest, Machine


@dataclass
class _Proc:
    machine: Machine
    proc: asyncio.subprocess.Process
    log_path: Path


class LocalBackend(Backend):
    name = "local"

    def __init__(
        self,
        nats_urls: list[str],
        data_dir: Path,
        stop_timeout: float = 60.0,
        ns_bin: str = "",
        require_gpu: bool = True,
    ) -> None:
        self.nats_urls = nats_urls
        self.ns_bin = ns_bin
        self.require_gpu = require_gpu
        self.data_dir = data_dir
        self.log_dir = data_dir / "scaler" / "local"
        self.stop_timeout = stop_timeout
        self._procs: dict[str, _Proc] = {}
        self._by_token: dict[str, str] = {}
        self._n = 0
        self._stopping: set[asyncio.Task[None]] = set()

    def unavailable(self) -> str | None:
        search = os.pathsep.join(p for p in (self.ns_bin, os.environ.get("PATH", "")) if p)
        if shutil.which("ns-train", path=search) is None:
            return "ns-train is not on PATH (install 'foto3d[trainer]' on a GPU host)"
        if self.require_gpu and shutil.which("nvidia-smi") is None:
            return "no NVIDIA GPU here (nvidia-smi not found)"
        return None

    def describe(self) -> str:
        return f"local processes on this host (logs in {self.log_dir})"

    async def launch(self, req: LaunchRequest) -> Machine:
        known = self._by_token.get(req.token)
        if known in self._procs and self._procs[known].proc.returncode is None:
            return self._procs[known].machine
        self._n += 1
        mid = f"local-{os.getpid()}-{self._n}"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{mid}.log"
        argv = [
            sys.executable,
            "-m",
            "foto3d.cli.main",
            "serve",
            "trainer",
            "--nats",
            ",".join(self.nats_urls),
            "--data",
            str(self.data_dir),
            "--no-http",
        ]
        if req.max_jobs:
            argv += ["--max-jobs", str(req.max_jobs)]
        env = dict(os.environ, FOTO3D_TRAINER_ID=mid)
        with log_path.open("ab") as log_file:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=asyncio.subprocess.STDOUT,
                preexec_fn=die_with_parent(signal.SIGTERM),
            )
        machine = Machine(id=mid, launched_at=time.time(), job_hint=req.job_id, token=req.token)
        self._procs[mid] = _Proc(machine, proc, log_path)
        self._by_token[req.token] = mid
        return machine

    async def machines(self) -> list[Machine]:
        for mid in [m for m, p in self._procs.items() if p.proc.returncode is not None]:
            del self._procs[mid]
        return [p.machine for p in self._procs.values()]

    def pid(self, machine_id: str) -> int | None:
        p = self._procs.get(machine_id)
        return p.proc.pid if p else None

    async def stop(self, machine_id: str) -> None:
        p = self._procs.get(machine_id)
        if p is None or p.proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            p.proc.send_signal(signal.SIGTERM)
        task = asyncio.create_task(self._reap(p))
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    async def _reap(self, p: _Proc) -> None:
        try:
            await asyncio.wait_for(p.proc.wait(), self.stop_timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                p.proc.kill()
            await p.proc.wait()

    async def close(self) -> None:
        """Trainers are our children here: stop them cleanly (they hand their jobs back)."""
        for mid in list(self._procs):
            await self.stop(mid)
        if self._stopping:
            await asyncio.wait(set(self._stopping))
