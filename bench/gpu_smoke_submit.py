"""Hand one training job to a running trainer and follow it to the end (used by gpu_smoke.sh).

    python bench/gpu_smoke_submit.py --nats nats://127.0.0.1:4222 --dataset DIR --steps 500

Publishes a WorkItem straight onto the WORK stream (no queue service needed), prints the
progress events as they come, then the step timings and metrics of the ``succeeded`` event,
and checks that the stored .ply is a valid 3DGS file. Exit status 0 only on success.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path

import msgspec

from foto3d.app.topology import assemble
from foto3d.libs.bus.connection import connect
from foto3d.libs.bus.topology import provision
from foto3d.proto import subjects
from foto3d.proto.jobs import (
    JobEvent,
    JobFailed,
    JobProgress,
    JobStarted,
    JobSucceeded,
    TrainOptions,
    WorkItem,
)


def check_ply(path: Path) -> int:
    head = path.read_bytes()[: 64 * 1024]
    end = head.index(b"end_header")
    lines = head[:end].decode("ascii").splitlines()
    assert lines[0] == "ply" and "binary_little_endian" in lines[1], "not a binary little-endian PLY"
    props = [ln.split()[-1] for ln in lines if ln.startswith("property")]
    for need in ("x", "y", "z", "f_dc_0", "opacity", "scale_0", "rot_0"):
        assert need in props, f"PLY lacks {need}"
    return next(int(ln.split()[2]) for ln in lines if ln.startswith("element vertex"))


async def main(args: argparse.Namespace) -> int:
    bus = await connect(args.nats.split(","), "foto3d-gpu-smoke")
    await provision(bus.js, assemble())
    item = WorkItem(
        job_id=f"smoke-{uuid.uuid4().hex[:8]}",
        object_id="smoke-poster-001",
        dataset=args.dataset,
        attempt=1,
        options=TrainOptions(steps=args.steps, formats=["ply", "spz"]),
    )
    decoder = msgspec.json.Decoder(JobEvent)
    done: asyncio.Future[JobSucceeded | JobFailed] = asyncio.get_running_loop().create_future()
    t0 = time.monotonic()

    async def on_event(msg: object) -> None:
        ev = decoder.decode(getattr(msg, "data", b""))
        stamp = f"{time.monotonic() - t0:7.1f}s"
        if isinstance(ev, JobStarted):
            print(f"{stamp} started on {ev.trainer} ({ev.host})", flush=True)
        elif isinstance(ev, JobProgress):
            eta = f", eta {ev.eta_s:.0f}s" if ev.eta_s is not None else ""
            print(f"{stamp} {ev.stage} {ev.step}/{ev.total}{eta}", flush=True)
        elif isinstance(ev, JobSucceeded | JobFailed) and not done.done():
            done.set_result(ev)

    await bus.nc.subscribe(subjects.job_events(item.job_id), cb=on_event)
    await bus.publish(subjects.work_train("normal"), item, msg_id=f"work:{item.job_id}:1")
    print(f"submitted {item.job_id}: {args.dataset}, {args.steps} steps", flush=True)
    try:
        result = await asyncio.wait_for(done, args.timeout)
    except TimeoutError:
        print(f"no result within {args.timeout:.0f}s", file=sys.stderr)
        return 1
    finally:
        await bus.close()
    wall = time.monotonic() - t0
    if isinstance(result, JobFailed):
        print(f"FAILED at {result.step}: {result.error}", file=sys.stderr)
        return 1
    print(f"\nsucceeded in {wall:.1f}s (submit to result)")
    for t in result.timings:
        print(f"  {t.step:<14} {t.seconds:9.1f} s")
    for k in sorted(result.metrics):
        print(f"  {k:<22} {result.metrics[k]:g}")
    plys = [a for a in result.artifacts if a.format == "ply" and a.uri.startswith("file://")]
    if plys:
        n = check_ply(Path(plys[0].uri.removeprefix("file://")))
        print(f"  valid PLY with {n} gaussians: {plys[0].uri}")
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nats", required=True, help="NATS URL(s), comma-separated")
    p.add_argument("--dataset", required=True, help="dataset folder (nerfstudio format or raw images)")
    p.add_argument("--steps", type=int, default=500, help="training iterations (default 500)")
    p.add_argument("--timeout", type=float, default=3600, help="seconds to wait for the result")
    sys.exit(asyncio.run(main(p.parse_args())))
