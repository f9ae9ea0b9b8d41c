"""The customer routes: models, file links, usage, the OpenAPI document, health.

Unknown objects, other customers' objects, models not live (disabled or never published)
and ``test`` models outside the test origins all answer the very same 404, so a caller
learns nothing about what exists.

The embeddable viewer's bundle (``/viewer/{file}``), its iframe page (``/embed/{object_id}``)
and that page's model answers (``/embed-api/…``, see :mod:`embed`) sit beside the API; all go
through the same guard middleware (rate limits, bans, access log) as everything here.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any, get_args

import msgspec
from aiohttp import web

from foto3d import __version__
from foto3d.libs.tracing.job import object_span
from foto3d.libs.viewer import assets
from foto3d.libs.web import docsite
from foto3d.proto.gateway import (
    CredentialKind,
    HealthReply,
    ModelFile,
    ModelReply,
    UsageQuery,
    UsageReply,
)
from foto3d.proto.jobs import UpAxis
from foto3d.proto.naming import NamingError, validate_object_id
from foto3d.proto.objects import LiveStatus, PublishedFile
from foto3d.services.token_gateway import embed, openapi, params
from foto3d.services.token_gateway.auth import Caller, Denied, authenticate, request_origin
from foto3d.services.token_gateway.credentials import Credential
from foto3d.services.token_gateway.links import TEST_SCOPE, expiry, file_path
from foto3d.services.token_gateway.listener import error_response, note
from foto3d.services.token_gateway.objects import SPLAT_FORMATS, ObjectState
from foto3d.services.token_gateway.parts import PARTS_KEY, GatewayParts

UP_AXES: tuple[str, ...] = get_args(UpAxis)
LINK_PARAMS = ("exp", "cid", "sig", "scope")
NOT_FOUND_MESSAGE = "no such model for this credential"
_encoder = msgspec.json.Encoder()


def _json(body: msgspec.Struct, status: int = 200, cache: str = "no-store") -> web.Response:
    resp = web.Response(status=status, body=_encoder.encode(body), content_type="application/json")
    resp.headers["Cache-Control"] = cache
    return resp


def _not_found() -> web.Response:
    return error_response(404, "not_found", NOT_FOUND_MESSAGE)


def _deny(parts: GatewayParts, request: web.Request, d: Denied) -> web.Response:
    n = note(request)
    n.reason = d.message
    n.credential_id, n.customer = d.credential_id, d.customer
    if d.bad_credential:
        parts.bad_credential(n.ip, "bad credentials")
    return error_response(d.status, d.error, d.message, d.retry_after)


def publishable_caller(
    parts: GatewayParts, request: web.Request, reason: str, refusal: str, rate_limit: bool = True
) -> Caller | web.Response:
    """The caller, if it presents a publishable key; else the answer that refuses it (a secret
    token stays on servers: it must not work from, or mint anything for, a page)."""
    n = note(request)
    caller = authenticate(parts, request, rate_limit=rate_limit)
    if isinstance(caller, Denied):
        return _deny(parts, request, caller)
    cred = caller.credential
    n.customer, n.credential_id = cred.customer, cred.credential_id
    if cred.kind != CredentialKind.PUBLISHABLE:
        n.reason = reason
        return error_response(403, "forbidden", refusal)
    return caller


def embed_credential(
    parts: GatewayParts, request: web.Request, p: embed.EmbedPass
) -> Credential | web.Response:
    """The credential an embed page's pass was given to, or the refusal once it is revoked or
    expired (a pass never outlives its key)."""
    cred = parts.store.credentials.get(p.credential_id)
    if cred is None or not cred.usable():
        note(request).reason = "credential no longer usable"
        return error_response(403, "forbidden", "this embed is no longer valid")
    return cred


def visible(
    parts: GatewayParts, state: ObjectState | None, cred: Credential, origin: str, test_link: bool = False
) -> bool:
    """May this credential, from this origin (or with a link given out to a test origin), see
    this model now?"""
    if state is None or not state.live or state.customer != cred.customer or not cred.covers(state.object_id):
        return False
    return state.effective_status != LiveStatus.TEST or test_link or origin in parts.cfg.test_origins


def _link(parts: GatewayParts, state: ObjectState, f: PublishedFile, cred_id: str, exp: int) -> str:
    if parts.presigner is not None:
        return parts.presigner.url(f, exp)
    name = f.key.rsplit("/", 1)[-1]
    path = file_path(state.object_id, state.version, name)
    if state.effective_status == LiveStatus.TEST:  # only reached from a test origin (visible())
        sig = parts.signer.signature(path + TEST_SCOPE, exp, cred_id)
        return f"{parts.base_url}{path}?exp={exp}&cid={cred_id}&sig={sig}&scope=test"
    return parts.base_url + parts.signer.sign(path, exp, cred_id)


def _id_problem(object_id: str) -> str | None:
    try:
        validate_object_id(object_id)
    except NamingError as exc:
        return str(exc)[:300]
    return None


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def get_model(request: web.Request) -> web.StreamResponse:
    parts = request.app[PARTS_KEY]
    n = note(request)
    object_id = request.match_info["object_id"]
    id_problem = _id_problem(object_id)
    if id_problem is None:
        n.object_id = object_id  # logged even when the request is refused below
    caller = authenticate(parts, request)
    if isinstance(caller, Denied):
        return _deny(parts, request, caller)
    return await _answer_model(request, caller, object_id, id_problem)


async def _answer_model(
    request: web.Request, caller: Caller, object_id: str, id_problem: str | None
) -> web.StreamResponse:
    """The model reply for an authenticated caller (a credential, or an embed pass)."""
    parts = request.app[PARTS_KEY]
    n = note(request)
    cred = caller.credential
    n.customer, n.credential_id = cred.customer, cred.credential_id
    n.cors_origin = caller.origin if caller.origin in cred.origins else ""
    if id_problem is not None:
        n.reason = "bad id"
        return error_response(400, "bad_request", id_problem)
    wanted = [w.strip() for w in request.query.get("formats", "").split(",") if w.strip()]
    unknown = [w for w in wanted if w not in SPLAT_FORMATS]
    if unknown:
        return error_response(
            400,
            "bad_request",
            f"unknown format(s) {', '.join(unknown)[:100]}; known: {', '.join(SPLAT_FORMATS)}",
        )
    state = parts.index.get(object_id)
    if state is None:
        n.reason = "not visible"
        return _not_found()
    # A span in the object's trace: the published version's, so the trace runs to the viewers.
    with object_span(
        "model fetch",
        object_id=object_id,
        step="model-fetch",
        customer=cred.customer,
        traceparent=state.traceparent,
    ) as span:
        if not visible(parts, state, cred, caller.origin):
            n.reason = "not visible"
            span.set_attribute("foto3d.refused", f"{n.reason} (status {state.effective_status.value})")
            return _not_found()
        span.set_attribute("foto3d.version", state.version)
        return await _visible_model(request, state, cred.credential_id, wanted)


async def _visible_model(
    request: web.Request, state: ObjectState, cred_id: str, wanted: list[str]
) -> web.StreamResponse:
    parts = request.app[PARTS_KEY]
    exp = expiry(parts.cfg.link_ttl_s)
    # Within one expiry granule the reply for a credential is the same bytes: reuse them.
    key = (
        state.object_id,
        state.version,
        state.effective_status,
        state.name,
        cred_id,
        exp,
        tuple(wanted),
    )
    body = parts.replies.get(key)
    if body is None:
        body = _encoder.encode(await _model_reply(parts, state, cred_id, exp, wanted))
        parts.remember_reply(key, body)
    resp = web.Response(body=body, content_type="application/json")
    resp.headers["Cache-Control"] = "no-store"
    return resp


async def _model_reply(
    parts: GatewayParts, state: ObjectState, cred_id: str, exp: int, wanted: list[str]
) -> ModelReply:
    config_file = state.by_kind("viewer_config")
    config: dict[str, Any] = await parts.viewer_config(config_file) if config_file else {}
    ups = _ups(config)  # for files published before the event carried each file's up axis
    files = [
        ModelFile(
            format=f.format,  # type: ignore[arg-type]  # splats() keeps only SplatFormatName values
            url=_link(parts, state, f, cred_id, exp),
            bytes=f.bytes,
            content_type=f.content_type,
            sha256=f.sha256,
            up=f.up or ups.get(f.format),
        )
        for f in state.splats()
        if not wanted or f.format in wanted
    ]
    thumb = state.by_kind("thumbnail")
    poster = _link(parts, state, thumb, cred_id, exp) if thumb else None
    return ModelReply(
        object_id=state.object_id,
        name=state.name or str(config.get("name", state.object_id)),
        status=state.effective_status.value,  # type: ignore[arg-type]  # live: never disabled
        model_version=state.version,
        config=customer_config(config, files, poster),
        files=files,
        poster_url=poster,
        expires_at=_rfc3339(exp),
    )


def customer_config(config: dict[str, Any], files: list[ModelFile], poster: str | None) -> dict[str, Any]:
    """The published viewer.json as a customer may see it: its links are the publisher's (staff
    addresses on the dashboard for the local store, bucket addresses for S3), so each file entry
    gets this reply's link for its format (entries the reply does not serve are dropped) and the
    thumbnail the poster's link. A copy: the cached config stays as published."""
    links = {f.format: f.url for f in files}
    out = dict(config)
    if "files" in out:
        out["files"] = [
            {**f, "url": links[f["format"]]}
            for f in out["files"] or []
            if isinstance(f, dict) and f.get("format") in links
        ]
    if poster:
        out["thumbnail"] = poster
    else:
        out.pop("thumbnail", None)
    return out


