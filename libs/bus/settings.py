"""Settings of the bus itself: the ``[bus]`` table."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from foto3d.libs.settings import Env, Table


class BusSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    replicas: Annotated[
        Annotated[int, Meta(ge=1, le=5)] | None,
        Meta(description="replicas of every stream and bucket: 3 on a three-node cluster"),
        Env("FOTO3D_STREAM_REPLICAS"),
    ] = None
    leafnode_port: Annotated[
        int,
        Meta(
            ge=0,
            le=65535,
            description="port where `foto3d up`'s embedded nats-server accepts capture rigs as leaf "
            "nodes (docs/rig.md); taken: any free port; 0: off",
        ),
        Env("FOTO3D_LEAFNODE_PORT"),
    ] = 7422


SETTINGS = Table("bus", BusSettings, "streams and buckets", docs="failover.md")
