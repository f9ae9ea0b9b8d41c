"""The gateway reads all of OBJECT_EVENTS, where the catalog also publishes its customers:
a customer's event is not about serving and leaves the gateway's objects untouched."""

from __future__ import annotations

from foto3d.proto.base import encode
from foto3d.proto.objects import CustomerAdded, ObjectRegistered
from foto3d.services.token_gateway.objects import ObjectIndex


async def test_a_customer_added_on_the_object_stream_is_skipped() -> None:
    index = ObjectIndex()
    added = CustomerAdded(event_id="customer-acme", customer="acme", name="ACME", ts=1.0, actor="rev")
    await index.apply(encode(added), 1)
    assert index.objects == {}
    registered = ObjectRegistered(
        event_id="r1",
        object_id="acme-lamp-001",
        ts=2.0,
        customer="acme",
        display_name="Lamp",
        slug="lamp",
        serial=1,
    )
    await index.apply(encode(registered), 2)
    await index.apply(encode(added), 3)
    assert list(index.objects) == ["acme-lamp-001"]
    assert index.objects["acme-lamp-001"].name == "Lamp"
