"""The gateway's NATS API (``foto3d tokens …`` talks to it): issue, list, revoke, usage."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from nats.micro.request import Request

from foto3d.libs.bus.micro import Endpoint
from foto3d.proto.gateway import (
    TOKENS_ISSUE_SUBJECT,
    TOKENS_LIST_SUBJECT,
    TOKENS_REVOKE_SUBJECT,
    USAGE_QUERY_SUBJECT,
    IssueReply,
    IssueRequest,
    ListReply,
    ListRequest,
    RevokeReply,
    RevokeRequest,
    UsageQuery,
    UsageReply,
)
from foto3d.services.token_gateway.manage import CredentialManager

log = logging.getLogger(__name__)


def _endpoint(
    name: str,
    subject: str,
    body_type: type[Any],
    reply_type: type[Any],
    run: Callable[[Any], Awaitable[msgspec.Struct]],
) -> Endpoint:
    async def handler(req: Request) -> None:
        try:
            body = msgspec.json.decode(req.data, type=body_type)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            await req.respond(msgspec.json.encode(reply_type(ok=False, error=f"bad {name} request: {exc}")))
            return
        try:
            reply = await run(body)
        except Exception as exc:  # e.g. the stream did not take the event: say so, keep nothing
            log.warning("gateway %s failed: %r", name, exc)
            reply = reply_type(ok=False, error=f"{name} failed: {exc}")
        await req.respond(msgspec.json.encode(reply))

    return Endpoint(name, subject, handler)


def endpoints(manager: CredentialManager) -> list[Endpoint]:
    async def list_(body: ListRequest) -> ListReply:
        return manager.listing(body)

    return [
        _endpoint("tokens-issue", TOKENS_ISSUE_SUBJECT, IssueRequest, IssueReply, manager.issue),
        _endpoint("tokens-list", TOKENS_LIST_SUBJECT, ListRequest, ListReply, list_),
        _endpoint("tokens-revoke", TOKENS_REVOKE_SUBJECT, RevokeRequest, RevokeReply, manager.revoke),
        _endpoint("usage", USAGE_QUERY_SUBJECT, UsageQuery, UsageReply, manager.usage),
    ]
