"""The iframe viewer page (``/embed/{object_id}?key=pk_…``) and the short-lived pass it hands
the viewer inside it.

A publishable key is honoured only from one of its origins. The embedding page's origin
arrives with the iframe's own request (``Referer``), so ``/embed`` checks the key there. The
viewer inside the iframe then runs on the gateway's origin, where the key's origin check would
refuse it; instead the page gives it an API base that carries a pass signed by the gateway
(``/embed-api/{pass}``): the credential, the embedding origin and an expiry, bound to the one
object. The pass grants nothing the key did not already grant to that origin, for that object,
for a link lifetime.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from foto3d.services.token_gateway import params
from foto3d.services.token_gateway.links import LinkSigner

EMBED_API_PREFIX = "/embed-api"


@dataclass(frozen=True)
class EmbedPass:
    exp_text: str
    credential_id: str
    origin_b64: str
    sig: str

    @property
    def origin(self) -> str:
        try:
            return base64.urlsafe_b64decode(self.origin_b64 + "=" * (-len(self.origin_b64) % 4)).decode()
        except (binascii.Error, UnicodeDecodeError):
            return ""


def _signed_path(object_id: str, origin_b64: str) -> str:
    return f"/embed/{object_id}/{origin_b64}"


def issue(signer: LinkSigner, object_id: str, origin: str, credential_id: str, exp: int) -> str:
    """The pass for one object, one credential and one embedding origin, until ``exp``."""
    origin_b64 = base64.urlsafe_b64encode(origin.encode()).rstrip(b"=").decode()
    sig = signer.signature(_signed_path(object_id, origin_b64), exp, credential_id)
    return f"{exp}.{credential_id}.{origin_b64}.{sig}"


def parse(text: str) -> EmbedPass | None:
    m = params.EMBED_PASS.regex.fullmatch(text)
    return EmbedPass(*m.groups()) if m else None


def check(signer: LinkSigner, object_id: str, p: EmbedPass) -> str | None:
    """None when the pass is good for this object, else why not (for the access log)."""
    return signer.check(_signed_path(object_id, p.origin_b64), p.exp_text, p.credential_id, p.sig)


def frame_ancestors(origins: tuple[str, ...]) -> str:
    """The page may be framed only by the key's own sites (``'none'`` for a key without any)."""
    safe = [o for o in origins if re.fullmatch(r"https?://[A-Za-z0-9.:\[\]-]+", o)]
    return "frame-ancestors " + (" ".join(safe) if safe else "'none'")
