"""Settings: where the data lives, how to reach NATS, and each service's own section.

Precedence, highest first: command-line flags, environment variables
(``FOTO3D_*``), the TOML config file (``$FOTO3D_CONFIG`` or ``<data>/foto3d.toml``),
built-in defaults. The top-level keys are the :data:`CORE` table; a service reads its
own ``[section]`` through its :class:`~foto3d.libs.settings.Table`.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

import msgspec

from foto3d.libs.settings import ConfigError, Env, Table
from foto3d.proto.rules import HostName

T = TypeVar("T", bound=msgspec.Struct)

DEFAULT_HTTP_PORT = 8080

__all__ = ["CORE", "ConfigError", "CoreSettings", "Settings", "default_data_dir", "split_urls"]


class CoreSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The top level of the config file: how to reach NATS and where the dashboard listens."""

    nats_url: Annotated[
        str | None,
        msgspec.Meta(
            description="comma-separated nats://, tls://, ws:// or wss:// URLs; default: the embedded "
            "server of the `up` owning the data folder"
        ),
        Env("FOTO3D_NATS_URL"),
    ] = None
    http_host: Annotated[
        str, msgspec.Meta(description="dashboard and API address"), Env("FOTO3D_HTTP_HOST")
    ] = "127.0.0.1"
    http_port: Annotated[
        int,
        msgspec.Meta(ge=0, le=65535, description="dashboard and API port; 0 picks a free one"),
        Env("FOTO3D_HTTP_PORT"),
    ] = DEFAULT_HTTP_PORT
    public_url: Annotated[
        str | None,
        msgspec.Meta(description="base of links in mails and pages (set it behind a reverse proxy)"),
        Env("FOTO3D_PUBLIC_URL"),
    ] = None
    site: Annotated[
        HostName | None,
        msgspec.Meta(
            description="the site this host belongs to (e.g. onprem, cloud), sent in heartbeats: a "
            "site's silences share one alert thread, and its notifier announces the site"
        ),
        Env("FOTO3D_SITE"),
    ] = None


CORE = Table("", CoreSettings, "core settings (the top level of the file)")


def default_data_dir() -> Path:
    env = os.environ.get("FOTO3D_DATA")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "foto3d"


NATS_SCHEMES = ("nats", "tls", "ws", "wss")


def split_urls(value: str) -> list[str]:
    """'nats://a:4222, nats://b:4222' -> a checked list, so a typo fails here, not inside the client."""
    urls = [u.strip() for u in value.split(",") if u.strip()]
    for u in urls:
        if "://" not in u:
            raise ConfigError(f"NATS URL {u!r} needs a scheme, e.g. nats://{u}")
        try:
            parts = urlsplit(u)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError as exc:
            raise ConfigError(f"NATS URL {u!r} cannot be read: {exc}") from None
        if parts.scheme not in NATS_SCHEMES:
            raise ConfigError(
                f"NATS URL {u!r} must start with one of: {', '.join(s + '://' for s in NATS_SCHEMES)}"
            )
        if not parts.hostname:
            raise ConfigError(f"NATS URL {u!r} has no host")
    return urls


@dataclass
class Settings:
    data_dir: Path
    nats_urls: list[str] | None = None
    http_host: str = "127.0.0.1"
    http_port: int = DEFAULT_HTTP_PORT
    # Base URL that mails and pages use for links back to the dashboard.
    public_url: str | None = None
    site: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    config_path: Path | None = None

    @classmethod
    def load(
        cls,
        data_dir: str | Path | None = None,
        nats: str | None = None,
        http_port: int | None = None,
        config: str | Path | None = None,
    ) -> Settings:
        ddir = Path(data_dir).expanduser() if data_dir else default_data_dir()
        if ddir.exists() and not ddir.is_dir():
            raise ConfigError(f"data folder {ddir} is a file, not a folder")
        cfg_path = Path(config or os.environ.get("FOTO3D_CONFIG") or ddir / "foto3d.toml")
        raw: dict[str, Any] = {}
        if cfg_path.exists():
            try:
                raw = tomllib.loads(cfg_path.read_text())
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"{cfg_path}: {exc}") from exc
        elif config:
            raise ConfigError(f"config file {cfg_path} does not exist")
        core = CORE.read(raw, str(cfg_path) if raw else "config", os.environ)
        if http_port is not None and not 0 <= http_port <= 65535:
            raise ConfigError(f"HTTP port must be between 0 and 65535, got {http_port}")
        nats_value = nats or core.nats_url
        return cls(
            data_dir=ddir,
            nats_urls=split_urls(nats_value) if nats_value else None,
            http_host=core.http_host,
            http_port=core.http_port if http_port is None else http_port,
            public_url=core.public_url,
            site=core.site,
            raw=raw,
            config_path=cfg_path if cfg_path.exists() else None,
        )

    def section(self, name: str, tp: type[T]) -> T:
        """The ``[name]`` table read into ``tp`` (with its env overrides): ``Table(name, tp).load``."""
        return Table(name, tp, "").load(self)

    def service_dir(self, name: str) -> Path:
        path = self.data_dir / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def run_dir(self) -> Path:
        return self.data_dir / "run"

    def base_url(self) -> str:
        return (self.public_url or f"http://{self.http_host}:{self.http_port}").rstrip("/")
