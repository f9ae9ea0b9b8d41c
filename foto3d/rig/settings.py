"""A rig's settings: one Struct, stored as ``rig.toml`` in the rig's folder.

``foto3d rig init`` writes the file; everything else reads it through ``SETTINGS``, the
same mechanism as a server's ``foto3d.toml`` (unknown keys and bad values are errors
naming the file and key). ``FOTO3D_RIG_DIR`` names the folder. Sites are tried in the
order listed (the first reachable one is used; see ``sites.py``).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import msgspec
from msgspec import Meta

from foto3d.libs.config import split_urls
from foto3d.libs.settings import ConfigError, Table
from foto3d.proto.rig import LEAFNODE_PORT

CONFIG_NAME = "rig.toml"
MiB = 1024 * 1024


def default_rig_dir() -> Path:
    env = os.environ.get("FOTO3D_RIG_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "foto3d-rig"


class SiteSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One place the rig can deliver to: its NATS servers and the store for dataset files."""

    name: Annotated[
        str, Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$", description="the site's name (status, panel, logs)")
    ]
    nats: Annotated[str, Meta(description="the site's NATS URLs, comma-separated")]
    store: Annotated[
        str, Meta(description="where dataset files go: a folder, `file:///…` or `s3://bucket/prefix`")
    ]
    s3_endpoint: Annotated[
        str | None, Meta(description="endpoint of an S3-compatible store (MinIO, moto); unset = AWS")
    ] = None
    leaf: Annotated[
        str | None,
        Meta(
            description="the site's leafnode URLs, comma-separated (`nats-leaf://host:7422`); "
            "unset = the hosts of `nats` on port 7422"
        ),
    ] = None

    def nats_urls(self) -> list[str]:
        return split_urls(self.nats)

    def leaf_urls(self) -> list[str]:
        """Where the rig's nats-server joins this site as a leaf node."""
        if self.leaf:
            urls = [u.strip() for u in self.leaf.split(",") if u.strip()]
            for url in urls:
                if urlsplit(url).scheme not in ("nats-leaf", "nats", "tls", "ws", "wss"):
                    raise ConfigError(f"leaf URL {url!r}: use nats-leaf://host:port or tls://host:port")
            return urls
        out = []
        for url in self.nats_urls():
            parts = urlsplit(url)
            scheme = "tls" if parts.scheme == "tls" else "nats-leaf"
            out.append(f"{scheme}://{parts.hostname}:{LEAFNODE_PORT}")
        return out


class RigSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    rig_id: Annotated[
        str,
        Meta(
            pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$",
            description="the rig's name; also its log source id and its JetStream domain `rig-<id>`",
        ),
    ]
    sites: Annotated[
        list[SiteSettings],
        Meta(description="where the rig delivers, tried in the order listed (at least one)"),
    ]
    # The rig's own nats-server (the capture tool connects here; it never goes away offline).
    leaf_host: Annotated[str, Meta(description="address of the rig's own nats-server")] = "127.0.0.1"
    leaf_port: Annotated[int, Meta(ge=1, le=65535, description="port of the rig's own nats-server")] = 4290
    panel_port: Annotated[int, Meta(ge=0, le=65535, description="port of `foto3d rig panel`")] = 8290
    # Site health: a site that has not answered for site_grace_s is dead and the next one is used.
    probe_interval_s: Annotated[
        float, Meta(gt=0, description="seconds between asking each site's JetStream for its account info")
    ] = 2.0
    site_grace_s: Annotated[
        float, Meta(gt=0, description="a site that has not answered for this many seconds is dead")
    ] = 6.0
    failback_after_s: Annotated[
        float,
        Meta(ge=0, description="return to an earlier site once it has answered this long without a break"),
    ] = 30.0
    heartbeat_interval_s: Annotated[
        float, Meta(gt=0, description="seconds between the rig's heartbeats to the site in use")
    ] = 5.0
    upload_part_bytes: Annotated[int, Meta(ge=5 * MiB, description="S3 multipart part size in bytes")] = (
        8 * MiB
    )
    upload_bytes_per_s: (
        Annotated[
            float,
            Meta(
                gt=0,
                description="cap of the upload rate in bytes per second, for a metered or shared "
                "mobile link; unset = as fast as the link allows",
            ),
        ]
        | None
    ) = None
    # Rig-local stream caps: past them the oldest data is dropped (and reported).
    logs_max_bytes: Annotated[
        int, Meta(gt=0, description="cap of the rig's log stream in bytes (past it the oldest batches go)")
    ] = 8 * 1024 * MiB
    publish_timeout_s: Annotated[
        float, Meta(gt=0, description="seconds to wait for a site's ack before the message is retried")
    ] = 5.0
    creds: Annotated[
        str | None,
        Meta(
            description="the rig's key on the bus: its nkey seed file (`foto3d auth add rig ID`, copied "
            "by `rig init --creds`); used for the sites' client connections and leaf links"
        ),
    ] = None
    tls_ca: Annotated[
        str | None,
        Meta(
            description="the sites' CA certificate: the rig talks only to a site whose certificate it signed"
        ),
    ] = None
    tls_cert: Annotated[
        str | None, Meta(description="the rig's certificate from that CA (the site verifies the rig by it)")
    ] = None
    tls_key: Annotated[str | None, Meta(description="the private key of `tls_cert` (owner-only)")] = None
    # nats-server syncs every 2 minutes by default; this trades write rate for power-loss safety.
    sync_always: Annotated[
        bool, Meta(description="fsync every write of the rig's JetStream (for rigs that lose power)")
    ] = False

    @property
    def leaf_url(self) -> str:
        return f"nats://{self.leaf_host}:{self.leaf_port}"


def _check(settings: RigSettings) -> None:
    if not settings.sites:
        raise ConfigError(f"{CONFIG_NAME}: at least one [[sites]] entry is needed")
    for site in settings.sites:
        try:
            site.nats_urls()
            site.leaf_urls()
        except ConfigError as exc:
            raise ConfigError(f"{CONFIG_NAME} [[sites]] {site.name!r}: {exc}") from None


# The whole of rig.toml is this one table (its top level); the file is the rig's own,
# separate from a server's foto3d.toml.
SETTINGS = Table("", RigSettings, "a capture rig's settings", check=_check, docs="rig.md")


def config_path(rig_dir: Path) -> Path:
    return rig_dir / CONFIG_NAME


def load(rig_dir: Path, env: Mapping[str, str] | None = None) -> RigSettings:
    path = config_path(rig_dir)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist: run `foto3d rig init` first") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return SETTINGS.read(raw, str(path), os.environ if env is None else env)


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
        if key != "sites" and value is not None:
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
