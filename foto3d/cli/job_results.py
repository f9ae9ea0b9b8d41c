"""What a finished job produced: files, sizes, gaussian counts, quality figures, step durations.

The queue tracks a job's state; the results travel in its `job.succeeded` event, which the
catalog keeps in the object's timeline. `foto3d job` and `foto3d objects show` read them there.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlparse

import msgspec
import nats.errors

from foto3d.libs.bus.connection import Bus
from foto3d.proto import objects as catalog
from foto3d.proto.api import ServiceError
from foto3d.proto.jobs import JobSucceeded

# Metrics that are counts or sizes rather than quality figures; shown elsewhere or not at all.
_NOT_QUALITY = ("gaussians", "bytes_", "reduced", "reduce_iterations_done")


class JobResults(msgspec.Struct, frozen=True, kw_only=True):
    files: list[dict[str, Any]]  # name, kind, format, bytes, gaussians, uri
    gaussians_before: float | None
    gaussians_after: float | None
    quality: dict[str, float]
    steps: list[dict[str, Any]]  # step, seconds


def file_name(uri: str) -> str:
    return PurePosixPath(urlparse(uri).path).name or uri


def results_of(ev: JobSucceeded) -> JobResults:
    m = ev.metrics
    splats = [a for a in ev.artifacts if a.kind == "splat"]
    after = (
        m.get("gaussians_after")
        or m.get("gaussians")
        or next((a.gaussians for a in splats if a.gaussians), None)
    )
    return JobResults(
        files=[
            {
                "name": file_name(a.uri),
                "kind": a.kind,
                "format": a.format,
                "bytes": a.bytes,
                "gaussians": a.gaussians,
                "uri": a.uri,
            }
            for a in ev.artifacts
        ],
        gaussians_before=m.get("gaussians_before") or m.get("gaussians_raw"),
        gaussians_after=float(after) if after is not None else None,
        quality={k: v for k, v in sorted(m.items()) if not k.startswith(_NOT_QUALITY)},
        steps=[{"step": t.step, "seconds": t.seconds} for t in ev.timings],
    )


async def job_results(bus: Bus, object_id: str, job_id: str, timeout: float = 10.0) -> JobResults | None:
    """The job's results from the catalog, or None (not succeeded, or no catalog running)."""
    try:
        entries = await bus.call(catalog.TIMELINE, catalog.ObjectRef(object_id=object_id), timeout=timeout)
    except (ServiceError, nats.errors.NoRespondersError, TimeoutError, nats.errors.TimeoutError):
        return None
    for e in reversed(entries):
        if e.job_id == job_id and e.kind == "trained":
            try:
                return results_of(msgspec.convert(e.detail, JobSucceeded))
            except msgspec.ValidationError:
                return None
    return None


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def result_lines(r: JobResults) -> list[str]:
    lines: list[str] = []
    if r.gaussians_after is not None:
        before = f"{r.gaussians_before:,.0f} → " if r.gaussians_before else ""
        lines.append(f"gaussians {before}{r.gaussians_after:,.0f}")
    if r.quality:
        lines.append("quality   " + ", ".join(f"{k} {v:g}" for k, v in r.quality.items()))
    if r.steps:
        lines.append("steps     " + ", ".join(f"{s['step']} {s['seconds']:.1f} s" for s in r.steps))
    if r.files:
        lines.append("files")
        for f in r.files:
            count = f" {f['gaussians']:,} gaussians" if f.get("gaussians") else ""
            lines.append(f"  {f['name']:<24} {human_bytes(f['bytes']):>10}{count}")
    return lines
