"""The trainer's settings: the ``[trainer]`` table of the config file, then ``FOTO3D_TRAINER_*``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import msgspec

from foto3d.libs.config import ConfigError, Settings


class TrainerConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    # Jobs run at the same time on this host (one GPU usually means 1).
    concurrency: Annotated[int, msgspec.Meta(ge=1, le=16)] = 1
    # Exit after this many jobs (one-trainer-per-dataset mode); 0 = never.
    max_jobs: Annotated[int, msgspec.Meta(ge=0)] = 0
    # Blob store for results: a folder or s3://bucket/prefix; empty = the data folder.
    store: str = ""
    # On SIGTERM, let the running job finish if it ends within this many seconds.
    stop_grace_s: Annotated[float, msgspec.Meta(ge=0)] = 20.0
    # How often the work message is kept alive with in_progress() (ack_wait is 30 s).
    keepalive_s: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    # Cut off from NATS this long, a running job is given up (its step stopped): the server
    # hands the message to another trainer once ack_wait (30 s) passes without in_progress(),
    # and the same job must never train twice at once.
    ownership_timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 25.0
    heartbeat_s: Annotated[float, msgspec.Meta(gt=0)] = 5.0
    # Preflight: fail early unless this much disk is free in the work folder.
    min_free_gb: Annotated[float, msgspec.Meta(ge=0)] = 20.0
    require_gpu: bool = True
    # Keep a failed job's work folder for inspection (successful ones are always removed).
    keep_failed: bool = True
    # How the reducer scores gaussians: auto (rendered views when torch is installed), views,
    # area, volume or opacity; see docs/splat.md.
    reduce_method: str = "auto"
    # Extra arguments for ns-train (e.g. ["--pipeline.model.cull-alpha-thresh", "0.005"]).
    train_args: list[str] = msgspec.field(default_factory=list)
    # Folder holding ns-train/ns-export/ns-process-data when they are not on PATH.
    ns_bin: str = ""
    # Heartbeat id; the scaler sets it so it can match heartbeats to the machines it started.
    trainer_id: str = ""


_ENV: dict[str, tuple[str, type]] = {
    "FOTO3D_TRAINER_CONCURRENCY": ("concurrency", int),
    "FOTO3D_TRAINER_MAX_JOBS": ("max_jobs", int),
    "FOTO3D_ARTIFACT_STORE": ("store", str),
    "FOTO3D_TRAINER_STOP_GRACE": ("stop_grace_s", float),
    "FOTO3D_TRAINER_KEEPALIVE": ("keepalive_s", float),
    "FOTO3D_TRAINER_HEARTBEAT": ("heartbeat_s", float),
    "FOTO3D_TRAINER_OWNERSHIP_TIMEOUT": ("ownership_timeout_s", float),
    "FOTO3D_TRAINER_MIN_FREE_GB": ("min_free_gb", float),
    "FOTO3D_TRAINER_REQUIRE_GPU": ("require_gpu", bool),
    "FOTO3D_TRAINER_KEEP_FAILED": ("keep_failed", bool),
    "FOTO3D_TRAINER_NS_BIN": ("ns_bin", str),
    "FOTO3D_TRAINER_ID": ("trainer_id", str),
    "FOTO3D_TRAINER_REDUCE_METHOD": ("reduce_method", str),
}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def load_config(settings: Settings) -> TrainerConfig:
    """The ``[trainer]`` section with environment overrides applied, validated."""
    raw = dict(settings.raw.get("trainer", {}))
    for var, (key, tp) in _ENV.items():
        value = os.environ.get(var)
        if value is None or value == "":
            continue
        if tp is bool:
            low = value.strip().lower()
            if low not in _TRUE | _FALSE:
                raise ConfigError(f"{var}={value!r}: use 1 or 0")
            raw[key] = low in _TRUE
        elif tp is int or tp is float:
            try:
                raw[key] = tp(value)
            except ValueError:
                raise ConfigError(f"{var}={value!r} is not a number") from None
        else:
            raw[key] = value
    try:
        return msgspec.convert(raw, TrainerConfig, str_keys=True)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"[trainer]: {exc}") from exc


def store_uri(cfg: TrainerConfig, settings: Settings) -> str:
    """Where results go; keys are ``artifacts/<object>/<job>/<attempt>/...`` under it."""
    return cfg.store or str(Path(settings.data_dir))