def _ups(config: dict[str, Any]) -> dict[str, UpAxis]:
    out: dict[str, UpAxis] = {}
    for f in config.get("files") or []:
        if isinstance(f, dict) and f.get("up") in UP_AXES and isinstance(f.get("format"), str):
            out[f["format"]] = f["up"]
    return out


async def get_embed(request: web.Request) -> web.StreamResponse:
    """``/embed/{object_id}?key=pk_…``: the whole-page viewer for an iframe.

    The key is checked against the embedding page's origin (the iframe request's ``Referer``).
    A model that is not visible gets the same page (its viewer then shows "not available"), so
    the page says no more about what exists than the API does."""
    parts = request.app[PARTS_KEY]
    n = note(request)
    object_id = request.match_info["object_id"]
    id_problem = _id_problem(object_id)
    if id_problem is not None:
        n.reason = "bad id"
        return error_response(400, "bad_request", id_problem)
    n.object_id = object_id
    caller = publishable_caller(
        parts, request, "embed with a secret token", "the embed page takes a publishable key (?key=pk_…)"
    )
    if isinstance(caller, web.Response):
        return caller
    cred = caller.credential
    try:
        b = assets.bundle()
    except assets.ViewerBundleMissing:
        n.reason = "viewer bundle missing"
        return error_response(503, "internal", "the viewer is not installed on this gateway")
    exp = expiry(parts.cfg.link_ttl_s)
    state = parts.index.get(object_id)
    thumb = state.by_kind("thumbnail") if state and visible(parts, state, cred, caller.origin) else None
    page = assets.embed_page_html(
        object_id=object_id,
        api_base=f"{embed.EMBED_API_PREFIX}/{embed.issue(parts.signer, object_id, caller.origin, cred.credential_id, exp)}",
        key="",
        bundle_url=assets.bundle_url(),
        sri=b.sri,
        options={"formats": assets.EMBED_DEFAULT_FORMATS},
        poster_url=_link(parts, state, thumb, cred.credential_id, exp) if state and thumb else None,
    )
    resp = web.Response(text=page, content_type="text/html")
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["Content-Security-Policy"] = embed.frame_ancestors(cred.origins)
    return resp


