"""Issuing, listing and revoking credentials, and reading usage: one place for the CLI's NATS
API and the dashboard's pages.

Issuing publishes ``credential.issued/1`` (the hash, never the token) and folds it in at
once, so the token works on this instance when the reply arrives and on the others as soon
as they read the event. The token goes back in the reply only; it is not kept anywhere.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from foto3d.libs.bus.connection import Bus
from foto3d.libs.tracing.job import object_span
from foto3d.proto import subjects
from foto3d.proto.api import BAD_REQUEST, FAILED, NOT_FOUND, ServiceError
from foto3d.proto.gateway import (
    CredentialInfo,
    CredentialIssued,
    CredentialKind,
    CredentialRevoked,
    IssueReply,
    IssueRequest,
    ListReply,
    ListRequest,
    RevokeReply,
    RevokeRequest,
    UsageQuery,
    UsageReply,
)
from foto3d.proto.naming import NamingError, customer_of
from foto3d.proto.rules import readable
from foto3d.services.token_gateway.credentials import new_token
from foto3d.services.token_gateway.objects import ObjectIndex
from foto3d.services.token_gateway.store import GatewayStore


class IssueError(ValueError):
    pass


def issue_request(raw: dict[str, Any]) -> IssueRequest:
    """An issue request from a form's fields, checked as the NATS endpoint decodes one."""
    try:
        return msgspec.convert(raw, IssueRequest)
    except msgspec.ValidationError as exc:
        raise ServiceError(BAD_REQUEST, readable(exc)) from None


def _check(req: IssueRequest) -> list[str]:
    """The problems between the request's fields, worded for the person who made it (each
    field's own rule was checked when the request was decoded)."""
    problems: list[str] = []
    for m in req.models:
        try:
            if customer_of(m) != req.customer:
                problems.append(f"model {m} does not belong to customer {req.customer}")
        except NamingError as exc:
            problems.append(str(exc))
    if req.kind == CredentialKind.PUBLISHABLE:
        if not req.origins:
            problems.append("a publishable key needs at least one allowed origin")
        if req.expires_in_days is None:
            problems.append("a publishable key needs an expiry")
    elif req.origins:
        problems.append("origins apply to publishable keys only (secret tokens are for servers)")
    return problems


class CredentialManager:
    def __init__(self, bus: Bus, store: GatewayStore, index: ObjectIndex | None = None) -> None:
        self.bus = bus
        self.store = store
        self.index = index or ObjectIndex()

    async def _publish(self, ev: CredentialIssued | CredentialRevoked, msg_id: str) -> None:
        # Until the stream holds the event nothing is kept anywhere, so the caller may simply retry.
        try:
            await self.bus.publish(subjects.gateway_credentials(ev.credential_id), ev, msg_id=msg_id)
        except Exception as exc:
            raise ServiceError(FAILED, f"the credentials stream did not take the event: {exc!r}") from exc

    async def issue(self, req: IssueRequest) -> IssueReply:
        problems = _check(req)
        if problems:
            raise ServiceError(BAD_REQUEST, "; ".join(problems))
        made = new_token(req.kind)
        now = time.time()
        ev = CredentialIssued(
            credential_id=made.credential_id,
            kind=req.kind,
            customer=req.customer,
            token_hash=made.token_hash,
            prefix=made.prefix,
            label=req.label,
            models=sorted(set(req.models)),
            origins=sorted(set(req.origins)),
            expires_at=now + req.expires_in_days * 86400 if req.expires_in_days is not None else None,
            created_at=now,
            actor=req.actor,
        )
        await self._publish(ev, f"issued-{ev.credential_id}")
        await self.store.apply_credential(ev, None)
        self._trace_issue(ev)
        return IssueReply(credential=self.store.credentials[ev.credential_id].info(), token=made.token)

    def _trace_issue(self, ev: CredentialIssued) -> None:
        """A span in the trace of each object the credential names (one customer-wide otherwise),
        so an object's trace shows when it became reachable for a customer."""
        for object_id in ev.models or [""]:
            state = self.index.get(object_id) if object_id else None
            with object_span(
                "issue credential",
                object_id=object_id,
                step="token-issue",
                customer=ev.customer,
                traceparent=state.traceparent if state else None,
            ) as span:
                span.set_attribute("foto3d.credential_id", ev.credential_id)
                span.set_attribute("foto3d.credential_kind", ev.kind.value)

    async def listing(self, req: ListRequest) -> ListReply:
        creds = self.store.list_credentials(req.customer, req.include_revoked)
        return ListReply(credentials=[c.info() for c in creds])

    def list_credentials(self, customer: str | None) -> list[CredentialInfo]:
        return [c.info() for c in self.store.list_credentials(customer, include_revoked=True)]

    async def revoke(self, req: RevokeRequest) -> RevokeReply:
        cred = self.store.credentials.get(req.credential_id)
        if cred is None:
            raise ServiceError(NOT_FOUND, f"no credential {req.credential_id!r}")
        if cred.revoked_at is None:
            ev = CredentialRevoked(
                credential_id=cred.credential_id,
                revoked_at=time.time(),
                actor=req.actor,
                reason=req.reason[:500],
            )
            await self._publish(ev, f"revoked-{ev.credential_id}")
            await self.store.apply_credential(ev, None)
        return RevokeReply(credential=self.store.credentials[req.credential_id].info())

    async def usage(self, q: UsageQuery) -> UsageReply:
        return UsageReply(rows=await self.store.usage(q))
