"""How a command finds the running system.

``--nats URL`` or ``FOTO3D_NATS_URL`` win; otherwise the ``foto3d up`` that owns
the data folder left its endpoints in ``<data>/run/endpoints.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import msgspec

from foto3d.libs.config import ConfigError, Settings
from foto3d.libs.nats_server import pid_alive


class Endpoints(msgspec.Struct, kw_only=True):
    nats_url: str
    http_url: str
    pid: int
    monitor_url: str = ""


def endpoints_path(data_dir: Path) -> Path:
    return data_dir / "run" / "endpoints.json"


def write_endpoints(data_dir: Path, ep: Endpoints) -> None:
    path = endpoints_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(msgspec.json.encode(ep))
    os.replace(tmp, path)


def clear_endpoints(data_dir: Path) -> None:
    endpoints_path(data_dir).unlink(missing_ok=True)


def read_endpoints(data_dir: Path) -> Endpoints | None:
    path = endpoints_path(data_dir)
    try:
        ep = msgspec.json.decode(path.read_bytes(), type=Endpoints)
    except (FileNotFoundError, msgspec.DecodeError, json.JSONDecodeError):
        return None
    return ep if pid_alive(ep.pid) else None


def resolve_nats_urls(settings: Settings) -> list[str]:
    if settings.nats_urls:
        return settings.nats_urls
    ep = read_endpoints(settings.data_dir)
    if ep is None:
        raise ConfigError(
            f"no running foto3d found for data folder {settings.data_dir}: "
            "start one with `foto3d up`, or pass --nats URL (or set FOTO3D_NATS_URL)"
        )
    return [ep.nats_url]


def resolve_http_url(settings: Settings) -> str:
    """The dashboard/API base URL of the running system."""
    ep = read_endpoints(settings.data_dir)
    if ep is not None:
        return ep.http_url
    return settings.base_url()
