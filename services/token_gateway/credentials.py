"""Credential tokens: how they look, how they are made, and how one is checked.

A token is ``sk_<id>_<secret>`` or ``pk_<id>_<secret>``: the 16-hex ``id`` names the
credential in logs, lists and links without revealing it; the secret is 256 random bits.
Only the SHA-256 of the whole token is kept. A slow password hash would add nothing
here: the secret is random, not chosen by a person, so it cannot be guessed from its hash.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

from foto3d.proto.gateway import CredentialInfo, CredentialKind
from foto3d.proto.rules import CREDENTIAL_ID_PART

PREFIXES = {CredentialKind.SECRET: "sk", CredentialKind.PUBLISHABLE: "pk"}
# A token's secret part: 32 random bytes, base64url without padding.
SECRET_PART = "[A-Za-z0-9_-]{43}"
TOKEN_RE = re.compile(f"^(?P<kind>sk|pk)_(?P<id>{CREDENTIAL_ID_PART})_(?P<secret>{SECRET_PART})$")
SHOWN_PREFIX_CHARS = 24  # "sk_" + id + "_" + 4 secret characters


@dataclass(frozen=True)
class NewToken:
    credential_id: str
    token: str
    token_hash: str
    prefix: str


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(kind: CredentialKind) -> NewToken:
    cid = secrets.token_hex(8)
    token = f"{PREFIXES[kind]}_{cid}_{secrets.token_urlsafe(32)}"
    return NewToken(cid, token, hash_token(token), token[:SHOWN_PREFIX_CHARS])


@dataclass(frozen=True)
class Credential:
    """A credential as the gateway holds it (from ``credential.issued/1`` and ``…revoked/1``)."""

    credential_id: str
    kind: CredentialKind
    customer: str
    token_hash: str
    prefix: str
    label: str
    models: tuple[str, ...]
    origins: tuple[str, ...]
    expires_at: float | None
    created_at: float
    created_by: str
    revoked_at: float | None = None
    revoked_by: str = ""

    def usable(self, now: float | None = None) -> bool:
        t = time.time() if now is None else now
        return self.revoked_at is None and (self.expires_at is None or t < self.expires_at)

    def covers(self, object_id: str) -> bool:
        return not self.models or object_id in self.models

    def info(self) -> CredentialInfo:
        return CredentialInfo(
            credential_id=self.credential_id,
            kind=self.kind,
            customer=self.customer,
            prefix=self.prefix,
            label=self.label,
            models=list(self.models),
            origins=list(self.origins),
            expires_at=self.expires_at,
            created_at=self.created_at,
            created_by=self.created_by,
            revoked_at=self.revoked_at,
            revoked_by=self.revoked_by,
        )


@dataclass(frozen=True)
class Presented:
    """What a request presented: the token's kind and id (its hash is checked by the caller)."""

    kind: CredentialKind
    credential_id: str
    token: str


def parse_token(token: str) -> Presented | None:
    m = TOKEN_RE.match(token)
    if m is None:
        return None
    kind = CredentialKind.SECRET if m.group("kind") == "sk" else CredentialKind.PUBLISHABLE
    return Presented(kind, m.group("id"), token)


def matches(cred: Credential, presented: Presented) -> bool:
    """Constant-time comparison of the presented token's hash with the stored one."""
    return cred.kind == presented.kind and hmac.compare_digest(cred.token_hash, hash_token(presented.token))
