"""Request/reply endpoints: each subject beside its request and reply types, and one error rule.

Every API lives under ``f3d.api.*`` so it never falls inside a stream's subjects
(JetStream would answer a request on a stream subject with a PubAck). A reply body
is always the success value; a refusal or failure follows the NATS services
framework (``nats.micro``): an empty body with the headers ``Nats-Service-Error-Code``
(an HTTP-like status) and ``Nats-Service-Error`` (a sentence a person can act on),
which the client raises as :class:`ServiceError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import msgspec

Q = TypeVar("Q")
R = TypeVar("R")

API_PREFIX = "f3d.api"

# Error codes (the header Nats-Service-Error-Code).
BAD_REQUEST = "400"  # the body does not decode or validate; fix the request
UNAUTHORIZED = "401"  # no valid proof of who sent the request (libs/bus/proof.py)
FORBIDDEN = "403"  # the proven sender's role may not do this
NOT_FOUND = "404"
CONFLICT = "409"  # the request is valid but the current state refuses it
FAILED = "502"  # a step the service depends on failed (an upload, a peer service)
UNAVAILABLE = "503"  # try again shortly (no queue leader during a failover)
INTERNAL = "500"

ERROR_HEADER = "Nats-Service-Error"
ERROR_CODE_HEADER = "Nats-Service-Error-Code"


class ServiceError(Exception):
    """An endpoint's refusal: raised by a handler to answer it, and by the client that receives it."""

    def __init__(self, code: str, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


class NoBody(msgspec.Struct, frozen=True):
    """The request of an endpoint that takes nothing."""


@dataclass(frozen=True)
class Api(Generic[Q, R]):
    """One endpoint: ``f3d.api.<group>.<name>``, its request type and its reply type."""

    group: str
    name: str
    request: type[Q]
    # A msgspec type; a Struct for most, a builtin container for the catalog's row views.
    reply: Any

    @property
    def subject(self) -> str:
        return f"{API_PREFIX}.{self.group}.{self.name}"
