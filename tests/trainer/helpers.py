"""Helpers for trainer tests: fake nerfstudio on PATH, datasets, work items, event capture."""

from __future__ import annotations

import asyncio
import os
import struct
import subprocess
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from foto3d.libs.bus.connection import Bus
from foto3d.proto import subjects
from foto3d.proto.jobs import JobEvent, JobFailed, TrainOptions, WorkItem
from foto3d.proto.logs import LogBatch, LogRecord

FAKE_NS = Path(__file__).resolve().parent.parent / "fake_nerfstudio"
REPO = Path(__file__).resolve().parents[2]
E = TypeVar("E")

_events = msgspec.json.Decoder(JobEvent)


def fake_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment with the fake ns-* first on PATH and no GPU or disk requirement."""
    env = dict(os.environ)
    env["PATH"] = f"{FAKE_NS}{os.pathsep}{env.get('PATH', '')}"
    env["FOTO3D_TRAINER_REQUIRE_GPU"] = "0"
    env["FOTO3D_TRAINER_MIN_FREE_GB"] = "0"
    env.setdefault("FAKE_NS_STEP_DELAY", "0.0005")
    env.update(extra or {})
    return env


def make_dataset(root: Path, *, processed: bool = True) -> Path:
    """A dataset folder: nerfstudio-format (transforms.json) or raw photos."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(3):
        (root / f"IMG_{i:04d}.jpg").write_bytes(b"\xff\xd8\xff\xe0fake jpeg" + bytes([i]))
    if processed:
        (root / "transforms.json").write_text('{"camera_model": "OPENCV", "frames": []}')
    return root


def work_item(
    dataset: Path | str, *, steps: int = 200, object_id: str = "chair-oak-001", **opts: Any
) -> WorkItem:
    opts.setdefault("formats", ["ply"])
    opts.setdefault("reduce", False)
    options = TrainOptions(steps=steps, **opts)
    return WorkItem(
        job_id=f"job-{uuid.uuid4().hex[:10]}",
        object_id=object_id,
        dataset=str(dataset),
        attempt=1,
        options=options,
    )


async def submit_work(bus: Bus, item: WorkItem) -> None:
    await bus.publish(
        subjects.work_train(item.priority.value), item, msg_id=f"work:{item.job_id}:{item.attempt}"
    )


class EventLog:
    """Every job event of one job, in arrival order, with waits for a given type."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self._changed = asyncio.Event()

    @classmethod
    async def watch(cls, bus: Bus, job_id: str) -> EventLog:
        log = cls()

        async def on_msg(msg: Any) -> None:
            log.events.append(_events.decode(msg.data))
            log._changed.set()

        await bus.nc.subscribe(subjects.job_events(job_id), cb=on_msg)
        await bus.nc.flush()
        return log

    def of(self, tp: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, tp)]

    async def wait_for(self, tp: type[E], timeout: float = 20.0, count: int = 1) -> E:
        async def loop() -> E:
            while True:
                found = self.of(tp)
                if len(found) >= count:
                    return found[count - 1]
                failed = [e for e in self.events if isinstance(e, JobFailed)]
                if failed and tp is not JobFailed and len(failed) >= count:
                    raise AssertionError(f"job failed instead: {failed[-1].step}: {failed[-1].error}")
                self._changed.clear()
                await self._changed.wait()

        try:
            return await asyncio.wait_for(loop(), timeout)
        except TimeoutError:
            seen = [
                type(e).__name__ + (f"({e.step}: {e.error})" if isinstance(e, JobFailed) else "")
                for e in self.events
            ]
            raise AssertionError(f"no {tp.__name__} (#{count}) within {timeout}s; saw {seen}") from None


def read_ply(path: Path) -> tuple[int, list[str], bytes]:
    """Parse a binary little-endian PLY: (vertex count, property names, body)."""
    data = path.read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    header = data[:end].decode("ascii").splitlines()
    assert header[0] == "ply" and header[1] == "format binary_little_endian 1.0", header[:2]
    count = next(int(h.split()[2]) for h in header if h.startswith("element vertex"))
    props = [h.split()[2] for h in header if h.startswith("property float")]
    body = data[end:]
    assert len(body) == count * 4 * len(props), "PLY body size does not match its header"
    first = struct.unpack_from("<" + "f" * len(props), body, 0)
    assert all(v == v for v in first), "NaN in the first gaussian"
    return count, props, body


def spawn_trainer(nats_url: str, data: Path, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """A real `foto3d serve trainer` process."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "foto3d.cli.main",
            "serve",
            "trainer",
            "--nats",
            nats_url,
            "--data",
            str(data),
            "--no-http",
        ],
        env=dict(env),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it has stopped running all the same.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


async def wait_log_records(bus: Bus, job_id: str, predicate: Any, timeout: float = 10.0) -> list[LogRecord]:
    """Records of ``job_id`` in the LOGS stream, once one of them satisfies ``predicate``."""
    decoder = msgspec.json.Decoder(LogBatch)
    sub = await bus.js.subscribe("f3d.logs.trainer.>", ordered_consumer=True)
    found: list[LogRecord] = []
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    try:
        while loop.time() < end:
            try:
                msg = await sub.next_msg(timeout=max(0.05, end - loop.time()))
            except Exception:
                break
            batch = decoder.decode(msg.data)
            found += [r for r in batch.records if (r.job_id or batch.job_id) == job_id]
            if any(predicate(r) for r in found):
                return found
    finally:
        await sub.unsubscribe()
    raise AssertionError(f"no matching log record for {job_id}; got {[r.message for r in found][:20]}")
