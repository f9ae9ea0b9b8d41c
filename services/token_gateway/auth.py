"""Who a customer request comes from: the credential it presents, and the page it runs on.

Secret tokens come only as ``Authorization: Bearer sk_…`` (never in a URL, where logs and
referrers would keep them); publishable keys only as ``?key=pk_…``, so a browser GET needs
no CORS preflight. A publishable key is honoured only from one of its origins, read from
``Origin`` or else ``Referer``. Malformed, unknown or mismatching tokens count towards the
caller's IP ban; expired and revoked ones do not (a stale page must not get its visitors banned).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web

from foto3d.proto.gateway import CredentialKind
from foto3d.services.token_gateway.credentials import Credential, matches, parse_token
from foto3d.services.token_gateway.parts import GatewayParts


@dataclass(frozen=True)
class Denied:
    status: int
    error: str
    message: str
    bad_credential: bool = False  # counts towards a ban
    retry_after: float = 0.0
    credential_id: str = ""
    customer: str = ""


@dataclass(frozen=True)
class Caller:
    credential: Credential
    origin: str  # "" for server-to-server calls


def request_origin(request: web.Request) -> str:
    origin = request.headers.get("Origin", "")
    if origin and origin != "null":
        return origin
    referer = request.headers.get("Referer", "")
    if referer:
        try:
            parts = urlsplit(referer)
        except ValueError:  # e.g. "http://[": a malformed IPv6 host
            return ""
        if parts.scheme and parts.netloc:
            return f"{parts.scheme}://{parts.netloc}"
    return ""


def authenticate(parts: GatewayParts, request: web.Request, rate_limit: bool = True) -> Caller | Denied:
    """The caller of ``request``, or why not. ``rate_limit=False`` leaves the credential's bucket
    alone, for a route with a bucket of its own (the viewer's beacons)."""
    header = request.headers.get("Authorization", "")
    key = request.query.get("key", "")
    if header and key:
        return Denied(400, "bad_request", "send either an Authorization header or ?key=, not both")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return Denied(401, "unauthorized", "use Authorization: Bearer sk_…", bad_credential=True)
        expected = CredentialKind.SECRET
    elif key:
        token = key
        expected = CredentialKind.PUBLISHABLE
    else:
        return Denied(401, "unauthorized", "a credential is needed: Authorization: Bearer sk_… or ?key=pk_…")
    presented = parse_token(token.strip())
    if presented is None:
        return Denied(401, "unauthorized", "the credential is not valid", bad_credential=True)
    if presented.kind != expected:
        if presented.kind == CredentialKind.SECRET:
            # a secret in a URL: refuse, and say why, so it gets rotated
            return Denied(401, "unauthorized", "secret tokens go in the Authorization header, never in a URL")
        return Denied(401, "unauthorized", "publishable keys go in ?key=, not in the Authorization header")
    cred = parts.store.credentials.get(presented.credential_id)
    if cred is None or not matches(cred, presented):
        return Denied(401, "unauthorized", "the credential is not valid", bad_credential=True)
    cid, customer = cred.credential_id, cred.customer
    if cred.revoked_at is not None:
        return Denied(401, "unauthorized", "the credential was revoked", credential_id=cid, customer=customer)
    if cred.expires_at is not None and cred.expires_at <= time.time():
        return Denied(401, "unauthorized", "the credential has expired", credential_id=cid, customer=customer)
    wait = parts.credential_buckets.take(cred.credential_id) if rate_limit else 0.0
    if wait:
        return Denied(
            429,
            "rate_limited",
            "too many requests for this credential",
            retry_after=wait,
            credential_id=cid,
            customer=customer,
        )
    origin = request_origin(request)
    if cred.kind == CredentialKind.PUBLISHABLE and origin not in cred.origins:
        return Denied(
            403, "forbidden", "this key is not allowed on this site", credential_id=cid, customer=customer
        )
    return Caller(cred, origin)
