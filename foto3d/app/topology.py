"""The whole topology: the shared streams plus every registered service's consumers and buckets."""

from __future__ import annotations

from foto3d.app.registry import SERVICES, ServiceEntry
from foto3d.libs.bus.topology import STREAMS, ConsumerSpec, KVSpec, ObjectStoreSpec, Topology


def assemble(entries: list[ServiceEntry] | None = None) -> Topology:
    """Every service's declarations, whether or not it runs here: a trainer's consumers must
    exist for the scaler and KEDA to watch even where no trainer runs."""
    consumers: list[ConsumerSpec] = []
    kv: list[KVSpec] = []
    object_stores: list[ObjectStoreSpec] = []
    for entry in SERVICES if entries is None else entries:
        cls = entry.service_class()
        consumers += cls.consumer_specs
        kv += cls.bucket_specs
        object_stores += cls.object_store_specs
    streams = {s.name for s in STREAMS}
    for c in consumers:
        if c.stream not in streams:
            raise ValueError(f"consumer {c.stream}/{c.durable} reads a stream that is not declared")
    seen = [(c.stream, c.durable) for c in consumers]
    if len(set(seen)) != len(seen):
        raise ValueError(f"a consumer is declared twice: {sorted(seen)}")
    return Topology(streams=list(STREAMS), consumers=consumers, kv=kv, object_stores=object_stores)
