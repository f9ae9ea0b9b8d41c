"""The scaler's settings: the ``[scaler]`` table (with ``[scaler.aws]``), then ``FOTO3D_SCALER_*``."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from foto3d.libs.settings import ConfigError, Env, Table

BackendName = Literal["local", "aws-ec2", "none"]


class AwsSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    region: Annotated[str, Meta(description="AWS region of the trainers")] = "eu-central-1"
    launch_template: Annotated[
        str,
        Meta(
            description="launch template (name or lt-... id): AMI, instance type, subnet, security group, IAM profile"
        ),
    ] = "foto3d-trainer"
    launch_template_version: Annotated[str, Meta(description="version of the launch template")] = "$Latest"
    instance_type: Annotated[
        str, Meta(description="override of the template's instance type (empty = its own)")
    ] = ""
    image: Annotated[str, Meta(description="container image the user-data runs")] = (
        "ghcr.io/foto3d/foto3d-trainer:latest"
    )
    nats_urls: Annotated[
        list[str],
        Meta(description="NATS URLs the cloud trainer connects to (all sites); empty = the scaler's own"),
    ] = msgspec.field(default_factory=list)
    artifact_store: Annotated[
        str,
        Meta(
            description="where trainers store results (s3://bucket/prefix), passed as FOTO3D_ARTIFACT_STORE"
        ),
    ] = ""
    credentials_secret: Annotated[
        str,
        Meta(
            description="Secrets Manager secret the user-data reads the trainer's key and TLS certificate from "
            "(`foto3d auth bundle`, docs/security.md)"
        ),
    ] = "foto3d/trainer"
    user_data_file: Annotated[
        str,
        Meta(description="own user-data script template (placeholders in docs/scaler.md); empty = built-in"),
    ] = ""
    endpoint_url: Annotated[str, Meta(description="private EC2 endpoint (tests use a moto server)")] = ""
    extra_tags: Annotated[dict[str, str], Meta(description="tags added to every instance")] = msgspec.field(
        default_factory=dict
    )


class ScalerSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    backend: Annotated[
        BackendName, Meta(description="where trainers are started"), Env("FOTO3D_SCALER_BACKEND")
    ] = "local"
    min_trainers: Annotated[
        int, Meta(ge=0, description="always keep this many running"), Env("FOTO3D_SCALER_MIN")
    ] = 0
    max_trainers: Annotated[
        int, Meta(ge=0, description="never more than this many"), Env("FOTO3D_SCALER_MAX")
    ] = 1
    max_spend_per_hour: Annotated[
        float,
        Meta(
            ge=0,
            description="spend cap: at most floor(max_spend_per_hour / hourly_price) machines; 0 = no cap",
        ),
        Env("FOTO3D_SCALER_MAX_SPEND"),
    ] = 0.0
    hourly_price: Annotated[
        float, Meta(ge=0, description="price of one machine per hour"), Env("FOTO3D_SCALER_PRICE")
    ] = 0.0
    idle_grace_s: Annotated[
        float,
        Meta(ge=0, description="an idle trainer started by the scaler is stopped after this long"),
        Env("FOTO3D_SCALER_IDLE_GRACE"),
    ] = 300.0
    startup_timeout_s: Annotated[
        float, Meta(gt=0, description="a started machine without a heartbeat after this long is terminated")
    ] = 900.0
    heartbeat_timeout_s: Annotated[
        float, Meta(gt=0, description="a trainer silent this long is treated as dead and terminated")
    ] = 60.0
    interval_s: Annotated[float, Meta(gt=0, description="seconds between rounds")] = 5.0
    one_per_dataset: Annotated[
        bool,
        Meta(description="every trainer is started with --max-jobs 1 and exits after its job"),
        Env("FOTO3D_SCALER_ONE_PER_DATASET"),
    ] = False
    aws: Annotated[AwsSettings, Meta(description="the aws-ec2 backend")] = msgspec.field(
        default_factory=AwsSettings
    )


class TrainerHostView(msgspec.Struct, kw_only=True):
    """The keys of ``[trainer]`` the local backend needs to tell whether a trainer can run here."""

    ns_bin: Annotated[str, Env("FOTO3D_TRAINER_NS_BIN")] = ""
    require_gpu: Annotated[bool, Env("FOTO3D_TRAINER_REQUIRE_GPU")] = True


def _check(cfg: ScalerSettings) -> None:
    if cfg.min_trainers > cfg.max_trainers:
        raise ConfigError(
            f"[scaler]: min_trainers ({cfg.min_trainers}) is above max_trainers ({cfg.max_trainers})"
        )


SETTINGS = Table("scaler", ScalerSettings, "the scaler", check=_check, docs="scaler.md")
TRAINER_VIEW = Table("trainer", TrainerHostView, "the trainer's keys the local backend reads", partial=True)


def spend_cap(cfg: ScalerSettings) -> int | None:
    """How many machines the hourly budget pays for, or None when there is no budget limit."""
    if cfg.max_spend_per_hour <= 0 or cfg.hourly_price <= 0:
        return None
    return int(cfg.max_spend_per_hour // cfg.hourly_price)
