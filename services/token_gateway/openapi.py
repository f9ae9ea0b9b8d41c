"""The OpenAPI 3.1 document of the customer API, its schemas generated from the proto Structs.

OpenAPI 3.1 schemas are JSON Schema 2020-12, which is what msgspec emits, so the bodies
in the document are the very types the handlers encode; tests validate real replies
against it. The parameters' patterns are the ones the handlers validate with
(:mod:`params`), the formats the registry's names, and every status a route or the guard in
front of all of them can answer is listed, so a client generated from this document sends
nothing the gateway refuses and meets no answer it was not told about.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import msgspec

from foto3d import __version__
from foto3d.libs.splat.formats import registry as splat_formats
from foto3d.proto.analytics import MAX_BEACON_BYTES, Beacon, BeaconAccepted
from foto3d.proto.gateway import ErrorReply, HealthReply, ModelReply, UsageReply
from foto3d.services.token_gateway import params
from foto3d.services.token_gateway.objects import SPLAT_FORMATS

# The file route's template (the route itself adds the version's digits pattern).
FILE_LINK_TEMPLATE = "/v1/files/{object_id}/v{version}/{name}"
# What a published file can be: a splat (the registry's types), the thumbnail, the viewer config.
FILE_CONTENT_TYPES = sorted(
    {f.content_type for f in splat_formats.FORMATS.values()} | {"image/png", "application/json"}
)
# A published version is a count; more digits than this is no version of ours.
MAX_VERSION_DIGITS = 9

REF = "#/components/schemas/{name}"


def _ref(tp: type) -> dict[str, str]:
    return {"$ref": REF.format(name=tp.__name__)}


def _json(tp: type, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(tp)}}}


ERROR_TEXT = {
    400: "Malformed id, path or query, or both credentials at once",
    401: "Missing, invalid, expired or revoked credential",
    403: "Origin not allowed, link or pass not valid or expired, address banned or not allowed",
    404: "No such model for this credential (unknown, another customer's, or not live), or no such path",
    413: "A request body (bodies are refused unread, but the beacon's up to its limit)",
    429: "Rate limited; see Retry-After",
    500: "The gateway's own fault (never the request's); try again",
    503: "The viewer is not installed on this gateway",
}
# What the guard in front of every route can answer whatever the route: an address not allowed
# or banned (403), a body (413), the address's rate (429), and the gateway's own fault (500).
GUARD_CODES = (403, 413, 429, 500)


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): _json(ErrorReply, ERROR_TEXT[c]) for c in sorted({*codes, *GUARD_CODES})}


def _page_errors(*codes: int) -> dict[str, Any]:
    """The iframe page's refusals: the viewer's not-available card, the reason in the console
    (``refusal.py``), with the same status codes as the JSON API's."""
    return {
        str(c): {
            "description": ERROR_TEXT[c] + " (shown as the not-available card)",
            "content": {"text/html": {}},
        }
        for c in sorted({*codes, *GUARD_CODES})
    }


SECRET: dict[str, list[str]] = {"bearer": []}
PUBLISHABLE: dict[str, list[str]] = {"publishableKey": []}
CREDENTIALS_NOTE = (
    "Credentials: a secret token in `Authorization: Bearer sk_…` or a publishable key in `?key=pk_…`, "
    "never both in one request (400). A publishable key is honoured only from its origins (`Origin`, "
    "else `Referer`)."
)


def _param(
    name: str, where: str, schema: dict[str, Any], description: str = "", required: bool = True
) -> dict[str, Any]:
    p: dict[str, Any] = {"name": name, "in": where, "required": required, "schema": schema}
    if description:
        p["description"] = description
    return p


def _formats() -> dict[str, Any]:
    # The gateway splits on commas and refuses any name not in the registry (400).
    return {
        "name": "formats",
        "in": "query",
        "required": False,
        "style": "form",
        "explode": False,
        "description": "the formats the client can decode; only these files are listed",
        "schema": {"type": "array", "items": {"type": "string", "enum": list(SPLAT_FORMATS)}},
    }


