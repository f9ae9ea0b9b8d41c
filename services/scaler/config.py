"""The scaler's settings: the ``[scaler]`` table (with ``[scaler.aws]``), then ``FOTO3D_SCALER_*``."""

from __future__ import annotations

import os
from typing import Annotated, Literal

import msgspec

from foto3d.libs.config import ConfigError, Settings

BackendName = Literal["local", "aws-ec2", "none"]


class AwsConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    region: str = "eu-central-1"
    # Launch template (name or lt-... id) holding AMI, instance type, subnet, security group, IAM profile.
    launch_template: str = "foto3d-trainer"
    launch_template_version: str = "$Latest"
    # Overrides of the template (empty = the template's own).
    instance_type: str = ""
    # Container image the user-data runs.
    image: str = "ghcr.io/foto3d/foto3d-trainer:latest"
    # NATS URLs the cloud trainer connects to (all sites); empty = the scaler's own.
    nats_urls: list[str] = msgspec.field(default_factory=list)
    # Where trainers store results (s3://bucket/prefix); passed to the trainer as FOTO3D_ARTIFACT_STORE.
    artifact_store: str = ""
    # Own user-data script template (see docs/scaler.md for the placeholders); empty = built-in.
    user_data_file: str = ""
    # For tests and private endpoints (e.g. a moto server).
    endpoint_url: str = ""
    extra_tags: dict[str, str] = msgspec.field(default_factory=dict)


class ScalerConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    backend: BackendName = "local"
    min_trainers: Annotated[int, msgspec.Meta(ge=0)] = 0
    max_trainers: Annotated[int, msgspec.Meta(ge=0)] = 1
    # Spend cap: at most floor(max_spend_per_hour / hourly_price) machines; 0 = no cap.
    max_spend_per_hour: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    hourly_price: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    # An idle trainer started by the scaler is stopped after this long.
    idle_grace_s: Annotated[float, msgspec.Meta(ge=0)] = 300.0
    # A started machine that has not sent a heartbeat after this long is terminated.
    startup_timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 900.0
    # A trainer silent for longer than this is treated as dead and its machine terminated.
    heartbeat_timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 60.0
    interval_s: Annotated[float, msgspec.Meta(gt=0)] = 5.0
    # One trainer per dataset: every trainer is started with --max-jobs 1 and exits after it.
    one_per_dataset: bool = False
    aws: AwsConfig = msgspec.field(default_factory=AwsConfig)


_ENV: dict[str, tuple[str, type]] = {
    "FOTO3D_SCALER_BACKEND": ("backend", str),
    "FOTO3D_SCALER_MIN": ("min_trainers", int),
    "FOTO3D_SCALER_MAX": ("max_trainers", int),
    "FOTO3D_SCALER_MAX_SPEND": ("max_spend_per_hour", float),
    "FOTO3D_SCALER_PRICE": ("hourly_price", float),
    "FOTO3D_SCALER_IDLE_GRACE": ("idle_grace_s", float),
    "FOTO3D_SCALER_ONE_PER_DATASET": ("one_per_dataset", bool),
}


def load_config(settings: Settings) -> ScalerConfig:
    raw = dict(settings.raw.get("scaler", {}))
    for var, (key, tp) in _ENV.items():
        value = os.environ.get(var)
        if not value:
            continue
        try:
            if tp is bool:
                raw[key] = value.strip().lower() in {"1", "true", "yes", "on"}
            else:
                raw[key] = tp(value)
        except ValueError:
            raise ConfigError(f"{var}={value!r} is not a number") from None
    try:
        cfg = msgspec.convert(raw, ScalerConfig, str_keys=True)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"[scaler]: {exc}") from exc
    if cfg.min_trainers > cfg.max_trainers:
        raise ConfigError(
            f"[scaler]: min_trainers ({cfg.min_trainers}) is above max_trainers ({cfg.max_trainers})"
        )
    return cfg


def spend_cap(cfg: ScalerConfig) -> int | None:
    """How many machines the hourly budget pays for, or None when there is no budget limit."""
    if cfg.max_spend_per_hour <= 0 or cfg.hourly_price <= 0:
        return None
    return int(cfg.max_spend_per_hour // cfg.hourly_price)
