"""Time-limited file links: presigned S3 URLs, or links this gateway signs and checks itself.

Self-signed links (the local store) look like
``/v1/files/<object_id>/v<N>/<file>?exp=<unix s>&cid=<credential id>&sig=<hmac>``; the HMAC
covers the exact path, the expiry and the credential, so an edited path, a stretched
expiry or a borrowed link fails. Because the gateway serves these itself it checks, at every
fetch, that the model is still live and the credential still usable: a disabled model's
links stop at once. A presigned S3 link is checked by S3 alone, so only its lifetime bounds
it; that is why lifetimes are short by default and capped.

Expiries are rounded up to ``GRANULE_S`` so that links made in the same few seconds are
identical and caches (browsers, CDNs, our presign cache) can reuse them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
import time
from collections import OrderedDict
from pathlib import Path
from urllib.parse import quote

from foto3d.libs.storage.s3 import S3Store
from foto3d.proto.objects import PublishedFile
from foto3d.services.token_gateway import params

GRANULE_S = 10
FILES_PREFIX = "/v1/files"


def expiry(ttl_s: float, now: float | None = None) -> int:
    t = time.time() if now is None else now
    return int(math.ceil((t + ttl_s) / GRANULE_S) * GRANULE_S)


def file_path(object_id: str, version: int, name: str) -> str:
    return f"{FILES_PREFIX}/{quote(object_id)}/v{version}/{quote(name)}"


#: Signed along with the path of a link the API gave out for a `test` model (which it does only
#: to a test origin): such a link may be fetched from any origin, like every link in its lifetime,
#: which is what an embed needs (the viewer fetches from the gateway's own origin). Query ``scope=test``.
TEST_SCOPE = "#test"


def load_or_create_key(path: Path) -> bytes:
    """The HMAC key kept in the data folder (created once, readable by the owner only)."""
    if path.exists():
        key = path.read_bytes().strip()
        if len(key) >= 32:
            return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48).encode()
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(key)
    tmp.chmod(0o600)
    tmp.replace(path)
    return key


class LinkSigner:
    def __init__(self, key: bytes, max_ttl_s: float) -> None:
        self.key = key
        self.max_ttl_s = max_ttl_s

    def signature(self, path: str, exp: int, credential_id: str) -> str:
        mac = hmac.new(self.key, f"{path}\n{exp}\n{credential_id}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def sign(self, path: str, exp: int, credential_id: str) -> str:
        return f"{path}?exp={exp}&cid={credential_id}&sig={self.signature(path, exp, credential_id)}"

    def check(
        self, path: str, exp_text: str, credential_id: str, sig: str, now: float | None = None
    ) -> str | None:
        """None when the link is good, else why not (for the access log; the client sees less).

        The parameters are a stranger's text: their shapes are checked before anything else
        (``hmac.compare_digest`` raises on a non-ASCII str, ``int`` on digits ``isdigit`` admits)."""
        if not params.EXPIRY.fits(exp_text):
            return "bad expiry"
        if not params.CREDENTIAL_ID.fits(credential_id) or not params.SIGNATURE.fits(sig):
            return "malformed link"
        exp = int(exp_text)
        if not hmac.compare_digest(self.signature(path, exp, credential_id).encode(), sig.encode()):
            return "bad signature"
        t = time.time() if now is None else now
        if exp <= t:
            return "expired"
        if exp - t > self.max_ttl_s + GRANULE_S:
            return "lifetime beyond the maximum"  # a link signed before the maximum was lowered
        return None


class Presigner:
    """Presigned S3 GET links, cached per (key, expiry): signing is local but not free."""

    def __init__(self, store: S3Store, cache_size: int = 20_000) -> None:
        self.store = store
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[str, int], str] = OrderedDict()

    def url(self, f: PublishedFile, exp: int, now: float | None = None) -> str:
        hit = self._cache.get((f.key, exp))
        if hit is not None:
            return hit
        t = time.time() if now is None else now
        link = self.store.presigned_get(f.key, max(1, int(exp - t)))
        self._cache[(f.key, exp)] = link
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return link
