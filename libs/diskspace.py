"""Free space of the data volume, fill of the streams, and stream limits that fit the disk.

A full disk loses data quietly unless someone watches it, so the composition root
reports both figures in ``/healthz`` (and ``foto3d status``), and raises an alert
when either crosses its threshold, before writes start failing.

Settings: the ``[disk]`` table (:data:`SETTINGS`), overridden by ``FOTO3D_DISK_*``.
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import msgspec
import nats.errors
from msgspec import Meta
from nats.js import JetStreamContext

from foto3d.libs.bus.topology import MiB, Topology
from foto3d.libs.config import ConfigError
from foto3d.libs.settings import Env, Table

# Below this a stream would hold too little to ride out even a short collector outage.
MIN_STREAM_BYTES = 2 * MiB


class DiskSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    warn_free_pct: Annotated[
        float,
        Meta(
            ge=0,
            le=100,
            description="`/healthz` `disk` is degraded and an ERROR record (mailed) is shipped when the "
            "data volume has less free space than this percentage",
        ),
        Env("FOTO3D_DISK_WARN_FREE_PCT"),
    ] = 10.0
    warn_free_mb: Annotated[
        float,
        Meta(ge=0, description="the same when it has less free space than this many MiB (0: off)"),
        Env("FOTO3D_DISK_WARN_FREE_MB"),
    ] = 0.0
    warn_stream_pct: Annotated[
        float,
        Meta(
            ge=0,
            le=100,
            description="the same when a size-limited stream (LOGS, DEAD) is filled to this percentage "
            "of its byte limit",
        ),
        Env("FOTO3D_DISK_WARN_STREAM_PCT"),
    ] = 80.0
    stream_share_pct: Annotated[
        float,
        Meta(
            gt=0,
            le=100,
            description="`foto3d up` lowers the byte limits of LOGS and DEAD so that together they "
            "reserve at most this share of JetStream's storage (nats-server allows 75% of the free disk)",
        ),
        Env("FOTO3D_DISK_STREAM_SHARE_PCT"),
    ] = 50.0


SETTINGS = Table(
    "disk", DiskSettings, "free space and stream fill alerts of `foto3d up`", docs="runbooks/full-disk.md"
)


@dataclass(frozen=True)
class DiskUsage:
    path: Path
    total: int
    free: int

    @property
    def free_pct(self) -> float:
        return 100.0 * self.free / self.total if self.total else 0.0


def disk_usage(path: Path) -> DiskUsage:
    """Space of the volume holding ``path`` (its nearest existing parent)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    u = shutil.disk_usage(probe)
    return DiskUsage(path=path, total=u.total, free=u.free)


@dataclass(frozen=True)
class StreamFill:
    name: str
    bytes: int
    max_bytes: int
    messages: int

    @property
    def fill_pct(self) -> float | None:
        return 100.0 * self.bytes / self.max_bytes if self.max_bytes > 0 else None


async def stream_fills(js: JetStreamContext, names: list[str]) -> list[StreamFill]:
    out = []
    for name in names:
        try:
            info = await js.stream_info(name)
        except (TimeoutError, nats.errors.Error):
            continue
        out.append(
            StreamFill(
                name=name,
                bytes=int(info.state.bytes or 0),
                max_bytes=int(info.config.max_bytes or -1),
                messages=int(info.state.messages or 0),
            )
        )
    return out


@dataclass(frozen=True)
class Finding:
    """One thing over its threshold, said the way an operator reads it."""

    key: str
    text: str


def judge(cfg: DiskSettings, disk: DiskUsage | None, fills: list[StreamFill]) -> list[Finding]:
    found = []
    if disk is not None:
        low_pct = disk.free_pct < cfg.warn_free_pct
        low_mb = disk.free < cfg.warn_free_mb * MiB
        if low_pct or low_mb:
            found.append(
                Finding(
                    "disk",
                    f"data volume {disk.path} has {disk.free / MiB:.0f} MiB free ({disk.free_pct:.1f}% of "
                    f"{disk.total / MiB:.0f} MiB), below the alert threshold of {cfg.warn_free_pct:g}%"
                    + (f" or {cfg.warn_free_mb:g} MiB" if cfg.warn_free_mb else "")
                    + "; free space there",
                )
            )
    for f in fills:
        pct = f.fill_pct
        if pct is not None and pct >= cfg.warn_stream_pct:
            found.append(
                Finding(
                    f"stream:{f.name}",
                    f"stream {f.name} is {pct:.0f}% full ({f.bytes / MiB:.1f} of {f.max_bytes / MiB:.1f} MiB); "
                    "its oldest messages are dropped beyond that",
                )
            )
    return found


def sized_topology(topology: Topology, max_storage: int, share_pct: float) -> tuple[Topology, list[str]]:
    """The topology with the size-limited streams shrunk to fit ``share_pct`` of ``max_storage``.

    Returns the topology and one line per stream that was shrunk. Raises ConfigError
    (one line naming what to change) when even the minimum does not fit.
    """
    limited = [s for s in topology.streams if s.max_bytes > 0]
    declared = sum(s.max_bytes for s in limited)
    budget = int(max_storage * share_pct / 100)
    if max_storage <= 0 or declared <= budget:
        return topology, []
    scale = budget / declared
    needed = MIN_STREAM_BYTES * len(limited)
    if budget < needed:
        raise ConfigError(
            f"JetStream has only {max_storage / MiB:.0f} MiB on this disk, and its streams need at least "
            f"{needed * 100 / share_pct / MiB:.0f} MiB: free space on the data folder's disk, or start with "
            "--data (FOTO3D_DATA) on a larger one"
        )
    notes = []
    streams = []
    for s in topology.streams:
        if s.max_bytes > 0:
            new = max(MIN_STREAM_BYTES, int(s.max_bytes * scale))
            notes.append(
                f"stream {s.name} limited to {new / MiB:.0f} MiB (declared {s.max_bytes / MiB:.0f} MiB)"
            )
            s = dataclasses.replace(s, max_bytes=new)
        streams.append(s)
    return dataclasses.replace(topology, streams=streams), notes