async def get_embed_model(request: web.Request) -> web.StreamResponse:
    """``/embed-api/{pass}/v1/models/{object_id}``: the model, for the viewer inside ``/embed``."""
    parts = request.app[PARTS_KEY]
    n = note(request)
    object_id = request.match_info["object_id"]
    id_problem = _id_problem(object_id)
    if id_problem is None:
        n.object_id = object_id
    p = embed.parse(request.match_info["pass"])
    why = "malformed embed pass" if p is None else embed.check(parts.signer, object_id, p)
    if p is None or why is not None:
        n.reason = why or ""
        if why != "expired":
            parts.bad_credential(n.ip, "bad links")
        return error_response(403, "forbidden", "this embed has expired or is not valid; reload the page")
    cred = embed_credential(parts, request, p)
    if isinstance(cred, web.Response):
        return cred
    if wait := parts.credential_buckets.take(cred.credential_id):
        n.customer, n.credential_id = cred.customer, cred.credential_id
        n.reason = "credential rate"
        return error_response(429, "rate_limited", "too many requests for this credential", retry_after=wait)
    return await _answer_model(request, Caller(cred, p.origin), object_id, id_problem)


async def get_file(request: web.Request) -> web.StreamResponse:
    parts = request.app[PARTS_KEY]
    n = note(request)
    if parts.local_root is None:  # S3 links go to S3 directly
        return _not_found()
    object_id = request.match_info["object_id"]
    name = request.match_info["name"]
    version_text = request.match_info["version"]
    if (
        not params.OBJECT_ID.fits(object_id)
        or len(version_text) > openapi.MAX_VERSION_DIGITS  # int() of thousands of digits raises
        or not params.FILE_NAME.fits(name)
        or ".." in name
    ):
        n.reason = "bad path"
        return error_response(400, "bad_request", "not a file link of this gateway")
    version = int(version_text)  # ASCII digits only: the route's pattern
    n.object_id = object_id
    q = request.query
    if any(len(q.getall(k, ())) > 1 for k in LINK_PARAMS):
        # a proxy or cache in between may read the last of them where we read the first
        n.reason = "repeated link parameter"
        return error_response(400, "bad_request", "not a file link of this gateway")
    cid = q.get("cid", "")
    n.credential_id = cid if params.CREDENTIAL_ID.fits(cid) else ""
    scope = q.get("scope")
    if scope is not None and scope not in params.LINK_SCOPES:
        n.reason = "bad scope"
        return error_response(400, "bad_request", "not a file link of this gateway")
    test_link = scope == "test"
    signed = file_path(object_id, version, name) + (TEST_SCOPE if test_link else "")
    why = parts.signer.check(signed, q.get("exp", ""), cid, q.get("sig", ""))
    if why is not None:
        n.reason = why
        if why == "expired":
            return error_response(403, "forbidden", "this link has expired; ask the API for a new one")
        parts.bad_credential(n.ip, "bad links")
        return error_response(403, "forbidden", "this link is not valid")
    cred = parts.store.credentials.get(cid)
    if cred is None or not cred.usable():
        n.reason = "credential no longer usable"
        return error_response(403, "forbidden", "this link is no longer valid")
    n.customer = cred.customer
    origin = request.headers.get("Origin", "")
    if origin:
        if cred.origins and origin not in cred.origins:
            n.reason = "origin"
            return error_response(403, "forbidden", "this link is not allowed on this site")
        n.cors_origin = origin if origin in cred.origins else ""
    state = parts.index.get(object_id)
    if state is None or not visible(parts, state, cred, request_origin(request), test_link):
        n.reason = "not visible"
        return _not_found()
    f = state.file_named(version, name)
    if f is None:
        return _not_found()
    path = parts.local_file(f.key)
    if not path.is_file():
        n.reason = "file missing from the store"
        return _not_found()
    n.bytes = f.bytes
    remaining = max(0, int(q["exp"]) - int(time.time()))
    resp = web.FileResponse(path, headers={"Content-Type": f.content_type})
    resp.headers["Cache-Control"] = f"private, max-age={remaining}"
    return resp


