"""The OpenAPI 3.1 document of the customer API, its schemas generated from the proto Structs.

OpenAPI 3.1 schemas are JSON Schema 2020-12, which is what msgspec emits, so the bodies
in the document are the very types the handlers encode; tests validate real replies
against it.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import msgspec

from foto3d import __version__
from foto3d.proto.gateway import ErrorReply, HealthReply, ModelReply, UsageReply
from foto3d.services.token_gateway.objects import SPLAT_FORMATS

REF = "#/components/schemas/{name}"


def _ref(tp: type) -> dict[str, str]:
    return {"$ref": REF.format(name=tp.__name__)}


def _json(tp: type, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(tp)}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "Malformed id, path or query",
        401: "Missing, invalid, expired or revoked credential",
        403: "Origin not allowed, link not valid or expired, address banned or not allowed",
        404: "No such model for this credential (unknown, another customer's, or not live)",
        429: "Rate limited; see Retry-After",
    }
    return {str(c): _json(ErrorReply, text[c]) for c in codes}


SECRET: dict[str, list[str]] = {"bearer": []}
PUBLISHABLE: dict[str, list[str]] = {"publishableKey": []}


@cache
def _document() -> dict[str, Any]:
    _, components = msgspec.json.schema_components(
        [ModelReply, ErrorReply, UsageReply, HealthReply], ref_template=REF
    )
    object_id = {
        "name": "object_id",
        "in": "path",
        "required": True,
        "schema": {
            "type": "string",
            "pattern": "^[a-z0-9]+-[a-z0-9]+(?:-[a-z0-9]+)*-[0-9]{3,}$",
            "maxLength": 80,
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "foto3d customer API",
            "version": __version__,
            "description": "Models, time-limited file links and usage for a customer's credentials.",
        },
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "secret token sk_…"},
                "publishableKey": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "key",
                    "description": "publishable key pk_…, honoured only from the key's origins",
                },
            },
        },
        "paths": {
            "/v1/models/{object_id}": {
                "get": {
                    "operationId": "getModel",
                    "summary": "Viewer config and time-limited links to a model's files",
                    "security": [SECRET, PUBLISHABLE],
                    "parameters": [
                        object_id,
                        {
                            "name": "formats",
                            "in": "query",
                            "required": False,
                            "description": f"comma-separated formats the client can decode ({','.join(SPLAT_FORMATS)})",
                            "schema": {"type": "string"},
                        },
                    ],
                    "responses": {"200": _json(ModelReply, "The model"), **_errors(400, 401, 403, 404, 429)},
                }
            },
            "/v1/files/{object_id}/v{version}/{name}": {
                "get": {
                    "operationId": "getFile",
                    "summary": "A file, through a link from getModel (local store only; S3 links go to S3)",
                    "parameters": [
                        object_id,
                        {"name": "version", "in": "path", "required": True, "schema": {"type": "integer"}},
                        {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
                        {"name": "exp", "in": "query", "required": True, "schema": {"type": "integer"}},
                        {"name": "cid", "in": "query", "required": True, "schema": {"type": "string"}},
                        {"name": "sig", "in": "query", "required": True, "schema": {"type": "string"}},
                    ],
                    "responses": {
                        "200": {
                            "description": "The file's bytes",
                            "content": {"application/octet-stream": {}},
                        },
                        **_errors(400, 403, 404, 429),
                    },
                }
            },
            "/v1/usage": {
                "get": {
                    "operationId": "getUsage",
                    "summary": "Requests, refusals and bytes per object and day for the token's customer",
                    "security": [SECRET],
                    "parameters": [
                        {"name": n, "in": "query", "required": False, "schema": {"type": "string"}}
                        for n in ("since", "until", "object_id")
                    ],
                    "responses": {
                        "200": _json(UsageReply, "Usage rows, newest day first"),
                        **_errors(400, 401, 403, 429),
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
                        **_errors(400, 401, 403, 429),
                    },
                }
            },
            "/embed-api/{pass}/v1/models/{object_id}": {
                "get": {
                    "operationId": "embedModel",
                    "summary": "getModel for the viewer inside embedPage, with the short-lived pass that page hands it",
                    "parameters": [
                        {"name": "pass", "in": "path", "required": True, "schema": {"type": "string"}},
                        object_id,
                        {"name": "formats", "in": "query", "required": False, "schema": {"type": "string"}},
                    ],
                    "responses": {"200": _json(ModelReply, "The model"), **_errors(400, 403, 404, 429)},
                }
            },
            "/viewer/{file}": {
                "get": {
                    "operationId": "viewerBundle",
                    "summary": "The <foto3d-viewer> module under its versioned name (immutable)",
                    "parameters": [
                        {"name": "file", "in": "path", "required": True, "schema": {"type": "string"}}
                    ],
                    "responses": {
                        "200": {"description": "The module", "content": {"text/javascript": {}}},
                        **_errors(404),
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
