"""The catalog service: objects, naming, timelines, approvals, statuses, live links.

It consumes OBJECT_EVENTS (its own events and the publisher's) and JOB_EVENTS (the
queue's) into an sqlite projection, answers the CLI on ``f3d.api.catalog.*`` and serves
the staff pages ``/objects``, ``/objects/{id}``, ``/board`` with their JSON API.

Several instances may run (``instance``, one name each): every one keeps the whole
projection through its own consumers and answers reads; the holder of the
``catalog-leader`` lease alone writes and runs the timers (webhook deliveries,
subscription ends), and the others forward writes to it (``writes.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
import os
import secrets
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from foto3d.libs.auth import Auth
from foto3d.libs.bus.consume import Delivery, PullConsumer
from foto3d.libs.bus.micro import Endpoint, serve
from foto3d.libs.bus.topology import instance_copy
from foto3d.libs.lease import LeaderLease, LeaseHolder
from foto3d.libs.service import Health, NavLink, Service, ServiceContext
from foto3d.libs.tasks import cancel_and_wait
from foto3d.proto import subjects
from foto3d.proto.api import NoBody
from foto3d.proto.base import tolerant_decoder
from foto3d.proto.books import BookEvent
from foto3d.proto.jobs import JobEvent
from foto3d.proto.objects import (
    BOARD,
    CAPTURE,
    CUSTOMER_ADD,
    CUSTOMER_VIEWER,
    CUSTOMERS,
    LIST,
    PUBLISH,
    REGISTER,
    RESUBMIT,
    REVIEW,
    ROLLBACK,
    SHOW,
    STATUS,
    TIMELINE,
    Board,
    CaptureRequest,
    Customer,
    CustomerAdd,
    CustomerViewerReply,
    CustomerViewerRequest,
    ObjectDetails,
    ObjectEvent,
    ObjectPage,
    ObjectQuery,
    ObjectRef,
    ObjectStreamEvent,
    ObjectView,
    PublishedObject,
    RegisterObject,
    ResubmitRequest,
    ReviewRequest,
    RollbackRequest,
    StatusRequest,
    SubmittedObject,
    TimelineEntry,
)
from foto3d.services.catalog import (
    api,
    customer_viewer,
    note_pages,
    pages,
    review,
    subscription_api,
    topology,
    webhook_api,
)
from foto3d.services.catalog.actions import Catalog
from foto3d.services.catalog.applied import AppliedSequence
from foto3d.services.catalog.book_events import BookPublisher, CatalogBooks
from foto3d.services.catalog.note_actions import CaptureNotes
from foto3d.services.catalog.parts import CatalogParts
from foto3d.services.catalog.rebuild import RebuildReport, database_is_new, rebuild, rebuild_books
from foto3d.services.catalog.settings import SETTINGS, CatalogSettings
from foto3d.services.catalog.store import CatalogStore
from foto3d.services.catalog.subscription_clock import SubscriptionClock
from foto3d.services.catalog.subscriptions import SubscriptionBook
from foto3d.services.catalog.webhook_book import WebhookBook
from foto3d.services.catalog.webhook_events import WebhookQueue
from foto3d.services.catalog.webhook_sender import WebhookSender
from foto3d.services.catalog.writes import WriteRoute

log = logging.getLogger(__name__)
# The generated password of `admin`, kept (owner-only) until it no longer signs in.
FIRST_PASSWORD_FILE = "admin-first-password"


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text + "\n")


OPTIMIZE_EVERY_S = 1800.0
LEASE_RENEW_S = 1.5
# A new leader waits this long (per try, three tries) for its copy to catch up before writing.
CATCH_UP_S = 8.0


class CatalogService(Service):
    name = "catalog"
    consumer_specs = (
        topology.OBJECT_EVENTS,
        topology.JOB_EVENTS,
        topology.BOOK_EVENTS,
        topology.WEBHOOK_SOURCE,
        topology.WEBHOOK_SENDER,
    )
    bucket_specs = (topology.WRITER_LEASE,)
    object_store_specs = (topology.REFERENCE_IMAGES, topology.NOTE_PHOTOS)
    description = "Objects, naming standard, pipeline timeline, approvals, statuses and live links"

    def __init__(self) -> None:
        super().__init__()
        self.cfg = CatalogSettings()
        self._store: CatalogStore | None = None
        self._parts: CatalogParts | None = None
        self.consumers: list[PullConsumer[Any]] = []
        self._banner: list[str] = []
        self._optimizer: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.last_rebuild: RebuildReport | None = None
        self._book: SubscriptionBook | None = None
        self._clock: SubscriptionClock | None = None
        self._hooks: WebhookBook | None = None
        self._sender: WebhookSender | None = None
        self._webhook_queue: WebhookQueue | None = None
        self._leader_consumers: list[PullConsumer[Any]] = []
        self._route: WriteRoute | None = None
        self._book_endpoints: list[Endpoint] = []
        self._applied: AppliedSequence | None = None
        self._books_applied: AppliedSequence | None = None
        self._books: CatalogBooks | None = None
        self._book_publisher: BookPublisher | None = None
        self.lease: LeaderLease | None = None
        self._transition = asyncio.Lock()
        self._transitions: set[asyncio.Task[None]] = set()

    @property
    def store(self) -> CatalogStore:
        assert self._store is not None, "catalog not started"
        return self._store

    @property
    def parts(self) -> CatalogParts:
        """What the routes and bus endpoints use (built by ``start()``)."""
        assert self._parts is not None, "catalog not started"
        return self._parts

    async def start(self, ctx: ServiceContext) -> None:
        self.cfg = SETTINGS.load(ctx.settings)
        folder = ctx.settings.service_dir("catalog")
        lost = database_is_new(folder / "catalog.db")
        store = self._store = await CatalogStore(folder / "catalog.db").open()
        catalog = Catalog(store, ctx.bus, folder / "refs", self.cfg.publish_timeout_s)
        route = self._route = WriteRoute(ctx.bus)
        if lost:
            # A new database on a bus that has history (first start, or the file was lost):
            # the live consumers have long acknowledged that history, so read it again.
            self.last_rebuild = await rebuild(ctx.bus, store, folder / "refs", folder / "notes")
            if self.last_rebuild.object_events or self.last_rebuild.job_events:
                log.warning("%s", self.last_rebuild.line())
        auth = Auth(ctx.settings)
        self._parts = CatalogParts(
            store=store,
            catalog=catalog,
            notes=CaptureNotes(catalog, folder / "notes"),
            auth=auth,
            stuck_after_s=self.cfg.stuck_after_s,
            writes=route,
        )
        first = folder / FIRST_PASSWORD_FILE
        if self.cfg.create_admin and await auth.users.count() == 0:
            password = secrets.token_urlsafe(12)
            # Generated and printed: whoever signs in with it first must choose a new one.
            await auth.users.add("admin", password, "Administrator", admin=True, must_change=True)
            # Whoever started the first `up` is admin: their CLI actions on this host carry that
            # name too, not the login's (`foto3d users link` changes it).
            with contextlib.suppress(OSError, KeyError):
                await auth.users.link_login("admin", getpass.getuser())
            await asyncio.to_thread(_write_private, first, password)
        self._banner = await self._first_password_banner(auth, first)
        self.ctx = ctx
        # Each named instance reads every event through its own consumers (a warm copy).
        objects_spec = await instance_copy(ctx.bus.js, topology.OBJECT_EVENTS, self.cfg.instance)
        jobs_spec = await instance_copy(ctx.bus.js, topology.JOB_EVENTS, self.cfg.instance)
        applied = self._applied = AppliedSequence(ctx.bus, objects_spec.durable)
        await applied.load()
        self.consumers = [
            PullConsumer(
                bus=ctx.bus,
                spec=objects_spec,
                decode=tolerant_decoder(ObjectStreamEvent),
                handler=self._ingest_objects,
            ),
            PullConsumer(
                bus=ctx.bus, spec=jobs_spec, decode=tolerant_decoder(JobEvent), handler=self._ingest
            ),
        ]
        for c in self.consumers:
            c.start()
        self._optimizer = asyncio.create_task(self._optimize_now_and_then(), name="catalog:optimize")
        books_lost = any(database_is_new(folder / f) for f in ("webhooks.db", "subscriptions.db"))
        self._hooks = await WebhookBook(folder / "webhooks.db").open()
        self._webhook_queue = WebhookQueue(self._hooks, ctx.bus)
        self._book = await SubscriptionBook(folder / "subscriptions.db").open()
        books = self._books = CatalogBooks(self._book, self._hooks)
        self._book_publisher = BookPublisher(ctx.bus, books)
        if books_lost:
            # Like the database: a consumer that acknowledged the history long ago.
            n = await rebuild_books(ctx.bus, books)
            if self.last_rebuild is not None:
                self.last_rebuild.book_events = n
            elif n:
                log.warning("catalog: subscription and webhook books rebuilt from %d events", n)
        books_spec = await instance_copy(ctx.bus.js, topology.BOOK_EVENTS, self.cfg.instance)
        self._books_applied = AppliedSequence(ctx.bus, books_spec.durable, subjects.CATALOG_BOOKS_STREAM)
        book_consumer = PullConsumer(
            bus=ctx.bus, spec=books_spec, decode=tolerant_decoder(BookEvent), handler=self._ingest_books
        )
        self.consumers.append(book_consumer)
        book_consumer.start()
        self._clock = SubscriptionClock(
            self._book, catalog, ctx.bus, self.cfg.subscriptions, self._webhook_queue
        )
        self._register_writes(route, catalog)
        # Built (and so registered with the route) before the leader opens its write path.
        self._book_endpoints = [
            *subscription_api.endpoints(self._book, store, self._clock, route),
            *webhook_api.endpoints(self._hooks, store, route),
        ]
        holder = LeaseHolder(
            instance=self.cfg.instance or self.instance_id,
            host=ctx.host,
            since=time.time(),
            site=ctx.settings.site,
        )
        lease = self.lease = LeaderLease(
            ctx.bus, topology.WRITER_LEASE, holder, LEASE_RENEW_S, self._on_leadership
        )
        route.leading = lambda: lease.is_leader
        route.leader = lambda: lease.leader.instance if lease.leader else None
        lease.start()
        # Start answering once the first claim went through (leader or standby known).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(lease.round_done.wait(), 10.0)
        if lease.is_leader:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(route.opened(), 3 * CATCH_UP_S + 5.0)

    async def _optimize_now_and_then(self) -> None:
        while True:
            await asyncio.sleep(OPTIMIZE_EVERY_S)
            try:
                await self.store.optimize()
            except Exception as exc:
                log.warning("catalog: refreshing query statistics failed: %r", exc)

    async def _ingest(self, batch: list[Delivery[Any]]) -> None:
        await self.store.ingest(d.event for d in batch if d.event is not None)

    async def _ingest_books(self, batch: list[Delivery[Any]]) -> None:
        assert self._books is not None
        await self._books.ingest(d.event for d in batch)

    async def _ingest_objects(self, batch: list[Delivery[Any]]) -> None:
        await self._ingest(batch)
        if batch and self._applied is not None:
            await self._applied.advance(max(d.stream_seq for d in batch))

    # -- leadership: one writer ------------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        return bool(self.lease and self.lease.is_leader)

    async def _on_leadership(self, leading: bool) -> None:
        # Taking over may take seconds; the lease loop must keep renewing meanwhile.
        task = asyncio.create_task(self._lead(leading), name="catalog:transition")
        self._transitions.add(task)
        task.add_done_callback(self._transitions.discard)

    async def _lead(self, leading: bool) -> None:
        async with self._transition:
            if leading and self.is_leader and not self._leader_consumers:
                await self._become_leader()
            elif not leading and self._leader_consumers:
                await self._step_down()

    async def _become_leader(self) -> None:
        assert self._applied is not None and self._route is not None and self._hooks is not None
        assert self._webhook_queue is not None and self._clock is not None
        ctx = self.context
        # Everything the old leader published is applied first: serials, customers and
        # stages are checked against this copy.
        for attempt in range(1, 4):
            if await self._applied.catch_up(CATCH_UP_S):
                break
            log.warning("catalog: catching up with the object events, attempt %d timed out", attempt)
        # The books too: a CRM request is judged against the newest revision.
        if self._books_applied is not None and not await self._books_applied.catch_up(CATCH_UP_S):
            log.warning("catalog: catching up with the subscription and webhook books timed out")
        if self._book_publisher is not None:
            try:
                await self._book_publisher.publish_all()
            except Exception as exc:  # the books still work here; the others catch up later
                log.warning("catalog: publishing the books after taking over failed: %r", exc)
        if self._parts is not None:
            # Reference images and notes' photos kept only on this disk (from before the buckets).
            for files in (self._parts.catalog.refs, self._parts.notes.photos):
                try:
                    await files.upload_local()
                except Exception as exc:  # served from here still; tried again at the next takeover
                    log.warning("catalog: uploading the local files of %s failed: %r", files.bucket, exc)
        hooks = PullConsumer[Any](
            bus=ctx.bus,
            spec=topology.WEBHOOK_SOURCE,
            decode=tolerant_decoder(ObjectEvent),
            handler=self._webhook_queue.on_object_events,
        )
        self._leader_consumers = [hooks]
        hooks.start()
        self._sender = WebhookSender(self._hooks, ctx.bus, self.cfg.webhooks, topology.WEBHOOK_SENDER)
        self._sender.start()
        self._clock.start()
        await self._route.open_here()

    async def _step_down(self) -> None:
        assert self._route is not None
        await self._route.close_here()
        for c in self._leader_consumers:
            c.request_stop()
        if self._sender is not None:
            self._sender.request_stop()
        if self._clock is not None:
            await self._clock.stop()
        if self._sender is not None:
            await self._sender.stop()
            self._sender = None
        await asyncio.gather(
            *(asyncio.wait_for(c.stop(), 3.0) for c in self._leader_consumers), return_exceptions=True
        )
        self._leader_consumers = []

    async def stop(self) -> None:
        # Every fetch loop ends by itself within its fetch timeout (1 s): ask them all at
        # once, so a stop waits one timeout, not one per consumer in turn.
        for c in self.consumers:
            c.request_stop()
        # The lease goes at once, so a standby takes over without waiting for its TTL.
        if self.lease is not None:
            await self.lease.stop()
        await cancel_and_wait(*self._transitions)
        async with self._transition:
            if self._leader_consumers or (self._route is not None and self._route.is_open):
                await self._step_down()
        if self._route is not None:
            await self._route.stop_answering()
        # Everything that uses the store has ended before the store closes.
        await cancel_and_wait(self._optimizer, *self._tasks)
        self._optimizer = None
        if self._clock is not None:
            await self._clock.stop()
            self._clock = None
        # The books' consumer folds into both books: it ends before they close.
        for c in self.consumers:
            await c.stop()
        self.consumers = []
        if self._book is not None:
            await self._book.close()
            self._book = None
        if self._hooks is not None:
            await self._hooks.close()
            self._hooks = None
        if self._store is not None:
            await self._store.close()

    def health(self) -> Health:
        if self._store is None:
            return Health("starting")
        errors = [c.stats.last_error for c in self.consumers if c.stats.last_error]
        extra: dict[str, Any] = {c.spec.durable: c.stats.handled for c in self.consumers}
        if errors:
            return Health("degraded", f"recording events failed: {errors[-1]}", extra)
        lease = self.lease
        leader = lease.leader.instance if lease is not None and lease.leader else None
        role = "leader" if self.is_leader else "standby"
        extra.update(
            role=role,
            leader=leader,
            applied_seq=self._applied.seq if self._applied else 0,
            forwarded=self._route.forwarded if self._route else 0,
        )
        if self._clock is not None and self._clock.last_error:
            return Health("degraded", f"ending subscriptions failed: {self._clock.last_error}", extra)
        if not self.is_leader and leader is None:
            return Health("degraded", "standby, and no catalog leader: writes are refused", extra)
        what = "leader" if self.is_leader else f"standby (leader: {leader})"
        return Health("ok", f"{what}; recording object and job events", extra)

    async def _first_password_banner(self, auth: Auth, first: Path) -> list[str]:
        """The generated admin password, on every start until someone changes it.

        A first `up` can fail after creating `admin` (a taken port) before anything is
        printed; keeping the password (owner-only file) until it stops working means the
        next start shows it again instead of locking everyone out.
        """
        try:
            password = (await asyncio.to_thread(first.read_text, encoding="utf-8")).strip()
        except FileNotFoundError:
            return []
        if await auth.users.authenticate("admin", password) is None:
            await asyncio.to_thread(first.unlink, missing_ok=True)  # changed since: forget it
            return []
        return [
            f"staff user 'admin' has password {password} (shown on every start until it is changed: "
            "the first sign-in asks for a new one, or `foto3d users passwd admin`; add people with "
            "`foto3d users add NAME`)"
        ]

    def banner(self) -> list[str]:
        lines, self._banner = self._banner, []
        return lines

    def nav(self) -> list[NavLink]:
        return [
            NavLink("Objects", "/objects", 30),
            NavLink("Pipeline", "/board", 31),
            NavLink("Notes", "/notes", 32),
        ]

    def routes(self) -> list[web.AbstractRouteDef]:
        # /login is the runtime's (every page needs it).
        parts = self.parts
        return [
            *api.CatalogApi(parts).routes(),
            *review.CatalogReview(parts, self.context.data_dir(self.name) / "review-cache").routes(),
            *pages.CatalogPages(parts).routes(),
            *note_pages.NotePages(parts).routes(),
        ]

    # -- NATS endpoints (the CLI) ----------------------------------------------------------------

    def _register_writes(self, route: WriteRoute, c: Catalog) -> None:
        """The write commands, run by the lease holder (``writes.py``): the same handlers
        answer the CLI, the HTTP API and a standby's forwarded request."""

        async def customer_add(b: CustomerAdd) -> Customer:
            return await c.add_customer(b.slug, b.name, b.actor)

        async def register(b: RegisterObject) -> ObjectView:
            return await c.register(
                b.customer, b.display_name, b.actor, b.reference_image, b.reference_image_b64,
                b.reference_image_name,
            )  # fmt: skip

        async def capture(b: CaptureRequest) -> ObjectView:
            return await c.captured(b.object_id, b.dataset, b.photos, b.rig, b.actor)

        async def review(b: ReviewRequest) -> ObjectView:
            return await c.review(b.object_id, b.decision, b.checklist, b.comment, b.actor)

        async def status(b: StatusRequest) -> ObjectView:
            return await c.set_status(b.object_id, b.status, b.reason, b.actor)

        async def publish(ref: ObjectRef) -> PublishedObject:
            return await c.publish(ref.object_id, ref.actor)

        async def resubmit(ref: ResubmitRequest) -> SubmittedObject:
            return await c.resubmit(ref.object_id, ref.actor, ref.priority, ref.options)

        async def rollback(b: RollbackRequest) -> ObjectView:
            return await c.rollback(b.object_id, b.version, b.actor)

        async def viewer_by_customer(b: CustomerViewerRequest) -> CustomerViewerReply:
            return await customer_viewer.change(self.parts, b)

        route.add(CUSTOMER_ADD, customer_add)
        route.add(REGISTER, register)
        route.add(CAPTURE, capture)
        route.add(REVIEW, review)
        route.add(STATUS, status)
        # A forwarded publish waits for the upload like a local one.
        route.add(PUBLISH, publish, timeout_s=self.cfg.publish_timeout_s + 30.0)
        route.add(RESUBMIT, resubmit)
        route.add(ROLLBACK, rollback)
        route.add(CUSTOMER_VIEWER, viewer_by_customer)

    def endpoints(self) -> list[Endpoint]:
        p = self.parts
        c = p.catalog
        w = p.writes

        async def customers(_: NoBody) -> list[Customer]:
            return await p.store.customers()

        async def list_(q: ObjectQuery) -> ObjectPage:
            return await p.store.search(
                customer=q.customer, status=q.status, stage=q.stage, q=q.q, since=q.since,
                until=q.until, page=q.page, limit=q.limit,
            )  # fmt: skip

        async def show(ref: ObjectRef) -> ObjectDetails:
            return await p.details(ref.object_id)

        async def timeline(ref: ObjectRef) -> list[TimelineEntry]:
            await c.obj(ref.object_id)
            return await p.store.timeline(ref.object_id)

        async def board(_: NoBody) -> Board:
            return await p.board()

        return [
            serve(CUSTOMER_ADD, w.routed(CUSTOMER_ADD), actor="actor"),
            serve(CUSTOMERS, customers),
            serve(REGISTER, w.routed(REGISTER), actor="actor"),
            serve(LIST, list_),
            serve(SHOW, show),
            serve(TIMELINE, timeline),
            serve(CAPTURE, w.routed(CAPTURE), actor="actor"),
            serve(REVIEW, w.routed(REVIEW), actor="actor"),
            serve(STATUS, w.routed(STATUS), actor="actor"),
            # A publish waits minutes for the upload; each is answered from its own task so
            # the next request on this endpoint (another object) is not held up behind it.
            serve(PUBLISH, w.routed(PUBLISH), tasks=self._tasks, actor="actor"),
            serve(RESUBMIT, w.routed(RESUBMIT), actor="actor"),
            serve(ROLLBACK, w.routed(ROLLBACK), actor="actor"),
            # The portal's (the gateway signs it, naming the portal account).
            serve(CUSTOMER_VIEWER, w.routed(CUSTOMER_VIEWER), actor="actor"),
            serve(BOARD, board),
            *note_pages.endpoints(p),
            *self._subscription_endpoints(),
        ]

    def _subscription_endpoints(self) -> list[Endpoint]:
        return self._book_endpoints
