"""The gateway's NATS API (``foto3d tokens …`` talks to it): issue, list, revoke, usage.

A refusal (a bad request, an unknown credential) is a ``ServiceError`` raised by the
manager and answered with nats micro's error headers by ``serve``.
"""

from __future__ import annotations

from foto3d.libs.bus.micro import Endpoint, serve
from foto3d.proto.gateway import TOKENS_ISSUE, TOKENS_LIST, TOKENS_REVOKE, USAGE
from foto3d.services.token_gateway.manage import CredentialManager


def endpoints(manager: CredentialManager) -> list[Endpoint]:
    return [
        serve(TOKENS_ISSUE, manager.issue),
        serve(TOKENS_LIST, manager.listing),
        serve(TOKENS_REVOKE, manager.revoke),
        serve(USAGE, manager.usage),
    ]
