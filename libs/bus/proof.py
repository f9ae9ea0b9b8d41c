"""Who sent a management request, proven: the sender signs it with its own nkey.

The server proves to *itself* who connected (nkey challenge), but tells a responder
nothing: inside one account every request looks alike, and a body's ``actor`` is whatever
the sender wrote. So a sender signs each request with its seed (Ed25519), in headers
(``proto.subjects``): its public key, the time, a nonce and the signature over
``subject, time, nonce, sha256(body)``. The responder checks the signature, the clock
window, that the nonce was not used before, and looks the key up in the roster (the
site's ``identities.json``, public keys only, written by `foto3d auth`): the identity it
finds, not the body, says who acted (:func:`actor_of`). Anything else is refused with a
401/403 error reply, never a silence.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import nkeys
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from foto3d.libs.bus.identities import INDEX, Identity, IdentityStore
from foto3d.proto.api import FORBIDDEN, UNAUTHORIZED, ServiceError
from foto3d.proto.gateway import PORTAL_ACTOR_PREFIX
from foto3d.proto.permissions import ROLES
from foto3d.proto.subjects import NONCE_HEADER, SIGNATURE_HEADER, SIGNED_AT_HEADER, SIGNER_HEADER

# How far a request's time may be from the responder's clock: covers clock skew between
# hosts and a request's time in flight, and bounds how long a nonce must be remembered.
WINDOW_S = 60.0
# Nonces remembered at most (a minute of requests at this rate is far beyond any staff use);
# past it, new requests are refused rather than old nonces forgotten early (a replay gap).
MAX_NONCES = 100_000
# An explicit roster file; by default the one beside the participant's key folder.
ROSTER_ENV = "FOTO3D_AUTH_ROSTER"


def _signed_text(subject: str, signed_at: str, nonce: str, body: bytes) -> bytes:
    return f"{subject}\n{signed_at}\n{nonce}\n{hashlib.sha256(body).hexdigest()}".encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class RequestSigner:
    """Signs requests with one participant's seed (read once; only its public key is kept visible)."""

    def __init__(self, seed: bytes) -> None:
        prefix, raw = nkeys.decode_seed(bytearray(seed.strip()))
        if prefix != nkeys.PREFIX_BYTE_USER:
            raise ValueError("not a user nkey seed")
        self._key = Ed25519PrivateKey.from_private_bytes(bytes(raw))
        kp = nkeys.from_seed(bytearray(seed.strip()))
        try:
            self.public_key = bytes(kp.public_key).decode()
        finally:
            kp.wipe()

    @classmethod
    def from_file(cls, path: str | Path) -> RequestSigner:
        return cls(Path(path).read_bytes())

    def headers(self, subject: str, body: bytes, now: float | None = None) -> dict[str, str]:
        signed_at = str(int((time.time() if now is None else now) * 1000))
        nonce = secrets.token_hex(16)
        sig = self._key.sign(_signed_text(subject, signed_at, nonce, body))
        return {
            SIGNER_HEADER: self.public_key,
            SIGNED_AT_HEADER: signed_at,
            NONCE_HEADER: nonce,
            SIGNATURE_HEADER: _b64(sig),
        }


def _verify_key(public_key: str) -> Ed25519PublicKey:
    """The Ed25519 key inside a user nkey (``U…``: prefix, 32 bytes, crc16)."""
    try:
        data = base64.b32decode(public_key)
    except (binascii.Error, ValueError):
        raise ServiceError(UNAUTHORIZED, "the request's signer is not a public nkey") from None
    if len(data) != 35 or data[0] != nkeys.PREFIX_BYTE_USER:
        raise ServiceError(UNAUTHORIZED, "the request's signer is not a user nkey")
    if nkeys.crc16(bytearray(data[:-2])) != int.from_bytes(data[-2:], "little"):
        raise ServiceError(UNAUTHORIZED, "the request's signer key is corrupt")
    return Ed25519PublicKey.from_public_bytes(data[1:33])


