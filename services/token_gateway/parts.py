"""Everything a customer request needs, built once by the service and shared by the handlers."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web

from foto3d.libs.storage.s3 import S3Store
from foto3d.proto.objects import PublishedFile
from foto3d.services.token_gateway.abuse import BanList, IpFilter, Network, TokenBuckets
from foto3d.services.token_gateway.accesslog import AccessLog
from foto3d.services.token_gateway.beacon_sums import BeaconSums
from foto3d.services.token_gateway.links import LinkSigner, Presigner
from foto3d.services.token_gateway.metrics import GatewayMetrics
from foto3d.services.token_gateway.objects import ObjectIndex
from foto3d.services.token_gateway.settings import GatewaySettings
from foto3d.services.token_gateway.store import GatewayStore

MAX_CONFIG_BYTES = 1024 * 1024
REPLY_CACHE_SIZE = 10_000


@dataclass
class GatewayParts:
    cfg: GatewaySettings
    store: GatewayStore
    index: ObjectIndex
    signer: LinkSigner
    access: AccessLog
    local_root: Path | None
    s3: S3Store | None
    presigner: Presigner | None
    ip_buckets: TokenBuckets
    credential_buckets: TokenBuckets
    bans: BanList
    ip_filter: IpFilter
    trusted_proxies: list[Network]
    # Viewer beacons: a bucket per key and client network, and the sums waiting to be shared.
    beacon_buckets: TokenBuckets
    beacons: BeaconSums
    # Tells the other instances about a ban this one decided (None: this instance only).
    share_ban: Callable[[str, float, str], Coroutine[Any, Any, None]] | None = None
    # Per-customer counters for /metrics (None: not counted).
    metrics: GatewayMetrics | None = None
    # Where customers reach the listener (public_url, else the listener's own address).
    base_url: str = ""
    ready: bool = False
    # Published viewer configs by key: versioned keys never change, so they are read once.
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    _config_locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    # Encoded /v1/models replies by (object, version, status, name, credential, expiry, formats).
    replies: OrderedDict[tuple[object, ...], bytes] = field(default_factory=OrderedDict)

    def remember_reply(self, key: tuple[object, ...], body: bytes) -> None:
        self.replies[key] = body
        if len(self.replies) > REPLY_CACHE_SIZE:
            self.replies.popitem(last=False)

    def bad_credential(self, ip: str, reason: str) -> None:
        """Count a bad credential from ``ip``; when it earns a ban, keep the ban across restarts
        and tell the other instances."""
        until = self.bans.failure(ip)
        if until is None:
            return
        self._background(self.store.save_ban(ip, until, reason))
        if self.share_ban is not None:
            self._background(self.share_ban(ip, until, reason))

    async def apply_ban(self, ip: str, until: float, reason: str) -> None:
        """A ban another instance (or this one) shared: in force here until it ends."""
        if until <= time.time() or self.bans.bans.get(ip, 0.0) >= until:
            return
        self.bans.bans[ip] = until
        await self.store.save_ban(ip, until, reason)

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def viewer_config(self, f: PublishedFile) -> dict[str, Any]:
        cached = self.configs.get(f.key)
        if cached is not None:
            return cached
        lock = self._config_locks.setdefault(f.key, asyncio.Lock())
        async with lock:
            if f.key in self.configs:
                return self.configs[f.key]
            if self.s3 is not None:
                data = await self.s3.get_bytes(f.key, MAX_CONFIG_BYTES)
            else:
                assert self.local_root is not None
                data = await asyncio.to_thread(self.local_file(f.key).read_bytes)
            config = msgspec.json.decode(data, type=dict[str, Any])
            self.configs[f.key] = config
        self._config_locks.pop(f.key, None)
        return config

    def local_file(self, key: str) -> Path:
        assert self.local_root is not None
        path = (self.local_root / key).resolve()
        if not path.is_relative_to(self.local_root.resolve()):
            raise web.HTTPNotFound()
        return path


PARTS_KEY: web.AppKey[GatewayParts] = web.AppKey("f3d_gateway_parts", GatewayParts)