async def get_usage(request: web.Request) -> web.StreamResponse:
    parts = request.app[PARTS_KEY]
    n = note(request)
    caller = authenticate(parts, request)
    if isinstance(caller, Denied):
        return _deny(parts, request, caller)
    cred = caller.credential
    n.customer, n.credential_id = cred.customer, cred.credential_id
    if cred.kind != "secret":
        return error_response(403, "forbidden", "usage needs a secret token")
    # A parameter present is a value, even an empty one: the document says what each must be.
    since, until, oid = (request.query.get(k) for k in ("since", "until", "object_id"))
    for v in (since, until):
        if v is not None and not params.DAY.fits(v):
            return error_response(400, "bad_request", "since and until are days: YYYY-MM-DD")
    if oid is not None and not params.OBJECT_ID.fits(oid):
        return error_response(400, "bad_request", "object_id does not follow the naming standard")
    rows = await parts.store.usage(
        UsageQuery(customer=cred.customer, object_id=oid, since=since, until=until)
    )
    return _json(UsageReply(rows=rows))


async def get_openapi(request: web.Request) -> web.StreamResponse:
    doc = openapi.document(request.app[PARTS_KEY].base_url)
    return web.json_response(doc, headers={"Cache-Control": "public, max-age=300"})


async def get_docs(request: web.Request) -> web.StreamResponse:
    """The customer documentation (built by `make docs`), public like the viewer's files."""
    return docsite.serve(request, docsite.CUSTOMER, "/docs")


async def healthz(request: web.Request) -> web.StreamResponse:
    parts = request.app[PARTS_KEY]
    reply = HealthReply(
        status="ok" if parts.ready else "starting", models=parts.index.live_count(), version=__version__
    )
    return _json(reply, status=200 if parts.ready else 503)


def routes() -> list[web.AbstractRouteDef]:
    # No OPTIONS handlers: publishable keys ride in the query string, so a browser's GET needs
    # no preflight, and secret tokens are for servers; a preflight is refused (405) on purpose.
    return [
        web.get("/healthz", healthz),
        web.get("/v1/openapi.json", get_openapi),
        web.get("/v1/models/{object_id}", get_model),
        web.get(r"/v1/files/{object_id}/v{version:[0-9]+}/{name}", get_file),
        web.get("/v1/usage", get_usage),
        web.get("/viewer/{file}", assets.handle_bundle),
        web.get("/embed/{object_id}", get_embed),
        web.get(embed.EMBED_API_PREFIX + "/{pass}/v1/models/{object_id}", get_embed_model),
        web.get("/docs/{tail:.*}", get_docs),
    ]
