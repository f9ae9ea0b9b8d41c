"""The published bucket's CORS rule, kept equal to the origins of the usable publishable keys.

In S3 mode a visitor's browser fetches the model files from presigned S3 links, from the
shop's page or the embed frame: a cross-origin request that S3 answers only when the bucket
has a CORS rule naming that origin. The gateway owns the credentials, so it owns the rule
too: after every credential event (and at start) it writes one rule, ``foto3d-viewer``,
listing the origins of every publishable key that is neither revoked nor expired, reads the
rule back and compares. An origin whose last key is revoked leaves the rule at the next sync.
Rules with another ID are the operator's and are kept as they are.

Only GET and HEAD are allowed: the viewer reads files and never writes. Syncs are coalesced
(one runs at a time; events that arrive meanwhile cause one more), and a failed sync is
retried, so a burst of key changes costs a couple of S3 calls.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from foto3d.libs.storage.s3 import S3Store
from foto3d.proto.gateway import CredentialKind
from foto3d.services.token_gateway.credentials import Credential

log = logging.getLogger(__name__)

RULE_ID = "foto3d-viewer"
MAX_AGE_S = 3600
RETRY_S = 30.0


class CorsError(RuntimeError):
    """The bucket's rule could not be written or does not read back as written."""


def wanted_origins(creds: Iterable[Credential], now: float | None = None) -> list[str]:
    t = time.time() if now is None else now
    return sorted(
        {o for c in creds if c.kind == CredentialKind.PUBLISHABLE and c.usable(t) for o in c.origins}
    )


def viewer_rule(origins: list[str]) -> dict[str, Any]:
    return {
        "ID": RULE_ID,
        "AllowedOrigins": origins,
        "AllowedMethods": ["GET", "HEAD"],
        "AllowedHeaders": ["*"],
        "ExposeHeaders": ["Content-Length", "Content-Range", "ETag"],
        "MaxAgeSeconds": MAX_AGE_S,
    }


def _rules(s3: S3Store) -> list[dict[str, Any]]:
    try:
        return [dict(r) for r in s3.client.get_bucket_cors(Bucket=s3.bucket)["CORSRules"]]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "NoSuchCORSConfiguration":
            return []
        raise


def _ours(rule: dict[str, Any]) -> bool:
    return rule.get("ID") == RULE_ID


_COMPARED = ("AllowedOrigins", "AllowedMethods", "AllowedHeaders", "ExposeHeaders", "MaxAgeSeconds")


def _norm(rule: dict[str, Any]) -> dict[str, Any]:
    return {k: sorted(rule[k]) if isinstance(rule.get(k), list) else rule.get(k) for k in _COMPARED}


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return _norm(a) == _norm(b)


def sync_rule(s3: S3Store, origins: list[str]) -> bool:
    """Make the bucket's ``foto3d-viewer`` rule allow exactly ``origins`` and check it; True when
    it had to change. Blocking (boto3): run it in a thread."""
    try:
        current = _rules(s3)
        others = [r for r in current if not _ours(r)]
        want = viewer_rule(origins) if origins else None
        ours = [r for r in current if _ours(r)]
        if (want is None and not ours) or (want is not None and len(ours) == 1 and _same(ours[0], want)):
            return False
        rules = others + ([want] if want else [])
        if rules:
            s3.client.put_bucket_cors(Bucket=s3.bucket, CORSConfiguration={"CORSRules": rules})  # type: ignore[typeddict-item]
        else:
            s3.client.delete_bucket_cors(Bucket=s3.bucket)
        back = [r for r in _rules(s3) if _ours(r)]
    except (ClientError, BotoCoreError) as exc:
        raise CorsError(f"bucket {s3.bucket}: cannot set its CORS rule for the viewer: {exc}") from exc
    if (want is None and back) or (want is not None and (len(back) != 1 or not _same(back[0], want))):
        raise CorsError(f"bucket {s3.bucket}: its CORS rule reads back as {back}, not as written ({want})")
    return True


class BucketCors:
    """Keeps the rule in step with the credentials; ``changed()`` after each credential event."""

    def __init__(self, s3: S3Store, creds: dict[str, Credential]) -> None:
        self.s3 = s3
        self.creds = creds
        self.origins: list[str] | None = None  # as last verified on the bucket
        self.error = ""
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._dirty.set()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def changed(self) -> None:
        self._dirty.set()

    async def sync_now(self) -> None:
        origins = wanted_origins(self.creds.values())
        if await asyncio.to_thread(sync_rule, self.s3, origins):
            log.info("bucket %s: CORS rule %s now allows %s", self.s3.bucket, RULE_ID, origins or "no origin")
        self.origins = origins
        self.error = ""

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._dirty.wait(), timeout=RETRY_S)
            except TimeoutError:
                pass  # a periodic pass drops the origins of keys that expired meanwhile
            self._dirty.clear()
            try:
                await self.sync_now()
            except CorsError as exc:
                self.error = str(exc)
                log.error("%s (retrying in %.0f s)", exc, RETRY_S)