class Roster:
    """The site's identities by public key, re-read when the file changes (add, revoke, rotate)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._by_key: dict[str, Identity] = {}

    def lookup(self, public_key: str) -> Identity | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._by_key = None, {}
            return None
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            self._by_key = {i.public_key: i for i in IdentityStore(self.path.parent).load()}
            self._stamp = stamp
        return self._by_key.get(public_key)


@dataclass
class ProofChecker:
    """Checks the proof of management requests against one roster."""

    roster: Roster
    window_s: float = WINDOW_S
    max_nonces: int = MAX_NONCES

    def __post_init__(self) -> None:
        # (signer, nonce) -> when it may be forgotten (its time + the window)
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()

    def _remember(self, signer: str, nonce: str, signed_at: float, now: float) -> None:
        while self._seen:
            key, until = next(iter(self._seen.items()))
            if until > now:
                break
            del self._seen[key]
        if (signer, nonce) in self._seen:
            raise ServiceError(UNAUTHORIZED, "refused: this request was already received (a replay)")
        if len(self._seen) >= self.max_nonces:
            raise ServiceError(UNAUTHORIZED, "refused: too many signed requests in the last minute")
        # Forgotten only once the request's own time is out of the window, so a replay after
        # that is refused as stale instead.
        self._seen[(signer, nonce)] = max(signed_at, now) + self.window_s

    def check(
        self, subject: str, headers: Mapping[str, str] | None, body: bytes, now: float | None = None
    ) -> Identity:
        """The identity that signed this request; :class:`ServiceError` (401/403) when none did."""
        h = headers or {}
        signer, at, nonce, sig = (
            h.get(k, "") for k in (SIGNER_HEADER, SIGNED_AT_HEADER, NONCE_HEADER, SIGNATURE_HEADER)
        )
        if not (signer and at and nonce and sig):
            raise ServiceError(
                UNAUTHORIZED,
                "refused: the request is not signed (a management request needs "
                "the sender's proof, libs/bus/proof.py; is the client connected with a key?)",
            )
        now = time.time() if now is None else now
        try:
            signed_at = int(at) / 1000
        except ValueError:
            raise ServiceError(UNAUTHORIZED, "refused: the request's signing time is not a number") from None
        if abs(now - signed_at) > self.window_s:
            raise ServiceError(
                UNAUTHORIZED,
                f"refused: the request was signed {now - signed_at:+.0f} s from this host's clock "
                f"(allowed ±{self.window_s:.0f} s; check both clocks)",
            )
        try:
            _verify_key(signer).verify(_unb64(sig), _signed_text(subject, at, nonce, body))
        except (InvalidSignature, binascii.Error, ValueError):
            raise ServiceError(UNAUTHORIZED, "refused: the request's signature does not match") from None
        identity = self.roster.lookup(signer)
        if identity is None or identity.revoked:
            raise ServiceError(
                UNAUTHORIZED,
                f"refused: the key {signer[:12]}… is no identity of this site "
                f"(not in {self.roster.path.name}, or revoked)",
            )
        self._remember(signer, nonce, signed_at, now)
        return identity


def actor_of(identity: Identity, claimed: str) -> str:
    """Who is recorded as having acted: a personal staff key is its person whatever the body
    says; a role that signs people in itself (the dashboard, the site host's shared staff key)
    names the person it acts for; the gateway names only the customer portal account it
    signed in (``portal:<account>``); any other role may not act at all."""
    role = ROLES.get(identity.role)
    if role is not None and role.per_person and identity.participant_id:
        return identity.participant_id
    if role is not None and role.names_people:
        return claimed or identity.name
    if (
        role is not None
        and role.names_portal_accounts
        and claimed.startswith(PORTAL_ACTOR_PREFIX)
        and len(claimed) > len(PORTAL_ACTOR_PREFIX)
    ):
        return claimed
    raise ServiceError(FORBIDDEN, f"refused: {identity.name} ({identity.role}) may not do this")


def roster_path(creds: str | Path | None) -> Path | None:
    """Where the roster is: ``FOTO3D_AUTH_ROSTER``, else beside the key folder (``…/keys/x.nk``)."""
    if explicit := os.environ.get(ROSTER_ENV):
        return Path(explicit)
    if creds:
        return Path(creds).parent.parent / INDEX
    return None


_checkers: dict[Path, ProofChecker] = {}


def checker_for(path: Path) -> ProofChecker:
    """One checker per roster in a process, so a nonce is remembered across its endpoints."""
    found = _checkers.get(path)
    if found is None:
        found = _checkers[path] = ProofChecker(Roster(path))
    return found
