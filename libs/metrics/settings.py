"""The ``[metrics]`` table: who may scrape ``/metrics``."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from foto3d.libs.settings import Env, Table


class MetricsSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    token: Annotated[
        str,
        Meta(
            description="bearer token Prometheus sends to scrape /metrics (Authorization: Bearer …); "
            "empty: only signed-in staff may read it"
        ),
        Env("FOTO3D_METRICS_TOKEN"),
    ] = ""


SETTINGS = Table("metrics", MetricsSettings, "who may scrape /metrics", docs="metrics.md")
