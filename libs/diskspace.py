"""Free space of the data volume, fill of the streams, and stream limits that fit the disk.

A full disk loses data quietly unless someone watches it, so the composition root
reports both figures in ``/healthz`` (and ``foto3d status``), and raises an alert
when either crosses its threshold, before writes start failing.

Settings (``[disk]`` in the config file; environment overrides):

- ``warn_free_pct`` (``FOTO3D_DISK_WARN_FREE_PCT``, default 10): the data volume is
  reported ``degraded`` and an alert is raised below this share of free space;
- ``warn_free_mb`` (``FOTO3D_DISK_WARN_FREE_MB``, default 0: off): ... or below this much;
- ``warn_stream_pct`` (``FOTO3D_DISK_WARN_STREAM_PCT``, default 80): a stream filled to
  this share of its byte limit is reported, and alerted;
- ``stream_share_pct`` (``FOTO3D_DISK_STREAM_SHARE_PCT``, default 50): the share of
  JetStream's storage that the size-limited streams (LOGS, DEAD) may reserve
  together; `foto3d up` lowers their limits to fit it on a small disk.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import msgspec
import nats.errors
from nats.js import JetStreamContext

from foto3d.libs.bus.topology import MiB, Topology
from foto3d.libs.config import ConfigError, Settings

# Below this a stream would hold too little to ride out even a short collector outage.
MIN_STREAM_BYTES = 2 * MiB

Pct = Annotated[float, msgspec.Meta(ge=0, le=100)]


class DiskSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    warn_free_pct: Pct = 10.0
    warn_free_mb: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    warn_stream_pct: Pct = 80.0
    stream_share_pct: Annotated[float, msgspec.Meta(gt=0, le=100)] = 50.0

    @classmethod
    def from_settings(cls, settings: Settings) -> DiskSettings:
        cfg = settings.section("disk", cls)
        env: dict[str, Any] = {}
        for field in msgspec.structs.fields(cls):
            value = os.environ.get(f"FOTO3D_DISK_{field.name.upper()}")
            if value is not None:
                env[field.name] = value
        if not env:
            return cfg
        merged = {**msgspec.structs.asdict(cfg), **env}
        try:
            return msgspec.convert(merged, cls, strict=False)
        except msgspec.ValidationError as exc:
            raise ConfigError(f"disk settings: {exc}") from None


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
