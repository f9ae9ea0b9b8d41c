"""``POST /v1/beacon?key=pk_…``: the viewer's analytics beacon (``proto/analytics.py``).

Taken only with a valid publishable key from one of its origins, for a model that key may
show there; rate-limited per key and client network, on a bucket of its own (a page's
beacons do not eat into its model lookups). Nothing about the visitor is kept: no cookie is
read or set, the user agent is read only to guess a device class when the page gave none,
and the client's address is used only truncated (/24, /48) as the rate limit's key. A
refusal stores nothing and says why; an accepted beacon is only added to a sum in memory
(``beacon_sums.py``), so the request never waits on sqlite or the bus.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from urllib.parse import urlsplit

import msgspec
from aiohttp import web

from foto3d.proto.analytics import MAX_BEACON_BYTES, Beacon, BeaconAccepted, DeviceClass
from foto3d.proto.rules import readable
from foto3d.services.token_gateway import embed
from foto3d.services.token_gateway.abuse import client_network
from foto3d.services.token_gateway.credentials import Credential
from foto3d.services.token_gateway.links import LinkSigner
from foto3d.services.token_gateway.listener import error_response, keeps_no_address, note
from foto3d.services.token_gateway.parts import PARTS_KEY
from foto3d.services.token_gateway.routes import (
    NOT_FOUND_MESSAGE,
    embed_credential,
    publishable_caller,
    visible,
)

BEACON_PATH = "/v1/beacon"
EMBED_PASS_GRACE_S = 86400.0
_decoder = msgspec.json.Decoder(Beacon)
_encoder = msgspec.json.Encoder()


def device_class(hint: DeviceClass | None, headers: Mapping[str, str]) -> DeviceClass:
    """The page's own guess, else one from the client hints / user agent (read, never kept)."""
    if hint is not None:
        return hint
    if headers.get("Sec-CH-UA-Mobile", "") == "?1":
        return "phone"
    ua = headers.get("User-Agent", "")
    if "iPad" in ua or "Tablet" in ua or ("Android" in ua and "Mobile" not in ua):
        return "tablet"
    if "Mobi" in ua or "iPhone" in ua:
        return "phone"
    return "desktop"


@keeps_no_address
async def post_beacon(request: web.Request) -> web.StreamResponse:
    """``/v1/beacon?key=pk_…`` from a page of one of the key's origins."""
    parts = request.app[PARTS_KEY]
    n = note(request)
    caller = publishable_caller(
        parts,
        request,
        "beacon with a secret token",
        "beacons take a publishable key (?key=pk_…) from a page",
        rate_limit=False,
    )
    if isinstance(caller, web.Response):
        return caller
    n.cors_origin = caller.origin
    return await _take(request, caller.credential, caller.origin, None)


@keeps_no_address
async def post_embed_beacon(request: web.Request) -> web.StreamResponse:
    """``/embed-api/{pass}/v1/beacon``: the beacon of the viewer inside ``/embed``, which runs on
    the gateway's origin and holds the page's pass instead of the key. A pass outlives its
    expiry here by :data:`EMBED_PASS_GRACE_S`: a visitor who stayed longer than a link lives
    still has a beacon to send when leaving, and a beacon grants nothing."""
    parts = request.app[PARTS_KEY]
    n = note(request)
    p = embed.parse(request.match_info["pass"])
    if p is None:
        n.reason = "malformed embed pass"
        parts.bad_credential(n.ip, "bad links")
        return error_response(403, "forbidden", "this embed's pass is not valid")
    cred = embed_credential(parts, request, p)
    if isinstance(cred, web.Response):
        return cred
    n.customer, n.credential_id = cred.customer, cred.credential_id
    return await _take(request, cred, p.origin, p)


async def _take(
    request: web.Request, cred: Credential, origin: str, p: embed.EmbedPass | None
) -> web.StreamResponse:
    parts = request.app[PARTS_KEY]
    n = note(request)
    if wait := parts.beacon_buckets.take(f"{cred.credential_id} {client_network(n.ip)}"):
        n.reason = "beacon rate"
        return error_response(
            429, "rate_limited", "too many beacons for this key from this network", retry_after=wait
        )
    if not request.content_length:  # a body without a length was refused unread (listener.guard)
        n.reason = "bad beacon"
        return error_response(400, "bad_request", "not a beacon: a beacon is a JSON body")
    if request.content_length > MAX_BEACON_BYTES:
        n.reason = "beacon too large"
        return error_response(
            413,
            "bad_request",
            f"a beacon is a JSON body of at most {MAX_BEACON_BYTES} bytes, with its length",
        )
    body = await request.read()
    try:
        beacon = _decoder.decode(body)
    except msgspec.ValidationError as exc:
        n.reason = "bad beacon"
        return error_response(400, "bad_request", f"not a beacon: {readable(exc)}"[:500])
    except msgspec.DecodeError:
        n.reason = "bad beacon"
        return error_response(400, "bad_request", "not a beacon: the body is not JSON")
    n.object_id = beacon.object_id
    if p is not None and not _pass_fits(parts.signer, beacon.object_id, p):
        n.reason = "embed pass for another model, or long expired"
        parts.bad_credential(n.ip, "bad links")
        return error_response(403, "forbidden", "this embed's pass is not valid for this model")
    state = parts.index.get(beacon.object_id)
    if state is None or not visible(parts, state, cred, origin):
        n.reason = "not visible"
        return error_response(404, "not_found", NOT_FOUND_MESSAGE)
    domain = urlsplit(origin).netloc
    # The customer portal's own preview (a pass for the gateway's own origin) is the customer
    # looking at its model, not a visitor: taken, never counted.
    if p is None or origin != parts.base_url:
        parts.beacons.add(
            cred.customer,
            beacon.object_id,
            domain,
            device_class(beacon.device, request.headers),
            beacon.events,
        )
    resp = web.Response(
        status=202,
        body=_encoder.encode(BeaconAccepted(accepted=len(beacon.events))),
        content_type="application/json",
    )
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _pass_fits(signer: LinkSigner, object_id: str, p: embed.EmbedPass) -> bool:
    why = embed.check(signer, object_id, p)
    if why is None:
        return True
    return why == "expired" and p.exp_text.isdigit() and int(p.exp_text) > time.time() - EMBED_PASS_GRACE_S


def routes() -> list[web.AbstractRouteDef]:
    # No OPTIONS: the viewer sends the body as text/plain (navigator.sendBeacon, or fetch with
    # keepalive), a request that needs no preflight; the body is JSON whatever its type says.
    return [
        web.post(BEACON_PATH, post_beacon),
        web.post(embed.EMBED_API_PREFIX + "/{pass}" + BEACON_PATH, post_embed_beacon),
    ]