@cache
def _document() -> dict[str, Any]:
    _, components = msgspec.json.schema_components(
        [ModelReply, ErrorReply, UsageReply, HealthReply, Beacon, BeaconAccepted], ref_template=REF
    )
    object_id = _param("object_id", "path", params.OBJECT_ID.schema(), "the object's id (naming standard)")
    link_params = [
        _param("exp", "query", params.EXPIRY.schema(), "the link's expiry, unix seconds"),
        _param(
            "cid", "query", params.CREDENTIAL_ID.schema(), "the id of the credential the link was given to"
        ),
        _param("sig", "query", params.SIGNATURE.schema(), "the link's signature"),
        _param(
            "scope",
            "query",
            {"type": "string", "enum": list(params.LINK_SCOPES)},
            "set on links given out to a test origin",
            required=False,
        ),
    ]
    file_name = params.FILE_NAME.schema() | {"not": {"pattern": "[.][.]"}}
    version = {"type": "integer", "minimum": 0, "maximum": 10**MAX_VERSION_DIGITS - 1}
    # the key's beacon and the embed page's beacon take the same body and give the same answer
    beacon_body = {
        "required": True,
        "content": {"application/json": {"schema": _ref(Beacon)}, "text/plain": {"schema": _ref(Beacon)}},
    }
    beacon_taken = _json(BeaconAccepted, "Taken (summed within seconds)")
    embed_pass = _param("pass", "path", params.EMBED_PASS.schema(), "the pass embedPage put in its API base")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "foto3d customer API",
            "version": __version__,
            "description": "Models, time-limited file links and usage for a customer's credentials. "
            + CREDENTIALS_NOTE
            + " Every route but the viewer's beacon answers only GET (and HEAD); any other method is a "
            "405 with `Allow`.",
        },
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": f"secret token, `{params.SECRET_TOKEN.pattern}`; never together with `?key=`",
                },
                "publishableKey": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "key",
                    "description": f"publishable key, `{params.PUBLISHABLE_KEY.pattern}`, honoured only from "
                    "the key's origins; never together with an Authorization header",
                },
            },
        },
        "paths": {
            "/v1/models/{object_id}": {
                "get": {
                    "operationId": "getModel",
                    "summary": "Viewer config and time-limited links to a model's files",
                    "description": CREDENTIALS_NOTE,
                    "security": [SECRET, PUBLISHABLE],
                    "parameters": [object_id, _formats()],
                    "responses": {"200": _json(ModelReply, "The model"), **_errors(400, 401, 403, 404, 429)},
                }
            },
            FILE_LINK_TEMPLATE: {
                "get": {
                    "operationId": "getFile",
                    "summary": "A file, through a link from getModel (local store only; S3 links go to S3)",
                    "description": "Each link parameter at most once (a repeated one is a 400).",
                    "parameters": [
                        object_id,
                        _param("version", "path", version),
                        _param("name", "path", file_name),
                        *link_params,
                    ],
                    "responses": {
                        "200": {
                            "description": "The file's bytes, with the type it was published with",
                            "content": {t: {} for t in FILE_CONTENT_TYPES},
                        },
                        **_errors(400, 403, 404),
                    },
                }
            },
            "/v1/usage": {
                "get": {
                    "operationId": "getUsage",
                    "summary": "Requests, refusals and bytes per object and day for the token's customer",
                    "security": [SECRET],
                    "parameters": [
                        _param(
                            "since", "query", params.DAY.schema(), "first day, YYYY-MM-DD", required=False
                        ),
                        _param("until", "query", params.DAY.schema(), "last day, YYYY-MM-DD", required=False),
                        _param(
                            "object_id", "query", params.OBJECT_ID.schema(), "one object only", required=False
                        ),
                    ],
                    "responses": {
                        "200": _json(UsageReply, "Usage rows, newest day first"),
                        **_errors(400, 401, 403),
                    },
                }
            },
            "/v1/beacon": {
                "post": {
                    "operationId": "beacon",
                    "summary": "The viewer's analytics beacon: one page's events for one model (no cookies, "
                    "no personal data; the client's address is used only truncated, for the rate limit)",
                    "description": "Sent by the viewer with navigator.sendBeacon as text/plain (no preflight); "
                    f"the body is JSON whatever its type says, at most {MAX_BEACON_BYTES} bytes. "
                    "Rate-limited per key and client network (/24, /48).",
                    "security": [PUBLISHABLE],
                    "requestBody": beacon_body,
                    "responses": {
                        "202": beacon_taken,
                        **_errors(400, 401, 403, 404, 413, 429),
                    },
                }
            },
            "/embed/{object_id}": {
                "get": {
                    "operationId": "embedPage",
                    "summary": "The whole-page viewer for an iframe; the key is checked against the framing page (Referer)",
                    "security": [PUBLISHABLE],
                    "parameters": [object_id],
                    "responses": {
                        "200": {
                            "description": "The page (framable only by the key's origins); a model that is not live shows a not-available card",
                            "content": {"text/html": {}},
                        },
                        **_page_errors(400, 401, 403, 404, 503),
                    },
                }
            },
            "/embed-api/{pass}/v1/models/{object_id}": {
                "get": {
                    "operationId": "embedModel",
                    "summary": "getModel for the viewer inside embedPage, with the short-lived pass that page hands it",
                    "parameters": [
                        embed_pass,
                        object_id,
                        _formats(),
                    ],
                    "responses": {"200": _json(ModelReply, "The model"), **_errors(400, 403, 404)},
                }
            },
            "/embed-api/{pass}/v1/beacon": {
                "post": {
                    "operationId": "embedBeacon",
                    "summary": "The beacon of the viewer inside embedPage, with that page's pass (taken up to a "
                    "day past the pass's expiry)",
                    "parameters": [embed_pass],
                    "requestBody": beacon_body,
                    "responses": {
                        "202": beacon_taken,
                        **_errors(400, 403, 404, 413, 429),
                    },
                }
            },
            "/viewer/{file}": {
                "get": {
                    "operationId": "viewerBundle",
                    "summary": "The <foto3d-viewer> module under its versioned name (immutable)",
                    "parameters": [_param("file", "path", {"type": "string"})],
                    "responses": {
                        "200": {"description": "The module", "content": {"text/javascript": {}}},
                        **_errors(404, 503),
                    },
                }
            },
            "/docs/{tail}": {
                "get": {
                    "operationId": "customerDocs",
                    "summary": "The customer documentation: static pages built with the product (`/docs/` is its start)",
                    "parameters": [_param("tail", "path", {"type": "string"})],
                    "responses": {
                        "200": {"description": "A page, or a file of the site", "content": {"*/*": {}}},
                        **_errors(404),
                    },
                }
            },
            "/v1/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "responses": {
                        "200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}},
                        **_errors(),
                    },
                }
            },
            "/healthz": {
                "get": {
                    "operationId": "health",
                    "summary": "Whether this instance serves (503 while it is still reading the bus)",
                    "responses": {
                        "200": _json(HealthReply, "Serving"),
                        "503": _json(HealthReply, "Starting"),
                        **_errors(),
                    },
                }
            },
        },
    }


def document(server_url: str) -> dict[str, Any]:
    doc = dict(_document())
    if server_url:
        doc["servers"] = [{"url": server_url}]
    return doc
