"""Before training: is the object registered in the catalog, and is its customer known?

The queue trains any well-formed id; the catalog is where objects are registered. A
command that starts training asks the catalog first, so a typo (`zzz-chair-001`) is
refused with the command that registers it instead of costing a GPU run.
"""

from __future__ import annotations

import sys

import nats.errors

from foto3d.libs.bus.connection import Bus
from foto3d.proto import objects as catalog
from foto3d.proto.api import NoBody, ServiceError
from foto3d.proto.naming import NamingError, customer_of

NOT_FOUND = "404"


async def registration_problem(bus: Bus, object_id: str, timeout: float) -> str | None:
    """Why ``object_id`` may not be trained (a readable sentence), or None when it may.

    Without a catalog service there is nothing to check against (a queue-only
    deployment): that is said on stderr and the submission goes ahead.
    """
    try:
        customer = customer_of(object_id)
    except NamingError:
        return None  # the queue refuses it, naming the standard
    try:
        await bus.call(catalog.SHOW, catalog.ObjectRef(object_id=object_id), timeout=timeout)
        return None
    except ServiceError as exc:
        if exc.code != NOT_FOUND:
            return exc.description
    except nats.errors.NoRespondersError:
        print(
            f"foto3d: note: no catalog service is running; {object_id} was not checked against it",
            file=sys.stderr,
        )
        return None
    except (TimeoutError, nats.errors.TimeoutError):
        return f"the catalog did not answer within {timeout:g} s; cannot check that {object_id} is registered"
    customers = await bus.call(catalog.CUSTOMERS, NoBody(), timeout=timeout)
    register = f"foto3d objects register --customer {customer} --name NAME"
    if not any(row.slug == customer for row in customers):
        return (
            f"unknown customer {customer!r} (from {object_id}): add it with "
            f"`foto3d objects customer-add {customer} --name 'FULL NAME'`, then `{register}`"
        )
    return (
        f"{object_id} is not registered in the catalog: register it with `{register}` "
        "(the catalog assigns the id; see `foto3d objects list`)"
    )
