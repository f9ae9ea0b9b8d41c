"""The token gateway service: follows the bus, serves customers on its own listener.

Start order matters: credentials and object statuses are read up to the present before the
customer listener opens, so the first request is answered with what is true now.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import msgspec
from aiohttp import web

from foto3d.libs.auth.web import Auth
from foto3d.libs.bus.follow import StreamFollower
from foto3d.libs.bus.micro import Endpoint, serve
from foto3d.libs.service import Health, NavLink, Service, ServiceContext
from foto3d.libs.storage.s3 import S3Store
from foto3d.proto import subjects
from foto3d.proto.analytics import ANALYTICS, AnalyticsQuery, AnalyticsReply, BeaconDelta
from foto3d.proto.gateway import (
    PORTAL_INVITE,
    TOKENS_ISSUE,
    TOKENS_LIST,
    TOKENS_REVOKE,
    USAGE,
    CredentialEvent,
    IpBanned,
    PortalInviteReply,
    PortalInviteRequest,
    UsageDelta,
)
from foto3d.services.token_gateway import analytics, beacons, pages, preview, routes
from foto3d.services.token_gateway import settings as gateway_settings
from foto3d.services.token_gateway.abuse import BanList, IpFilter, TokenBuckets, parse_networks
from foto3d.services.token_gateway.accesslog import AccessLog, utc_day
from foto3d.services.token_gateway.beacon_sums import BeaconSums
from foto3d.services.token_gateway.bucket_cors import BucketCors
from foto3d.services.token_gateway.links import LinkSigner, Presigner, load_or_create_key
from foto3d.services.token_gateway.listener import Listener, build_app
from foto3d.services.token_gateway.manage import CredentialManager
from foto3d.services.token_gateway.metrics import GatewayMetrics
from foto3d.services.token_gateway.objects import ObjectIndex
from foto3d.services.token_gateway.parts import GatewayParts
from foto3d.services.token_gateway.portal.accounts import PortalAccounts
from foto3d.services.token_gateway.portal.invites import Inviter
from foto3d.services.token_gateway.portal.pages import PortalPages
from foto3d.services.token_gateway.portal.signin import PortalAuth
from foto3d.services.token_gateway.store import GatewayStore

log = logging.getLogger(__name__)

# How often the viewer's analytics older than their retention are dropped (on a fold).
PRUNE_EVERY_S = 3600.0


class TokenGateway(Service):
    name = "token_gateway"
    description = "Customer credentials, time-limited file links, rate limits and bans"

    def __init__(self) -> None:
        super().__init__()
        self.parts: GatewayParts | None = None
        self.manager: CredentialManager | None = None
        self.listener: Listener | None = None
        self._followers: list[StreamFollower] = []
        self._store: GatewayStore | None = None
        self._access: AccessLog | None = None
        self.cors: BucketCors | None = None
        self.portal: PortalAuth | None = None
        self.inviter: Inviter | None = None

    async def start(self, ctx: ServiceContext) -> None:
        cfg = gateway_settings.load(ctx.settings)
        # everything that can refuse the settings, before anything is opened
        ip_filter = IpFilter(
            parse_networks(cfg.allow_ips, "allow_ips"), parse_networks(cfg.deny_ips, "deny_ips")
        )
        trusted = parse_networks(cfg.trusted_proxies, "trusted_proxies")
        ddir = ctx.data_dir(self.name)
        store = self._store = await GatewayStore.open(ddir / "gateway.sqlite")
        s3 = local_root = presigner = None
        if cfg.s3:
            s3 = S3Store(
                cfg.bucket, cfg.prefix, endpoint_url=cfg.endpoint_url or None, region=cfg.region or None
            )
            presigner = Presigner(s3)
            # building a boto3 client takes a while: do it now, off the loop, not in a request
            await asyncio.to_thread(lambda: s3.client)
            if cfg.bucket_cors:
                self.cors = BucketCors(s3, store.credentials)
        else:
            local_root = gateway_settings.local_root(cfg, ctx.settings)
        key = cfg.link_secret.encode() if cfg.link_secret else load_or_create_key(ddir / "link.key")
        access = self._access = AccessLog(
            ctx.bus, self.instance_id, ctx.host, usage_flush_s=cfg.usage_flush_s
        )
        bans = BanList(cfg.ban_after_failures, cfg.ban_window_s, cfg.ban_s)
        for ip, (until, _reason) in (await store.active_bans()).items():
            bans.bans[ip] = until
        parts = self.parts = GatewayParts(
            cfg=cfg,
            store=store,
            index=ObjectIndex(),
            signer=LinkSigner(key, cfg.max_link_ttl_s),
            access=access,
            local_root=local_root,
            s3=s3,
            presigner=presigner,
            ip_buckets=TokenBuckets(cfg.ip_rate, cfg.ip_burst),
            credential_buckets=TokenBuckets(cfg.credential_rate, cfg.credential_burst),
            bans=bans,
            ip_filter=ip_filter,
            trusted_proxies=trusted,
            beacon_buckets=TokenBuckets(cfg.beacon_rate, cfg.beacon_burst),
            beacons=BeaconSums(ctx.bus, self.instance_id, cfg.beacon_flush_s),
            metrics=GatewayMetrics(bans),
        )
        assert parts.metrics is not None
        ctx.metrics.add("token_gateway", parts.metrics)
        self.manager = CredentialManager(ctx.bus, store, parts.index)
        # The customer portal's accounts: a file of the gateway's own, never the staff's users.
        accounts = PortalAccounts(ddir / "portal", ctx.bus)
        self.inviter = Inviter(ctx.bus, accounts, self.instance_id, lambda: parts.base_url)
        portal = self.portal = PortalAuth(parts, accounts, ctx.bus, self.instance_id)
        try:
            await self._follow(ctx, parts)
            await portal.start()
            if self.cors is not None:
                self.cors.start()
            access.start()
            parts.beacons.start()
            listener = Listener(
                build_app(
                    parts,
                    [
                        *routes.routes(),
                        *beacons.routes(),
                        *portal.routes(),
                        *PortalPages(parts, self.manager, ctx.bus).routes(),
                    ],
                    [portal.gate()],
                ),
                cfg.host,
                cfg.port,
                cfg.max_header_bytes,
            )
            await listener.start()
        except BaseException:
            await self.stop()  # a start that fails (port taken, stream unreadable) leaves nothing open
            raise
        self.listener = listener
        parts.base_url = cfg.public_url.rstrip("/") or self.listener.url
        parts.ready = True
        self.ctx = ctx

    async def _follow(self, ctx: ServiceContext, parts: GatewayParts) -> None:
        js = ctx.bus.js
        store = parts.store
        cred_decoder = msgspec.json.Decoder(CredentialEvent)
        # The usage stream carries request counts and the viewer's beacon sums.
        usage_decoder = msgspec.json.Decoder(UsageDelta | BeaconDelta)

        async def on_credential(data: bytes, seq: int) -> None:
            await store.apply_credential(cred_decoder.decode(data), seq)
            if self.cors is not None:
                self.cors.changed()

        pruned_at = 0.0

        async def on_usage(data: bytes, seq: int) -> None:
            nonlocal pruned_at
            delta = usage_decoder.decode(data)
            if isinstance(delta, BeaconDelta):
                await store.apply_beacons(delta, seq)
                if time.monotonic() - pruned_at >= PRUNE_EVERY_S:
                    # a delta folded late (a gateway that was away) may carry old days: drop them too
                    pruned_at = time.monotonic()
                    keep_from = time.time() - parts.cfg.analytics_retention_days * 86400
                    await store.prune_beacons(utc_day(keep_from))
            else:
                await store.apply_usage(delta, seq)

        for stream, subject, handler, tables in (
            (
                subjects.GATEWAY_CREDENTIALS_STREAM,
                subjects.GATEWAY_CREDENTIALS_ALL,
                on_credential,
                ("credentials",),
            ),
            (subjects.GATEWAY_USAGE_STREAM, subjects.GATEWAY_USAGE_ALL, on_usage, ("usage", "beacons")),
        ):
            follower = StreamFollower(js, stream, subject, handler)
            done = await store.applied_seq(stream)
            if done > await follower.last_stream_seq():
                log.warning(
                    "stream %s is behind what this gateway folded (recreated?); folding it again", stream
                )
                await store.reset_stream(stream, *tables)
                done = 0
            await follower.start(done + 1)
            self._followers.append(follower)
        objects = StreamFollower(
            js, subjects.OBJECT_EVENTS_STREAM, subjects.OBJECT_EVENTS_ALL, parts.index.apply
        )
        await objects.start(1)
        self._followers.append(objects)
        # Bans are short-lived and the stream keeps only the longest one's length: read it whole.
        ban_decoder = msgspec.json.Decoder(IpBanned)

        async def on_ban(data: bytes, _seq: int) -> None:
            ban = ban_decoder.decode(data)
            await parts.apply_ban(ban.ip, ban.until, ban.reason)

        bans = StreamFollower(js, subjects.GATEWAY_BANS_STREAM, subjects.GATEWAY_BANS_ALL, on_ban)
        await bans.start(1)
        self._followers.append(bans)

        async def share_ban(ip: str, until: float, reason: str) -> None:
            ban = IpBanned(ip=ip, until=until, reason=reason[:200], instance=self.instance_id)
            try:
                await ctx.bus.publish(subjects.gateway_bans(self.instance_id), ban, deadline=10.0)
            except Exception as exc:  # the ban holds here regardless; the others learn nothing
                log.warning("ban of %s not shared with the other instances: %r", ip, exc)

        parts.share_ban = share_ban

    async def stop(self) -> None:
        if self.parts is not None:
            self.parts.ready = False
        if self.cors is not None:
            await self.cors.stop()
        if self.listener is not None:
            await self.listener.stop()
            self.listener = None
        if self.portal is not None:
            await self.portal.stop()
            self.portal = None
        if self.parts is not None:
            await self.parts.beacons.stop()  # the last sums out before the bus goes
        for f in self._followers:
            await f.stop()
        self._followers = []
        if self._access is not None:
            await self._access.stop()
            self._access = None
        if self._store is not None:
            await self._store.close()
            self._store = None

    def health(self) -> Health:
        if self.ctx is None or self.parts is None or self.listener is None:
            return Health("starting")
        p = self.parts
        extra: dict[str, Any] = {
            "listener": self.listener.url,
            "live_models": p.index.live_count(),
            "credentials": len(p.store.credentials),
            "bans": len(p.bans.bans),
            "access_log_dropped": p.access.dropped,
        }
        if self.cors is not None:
            extra["bucket_cors_origins"] = self.cors.origins
            if self.cors.error:
                return Health("degraded", self.cors.error, extra)
        if p.access.dropped:
            return Health(
                "degraded", f"{p.access.dropped} access-log records dropped (bus unreachable?)", extra
            )
        return Health("ok", f"customers at {p.base_url}", extra)

    def banner(self) -> list[str]:
        if self.parts is None:
            return []
        where = "S3 presigned links" if self.parts.s3 else f"signed links to {self.parts.local_root}"
        return [f"customer API at {self.parts.base_url}/v1/ ({where})"]

    def endpoints(self) -> list[Endpoint]:
        # `foto3d tokens …`; a refusal is a ServiceError raised by the manager.
        m = self.manager
        assert m is not None
        return [
            serve(TOKENS_ISSUE, m.issue, actor="actor"),
            serve(TOKENS_LIST, m.listing),
            serve(TOKENS_REVOKE, m.revoke, actor="actor"),
            serve(USAGE, m.usage),
            serve(ANALYTICS, self._analytics),
            serve(PORTAL_INVITE, self._invite, actor="actor"),
        ]

    async def _invite(self, req: PortalInviteRequest) -> PortalInviteReply:
        assert self.inviter is not None
        return await self.inviter.invite(req)

    async def _analytics(self, q: AnalyticsQuery) -> AnalyticsReply:
        assert self._store is not None
        return await analytics.analytics(self._store, q)

    def routes(self) -> list[web.AbstractRouteDef]:
        if self.ctx is None or self.parts is None or self.manager is None:
            return []
        return [
            *pages.routes(self.ctx.settings, self.parts, self.manager),
            *preview.routes(Auth(self.ctx.settings), self.parts),
        ]

    def nav(self) -> list[NavLink]:
        return [
            NavLink("Customers' access", pages.CREDENTIALS_PATH, 70),
            NavLink("Customers' usage", pages.USAGE_PATH, 71),
        ]
