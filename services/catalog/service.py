"""The catalog service: objects, naming, timelines, approvals, statuses, live links.

It consumes OBJECT_EVENTS (its own events and the publisher's) and JOB_EVENTS (the
queue's) into an sqlite projection, answers the CLI on ``f3d.api.catalog.*`` and serves
the staff pages ``/objects``, ``/objects/{id}``, ``/board`` with their JSON API.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import typing
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import msgspec
from aiohttp import web
from nats.micro.request import Request

from foto3d.libs.auth import Auth
from foto3d.libs.bus import subjects
from foto3d.libs.bus.consume import Delivery, PullConsumer
from foto3d.libs.bus.micro import Endpoint
from foto3d.libs.bus.topology import consumer_spec
from foto3d.libs.service import Health, NavLink, Service, ServiceContext
from foto3d.proto.jobs import JobEvent
from foto3d.proto.objects import (
    CaptureRequest,
    CustomerAdd,
    ObjectEvent,
    ObjectQuery,
    ObjectRef,
    RegisterObject,
    Reply,
    ReviewRequest,
    StatusRequest,
)
from foto3d.services.catalog import api, pages, review
from foto3d.services.catalog.actions import ActionError, Catalog
from foto3d.services.catalog.store import CatalogStore

log = logging.getLogger(__name__)
API = f"{subjects.API_PREFIX}.catalog"
DAY = 86_400.0
OPTIMIZE_EVERY_S = 1800.0


class _Tagged(msgspec.Struct):
    type: str = ""


def tolerant_decoder(tp: Any) -> Callable[[bytes, Mapping[str, str]], Any]:
    """Decode ``tp`` (a tagged union); an event type this version does not know yet (a newer
    queue or publisher) is skipped as None instead of being dead-lettered. A known type that
    does not validate is still malformed."""
    dec = msgspec.json.Decoder(tp)
    known = {m.__struct_config__.tag for m in typing.get_args(tp)}

    def decode(data: bytes, _headers: Mapping[str, str]) -> Any:
        try:
            return dec.decode(data)
        except msgspec.ValidationError:
            if msgspec.json.decode(data, type=_Tagged).type not in known:
                return None
            raise

    return decode


class CatalogSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    publish_timeout_s: float = 1800.0
    # How long an object may sit in a stage before the board calls it stuck.
    stuck_after_s: dict[str, float] = msgspec.field(
        default_factory=lambda: {
            "registered": 7 * DAY,
            "captured": 1 * DAY,
            "submitted": 2 * 3600.0,
            "training": 12 * 3600.0,
            "failed": 3600.0,
            "in_review": 2 * DAY,
            "rejected": 2 * DAY,
            "approved": 1 * DAY,
        }
    )
    create_admin: bool = True


class CatalogService(Service):
    name = "catalog"
    description = "Objects, naming standard, pipeline timeline, approvals, statuses and live links"

    def __init__(self) -> None:
        super().__init__()
        self.cfg = CatalogSettings()
        self._store: CatalogStore | None = None
        self._catalog: Catalog | None = None
        self._auth: Auth | None = None
        self.consumers: list[PullConsumer[Any]] = []
        self._banner: list[str] = []
        self._optimizer: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def store(self) -> CatalogStore:
        assert self._store is not None, "catalog not started"
        return self._store

    @property
    def catalog(self) -> Catalog:
        assert self._catalog is not None, "catalog not started"
        return self._catalog

    @property
    def auth(self) -> Auth:
        assert self._auth is not None, "catalog not started"
        return self._auth

    async def start(self, ctx: ServiceContext) -> None:
        self.cfg = ctx.settings.section("catalog", CatalogSettings)
        folder = ctx.settings.service_dir("catalog")
        self._store = await CatalogStore(folder / "catalog.db").open()
        self._catalog = Catalog(self._store, ctx.bus, folder / "refs", self.cfg.publish_timeout_s)
        self._auth = Auth(ctx.settings)
        if self.cfg.create_admin and await self._auth.users.count() == 0:
            password = secrets.token_urlsafe(12)
            await self._auth.users.add("admin", password, "Administrator", admin=True)
            self._banner = [
                f"created staff user 'admin' with password {password} (shown once; "
                "add people with `foto3d users add NAME`)"
            ]
        self.ctx = ctx
        self.consumers = [
            PullConsumer(
                bus=ctx.bus,
                spec=consumer_spec(stream, durable),
                decode=tolerant_decoder(tp),
                handler=self._ingest,
            )
            for stream, durable, tp in (
                ("OBJECT_EVENTS", "catalog-objects", ObjectEvent),
                ("JOB_EVENTS", "catalog-jobs", JobEvent),
            )
        ]
        for c in self.consumers:
            c.start()
        self._optimizer = asyncio.create_task(self._optimize_now_and_then(), name="catalog:optimize")

    async def _optimize_now_and_then(self) -> None:
        while True:
            await asyncio.sleep(OPTIMIZE_EVERY_S)
            try:
                await self.store.optimize()
            except Exception as exc:
                log.warning("catalog: refreshing query statistics failed: %r", exc)

    async def _ingest(self, batch: list[Delivery[Any]]) -> None:
        await self.store.ingest(d.event for d in batch if d.event is not None)

    async def stop(self) -> None:
        if self._optimizer is not None:
            self._optimizer.cancel()
            self._optimizer = None
        for t in list(self._tasks):
            t.cancel()
        for c in self.consumers:
            await c.stop()
        self.consumers = []
        if self._store is not None:
            await self._store.close()

    def health(self) -> Health:
        if self._store is None:
            return Health("starting")
        errors = [c.stats.last_error for c in self.consumers if c.stats.last_error]
        extra = {c.spec.durable: c.stats.handled for c in self.consumers}
        if errors:
            return Health("degraded", f"recording events failed: {errors[-1]}", extra)
        return Health("ok", "recording object and job events", extra)

    def banner(self) -> list[str]:
        lines, self._banner = self._banner, []
        return lines

    def nav(self) -> list[NavLink]:
        return [NavLink("Objects", "/objects", 30), NavLink("Pipeline", "/board", 31)]

    def routes(self) -> list[web.AbstractRouteDef]:
        return [*self.auth.routes(), *api.routes(self), *review.routes(self), *pages.routes(self)]

    # -- NATS endpoints (the CLI) ----------------------------------------------------------------

    def endpoints(self) -> list[Endpoint]:
        def ep(name: str, fn: Callable[[bytes], Awaitable[Any]], background: bool = False) -> Endpoint:
            async def answer(req: Request) -> None:
                try:
                    data = await fn(req.data)
                    reply = Reply(ok=True, data=msgspec.Raw(msgspec.json.encode(data)))
                except ActionError as exc:
                    reply = Reply(ok=False, error=str(exc))
                except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                    reply = Reply(ok=False, error=f"bad request: {exc}")
                except Exception as exc:
                    log.exception("catalog endpoint %s failed", name)
                    reply = Reply(ok=False, error=f"internal error: {exc!r}")
                await req.respond(msgspec.json.encode(reply))

            async def handler(req: Request) -> None:
                if not background:
                    await answer(req)
                    return
                # A publish waits minutes for the upload; answer from a task so the next
                # request on this endpoint (another object) is not held up behind it.
                task = asyncio.create_task(answer(req), name=f"catalog:{name}")
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

            return Endpoint(name, f"{API}.{name}", handler)

        c = self.catalog

        async def customer_add(data: bytes) -> Any:
            b = msgspec.json.decode(data, type=CustomerAdd)
            return await c.add_customer(b.slug, b.name, b.actor)

        async def customers(_data: bytes) -> Any:
            return await self.store.customers()

        async def register(data: bytes) -> Any:
            b = msgspec.json.decode(data, type=RegisterObject)
            return await c.register(
                b.customer, b.display_name, b.actor, b.reference_image, b.reference_image_b64,
                b.reference_image_name,
            )  # fmt: skip

        async def list_(data: bytes) -> Any:
            q = msgspec.json.decode(data or b"{}", type=ObjectQuery)
            page = await self.store.search(
                customer=q.customer, status=q.status, stage=q.stage, q=q.q, since=q.since,
                until=q.until, page=q.page, limit=q.limit,
            )  # fmt: skip
            return {"items": page.items, "total": page.total, "page": page.page, "limit": page.limit}

        async def show(data: bytes) -> Any:
            ref = msgspec.json.decode(data, type=ObjectRef)
            return await self.details(ref.object_id)

        async def timeline(data: bytes) -> Any:
            ref = msgspec.json.decode(data, type=ObjectRef)
            await c.obj(ref.object_id)
            return await self.store.timeline(ref.object_id)

        async def capture(data: bytes) -> Any:
            b = msgspec.json.decode(data, type=CaptureRequest)
            return await c.captured(b.object_id, b.dataset, b.photos, b.rig, b.actor)

        async def review(data: bytes) -> Any:
            b = msgspec.json.decode(data, type=ReviewRequest)
            return await c.review(b.object_id, b.decision, b.checklist, b.comment, b.actor)

        async def status(data: bytes) -> Any:
            b = msgspec.json.decode(data, type=StatusRequest)
            return await c.set_status(b.object_id, b.status, b.reason, b.actor)

        async def publish(data: bytes) -> Any:
            ref = msgspec.json.decode(data, type=ObjectRef)
            return await c.publish(ref.object_id, ref.actor)

        async def resubmit(data: bytes) -> Any:
            ref = msgspec.json.decode(data, type=ObjectRef)
            return await c.resubmit(ref.object_id, ref.actor)

        async def board(_data: bytes) -> Any:
            return await self.board()

        return [
            ep("customer-add", customer_add),
            ep("customers", customers),
            ep("register", register),
            ep("list", list_),
            ep("show", show),
            ep("timeline", timeline),
            ep("capture", capture),
            ep("review", review),
            ep("status", status),
            ep("publish", publish, background=True),
            ep("resubmit", resubmit),
            ep("board", board),
        ]

    # -- shared reads -----------------------------------------------------------------------------

    async def details(self, object_id: str) -> dict[str, Any]:
        row = await self.catalog.obj(object_id)
        row["jobs"] = await self.store.jobs(object_id)
        row["publications"] = await self.store.publications(object_id)
        return row

    async def board(self) -> dict[str, Any]:
        import time

        now = time.time()
        stuck = await self.store.stuck(self.cfg.stuck_after_s, now)
        for s in stuck:
            s["for_s"] = round(now - s["stage_ts"], 1)
        return {"counts": await self.store.stage_counts(), "stuck": stuck, "now": now}
