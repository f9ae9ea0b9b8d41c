"""A rig's settings: one Struct, stored as ``rig.toml`` in the rig's folder.

``foto3d rig init`` writes the file; everything else reads it. Environment overrides:
``FOTO3D_RIG_DIR`` (the folder). Sites are tried in the order listed (the first
reachable one is used; see ``sites.py``).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated

import msgspec

from foto3d.libs.config import ConfigError, split_urls

CONFIG_NAME = "rig.toml"
MiB = 1024 * 1024


def default_rig_dir() -> Path:
    env = os.environ.get("FOTO3D_RIG_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "foto3d-rig"


class SiteConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One place the rig can deliver to: its NATS servers and the store for dataset files."""

    name: Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]
    nats: str  # comma-separated URLs
    store: str  # file:///path, a path, or s3://bucket/prefix
    s3_endpoint: str | None = None  # for S3-compatible stores (MinIO, moto); None = AWS

    def nats_urls(self) -> list[str]:
        return split_urls(self.nats)


class RigSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    rig_id: Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
    sites: list[SiteConfig]
    # The rig's own nats-server (the capture tool connects here; it never goes away offline).
    leaf_host: str = "127.0.0.1"
    leaf_port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 4290
    panel_port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 8290
    # Site health: each site's JetStream is asked for its account info every probe_interval_s;
    # a site that has not answered for site_grace_s is dead and the next one is used.
    probe_interval_s: Annotated[float, msgspec.Meta(gt=0)] = 2.0
    site_grace_s: Annotated[float, msgspec.Meta(gt=0)] = 6.0
    # Return to an earlier (preferred) site once it has answered for this long.
    failback_after_s: Annotated[float, msgspec.Meta(ge=0)] = 30.0
    heartbeat_interval_s: Annotated[float, msgspec.Meta(gt=0)] = 5.0
    upload_part_bytes: Annotated[int, msgspec.Meta(ge=5 * MiB)] = 8 * MiB
    # Rig-local stream caps: past them the oldest data is dropped (and reported).
    logs_max_bytes: Annotated[int, msgspec.Meta(gt=0)] = 8 * 1024 * MiB
    publish_timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 5.0
    # fsync every JetStream write on the rig (nats-server syncs every 2 minutes by default):
    # for rigs that lose power, at some cost in write rate.
    sync_always: bool = False

    @property
    def leaf_url(self) -> str:
        return f"nats://{self.leaf_host}:{self.leaf_port}"


def config_path(rig_dir: Path) -> Path:
    return rig_dir / CONFIG_NAME


def load(rig_dir: Path) -> RigSettings:
    path = config_path(rig_dir)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist: run `foto3d rig init` first") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    try:
        settings = msgspec.convert(raw, RigSettings)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if not settings.sites:
        raise ConfigError(f"{path}: at least one [[sites]] entry is needed")
    for site in settings.sites:
        site.nats_urls()  # a bad URL fails here, naming itself
    return settings


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def dump(settings: RigSettings) -> str:
    raw = msgspec.to_builtins(settings)
    lines = ["# foto3d rig settings (docs/rig.md)"]
    for key, value in raw.items():
        if key != "sites":
            lines.append(f"{key} = {_toml_value(value)}")
    for site in raw["sites"]:
        lines += ["", "[[sites]]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in site.items() if v is not None]
    return "\n".join(lines) + "\n"


def save(rig_dir: Path, settings: RigSettings) -> Path:
    rig_dir.mkdir(parents=True, exist_ok=True)
    path = config_path(rig_dir)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(dump(settings))
    os.replace(tmp, path)
    return path
