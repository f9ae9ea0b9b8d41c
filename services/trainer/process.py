"""Run one pipeline step as a subprocess and hand every output line to a callback.

Each step runs in its own process group, so stopping it also stops what it
spawned (nerfstudio's data loader workers, COLMAP). On Linux the child also
gets ``PR_SET_PDEATHSIG``: if the trainer is killed with SIGKILL, its step dies
with it, so a redelivered job can never run twice at the same time on one GPU.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from foto3d.libs.child import die_with_parent

log = logging.getLogger(__name__)

LineFn = Callable[[str, str], None]  # (line, "stdout" | "stderr")
_LINE_LIMIT = 4 * 1024 * 1024


class StepError(RuntimeError):
    """A step exited non-zero; ``step`` names it, the message carries its last output."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(message)
        self.step = step


@dataclass
class StepProcess:
    step: str
    argv: Sequence[str]
    cwd: Path
    env: dict[str, str]
    on_line: LineFn
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=30))
    proc: asyncio.subprocess.Process | None = None

    async def run(self) -> None:
        """Run to completion; raises StepError on a non-zero exit."""
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            cwd=self.cwd,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            preexec_fn=die_with_parent(signal.SIGKILL),
            limit=_LINE_LIMIT,
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        try:
            await asyncio.gather(
                self._pump(self.proc.stdout, "stdout"), self._pump(self.proc.stderr, "stderr")
            )
            rc = await self.proc.wait()
        except asyncio.CancelledError:
            await self.terminate()
            raise
        if rc != 0:
            raise StepError(self.step, self._failure(rc))

    async def _pump(self, stream: asyncio.StreamReader, name: str) -> None:
        while True:
            try:
                raw = await stream.readline()
            except ValueError:  # a line longer than the limit: take what is there
                raw = await stream.read(_LINE_LIMIT)
            if not raw:
                return
            line = raw.decode(errors="replace").rstrip("\r\n")
            if line.strip():
                self.tail.append(line)
            try:
                self.on_line(line, name)
            except Exception:
                log.exception("output handler failed on a line of %s", self.step)

    def _failure(self, rc: int) -> str:
        how = f"was killed by signal {-rc}" if rc < 0 else f"exited with status {rc}"
        last = [t.strip() for t in self.tail if t.strip()]
        errors = [t for t in last if "Error" in t or "error" in t]
        reason = (errors or last or ["(no output)"])[-1]
        return f"{self.step} {how}: {reason[:500]}"

    async def terminate(self, grace: float = 5.0) -> None:
        """SIGTERM the step's process group, SIGKILL after ``grace``."""
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), timeout=grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
