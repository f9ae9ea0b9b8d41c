"""The catalog's JSON API (and CSV export) over HTTP.

Reads are open like every other service's read-only views; changes need a signed-in
person (session cookie or trusted proxy header), whose name becomes the event's actor.
Changes run where the writer lease is (``parts.writes``): on a standby they are the same
requests the CLI sends, forwarded to the leader.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

import msgspec
from aiohttp import web

from foto3d.proto.objects import (
    CAPTURE,
    CSV_COLUMNS,
    CUSTOMER_ADD,
    PUBLISH,
    REGISTER,
    RESUBMIT,
    REVIEW,
    STATUS,
    CaptureRequest,
    Checklist,
    CustomerAdd,
    Decision,
    LiveStatus,
    ObjectRef,
    ObjectSummary,
    RegisterObject,
    ResubmitRequest,
    ReviewRequest,
    StatusRequest,
)
from foto3d.services.catalog.actions import ActionError
from foto3d.services.catalog.parts import CatalogParts


def _error(message: str, status: int = 400) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _reply(data: msgspec.Struct | list[Any], status: int = 200) -> web.Response:
    """A catalog reply as JSON: the same bytes its NATS endpoint answers with."""
    return web.Response(
        body=msgspec.json.encode(data), status=status, content_type="application/json", charset="utf-8"
    )


def parse_time(value: str, what: str) -> float:
    """Epoch seconds or an ISO date/time (UTC when no zone is given)."""
    try:
        return float(value)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise ActionError(
            f"{what} {value!r} is not a date (use e.g. 2026-11-20 or 2026-11-20T10:00)"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def query_filters(q: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("customer", "status", "stage", "q"):
        v = q.get(key, "").strip()
        if v:
            out[key] = v
    for key in ("since", "until"):
        v = q.get(key, "").strip()
        if v:
            out[key] = parse_time(v, key)
    for key, default in (("page", 1), ("limit", 50)):
        v = q.get(key, "").strip()
        try:
            out[key] = int(v) if v else default
        except ValueError:
            raise ActionError(f"{key} must be a whole number, got {v!r}") from None
    return out


def csv_text(rows: list[ObjectSummary], header: bool = True) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    if header:
        w.writerow(CSV_COLUMNS)
    for r in rows:
        out = []
        for col in CSV_COLUMNS:
            v = getattr(r, col)
            if col == "created" and v is not None:
                v = datetime.fromtimestamp(float(v), UTC).isoformat(timespec="seconds")
            out.append("" if v is None else v)
        w.writerow(out)
    return buf.getvalue()


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except ValueError:
        raise ActionError("the request body must be JSON") from None
    if not isinstance(data, dict):
        raise ActionError("the request body must be a JSON object")
    return data


class CatalogApi:
    """The catalog's JSON API for the dashboard and scripts (staff sign-in required)."""

    def __init__(self, parts: CatalogParts) -> None:
        self.parts = parts

    def routes(self) -> list[web.AbstractRouteDef]:
        return [
            web.get("/api/objects", self.list_objects),
            web.get("/api/objects.csv", self.export_csv),
            web.get("/api/objects/{object_id}", self.show),
            web.get("/api/objects/{object_id}/timeline", self.timeline),
            web.get("/api/customers", self.customers),
            web.get("/api/board", self.board),
            web.post("/api/customers", self.add_customer),
            web.post("/api/objects", self.register),
            web.post("/api/objects/{object_id}/review", self.review),
            web.post("/api/objects/{object_id}/status", self.status),
            web.post("/api/objects/{object_id}/publish", self.publish),
            web.post("/api/objects/{object_id}/resubmit", self.resubmit),
            web.post("/api/objects/{object_id}/capture", self.capture),
            web.post("/api/objects/{object_id}/submit", self.submit),
        ]

    async def guarded(self, request: web.Request, fn: Any) -> web.Response:
        try:
            return await fn()  # type: ignore[no-any-return]
        except ActionError as exc:
            return _error(str(exc), exc.status)
        except msgspec.ValidationError as exc:
            return _error(f"bad request: {exc}")

    async def list_objects(self, request: web.Request) -> web.Response:
        async def run() -> web.Response:
            return _reply(await self.parts.store.search(**query_filters(request.query)))

        return await self.guarded(request, run)

    async def export_csv(self, request: web.Request) -> web.StreamResponse:
        async def run() -> web.StreamResponse:
            filters = query_filters(request.query)
            filters.pop("page", None)
            filters["limit"] = 1000
            resp = web.StreamResponse(
                headers={
                    "Content-Type": "text/csv; charset=utf-8",
                    "Content-Disposition": 'attachment; filename="objects.csv"',
                }
            )
            await resp.prepare(request)
            page_no = 1
            while True:
                page = await self.parts.store.search(**filters, page=page_no, count=False)
                await resp.write(csv_text(page.items, header=page_no == 1).encode())
                if len(page.items) < page.limit:
                    break
                page_no += 1
            await resp.write_eof()
            return resp

        return await self.guarded(request, run)

    async def show(self, request: web.Request) -> web.Response:
        async def run() -> web.Response:
            return _reply(await self.parts.details(request.match_info["object_id"]))

        return await self.guarded(request, run)

    async def timeline(self, request: web.Request) -> web.Response:
        async def run() -> web.Response:
            oid = request.match_info["object_id"]
            await self.parts.catalog.obj(oid)
            return _reply(await self.parts.store.timeline(oid))

        return await self.guarded(request, run)

    async def customers(self, request: web.Request) -> web.Response:
        return _reply(await self.parts.store.customers())

    async def board(self, request: web.Request) -> web.Response:
        return _reply(await self.parts.board())

    async def add_customer(self, request: web.Request) -> web.Response:
        user = await self.parts.auth.require_api(request)

        async def run() -> web.Response:
            b = await _body(request)
            add = CustomerAdd(slug=str(b.get("slug", "")), name=str(b.get("name", "")), actor=user.name)
            row = await self.parts.writes.run(CUSTOMER_ADD, add)
            return _reply(row, status=201)

        return await self.guarded(request, run)

    async def register(self, request: web.Request) -> web.Response:
        user = await self.parts.auth.require_api(request)

        async def run() -> web.Response:
            b = await _body(request)
            req = RegisterObject(
                customer=str(b.get("customer", "")),
                display_name=str(b.get("display_name", "")),
                actor=user.name,
                reference_image=str(b.get("reference_image", "")),
                reference_image_b64=str(b.get("reference_image_b64", "")),
                reference_image_name=str(b.get("reference_image_name", "")),
            )
            row = await self.parts.writes.run(REGISTER, req)
            return _reply(row, status=201)

        return await self.guarded(request, run)

    async def review(self, request: web.Request) -> web.Response:
        user = await self.parts.auth.require_api(request)

        async def run() -> web.Response:
            b = await _body(request)
            checklist = msgspec.convert(b.get("checklist", {}), Checklist)
            decision = msgspec.convert(b.get("decision", ""), Decision)
            req = ReviewRequest(
                object_id=request.match_info["object_id"],
                decision=decision,
                checklist=checklist,
                comment=str(b.get("comment", "")),
                actor=user.name,
            )
            row = await self.parts.writes.run(REVIEW, req)
            return _reply(row)

        return await self.guarded(request, run)

    async def status(self, request: web.Request) -> web.Response:
        user = await self.parts.auth.require_api(request)

        async def run() -> web.Response:
            b = await _body(request)
            st = msgspec.convert(b.get("status", ""), LiveStatus)
            req = StatusRequest(
                object_id=request.match_info["object_id"],
                status=st,
                reason=str(b.get("reason", "")),
                actor=user.name,
            )
            row = await self.parts.writes.run(STATUS, req)
            return _reply(row)

        return await self.guarded(request, run)

    async def publish(self, request: web.Request) -> web.Response:
        user = await self.parts.auth.require_api(request)

        async def run() -> web.Response:
            ref = ObjectRef(object_id=request.match_info["object_id"], actor=user.name)
            published = await self.parts.writes.run(PUBLISH, ref)
            return _reply(published)

        return await self.guarded(request, run)

    async def resubmit(self, request: web.Request) -> web.Response:
        user = await self.parts.auth.require_api(request)

        async def run() -> web.Response:
            req = ResubmitRequest(object_id=request.match_info["object_id"], actor=user.name)
            submitted = await self.parts.writes.run(RESUBMIT, req)
            return _reply(submitted)

        return await self.guarded(request, run)

    async def submit(self, request: web.Request) -> web.Response:
        user = await self.parts.auth.require_api(request)

        async def run() -> web.Response:
            return _reply(await self.parts.catalog.submit(request.match_info["object_id"], user.name))

        return await self.guarded(request, run)

    async def capture(self, request: web.Request) -> web.Response:
        user = await self.parts.auth.require_api(request)

        async def run() -> web.Response:
            b = await _body(request)
            photos = b.get("photos", 0)
            req = CaptureRequest(
                object_id=request.match_info["object_id"],
                dataset=str(b.get("dataset", "")),
                photos=int(photos)
                if isinstance(photos, int) or str(photos).isdigit()
                else 0,  # forms send text
                rig=str(b.get("rig", "")),
                actor=user.name,
            )
            row = await self.parts.writes.run(CAPTURE, req)
            return _reply(row)

        return await self.guarded(request, run)
