"""Identities on the bus: one nkey (Ed25519) per participant, kept in a folder.

The folder (``DATA/auth`` for ``foto3d up``) holds:

* ``identities.json``: every participant's name, role and *public* key (and whether it was
  revoked): what the server's configuration is compiled from (``authconf.py``);
* ``keys/<name>.nk``: each participant's seed, the private key, owner-only (0600), in a
  folder that is owner-only too. A seed is handed to its participant and to nobody else;
  the server never sees one (nkey authentication is a signed challenge).

Seeds are never logged: this module only ever prints public keys.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

import nkeys

from foto3d.proto.permissions import ROLES, Role

INDEX = "identities.json"
KEYS = "keys"
# The participants of one site that `foto3d auth init` (and `up`) creates: one per service,
# staff and the embedded system. Rigs and trainers are added one by one.
SITE_PARTICIPANTS = (
    "up",
    "staff",
    "queue",
    "log_collector",
    "notifier",
    "catalog",
    "publisher",
    "gateway",
    "scaler",
    "crm",
)


# The system account's key file (keys/system.nk).
SYSTEM = "system"


class IdentityError(RuntimeError):
    pass


@dataclass(frozen=True)
class Identity:
    name: str  # the participant: `queue`, `staff`, `rig-r1`, `trainer-gpu1`
    role: str
    participant_id: str  # a rig's or trainer's id, a person's for a personal staff key ("" otherwise)
    public_key: str
    revoked: bool = False

    def permissions(self) -> Role:
        role = ROLES[self.role]
        return role.expand(self.participant_id) if role.per_participant else role


def new_seed() -> bytes:
    """A fresh user nkey seed (``SU…``)."""
    return bytes(nkeys.encode_seed(secrets.token_bytes(32), nkeys.PREFIX_BYTE_USER))


def public_key(seed: bytes) -> str:
    kp = nkeys.from_seed(bytearray(seed))
    try:
        return bytes(kp.public_key).decode()
    finally:
        kp.wipe()


def write_private(path: Path, data: bytes) -> None:
    """Write ``path`` owner-only from its first byte (never briefly readable by others)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def participant_name(role: str, participant_id: str = "") -> str:
    return f"{role}-{participant_id}" if participant_id else role


class IdentityStore:
    """The identities of one site (or of one test's servers), in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def key_path(self, name: str) -> Path:
        return self.folder / KEYS / f"{name}.nk"

    def load(self) -> list[Identity]:
        try:
            rows = json.loads((self.folder / INDEX).read_text())
        except FileNotFoundError:
            return []
        return [Identity(**row) for row in rows]

    def _save(self, identities: list[Identity]) -> None:
        body = json.dumps([asdict(i) for i in identities], indent=2) + "\n"
        write_private(self.folder / INDEX, body.encode())

    def get(self, name: str) -> Identity | None:
        return next((i for i in self.load() if i.name == name), None)

    def add(self, role: str, participant_id: str = "", *, replace: bool = False) -> Identity:
        """Create (or with ``replace``, re-key) one participant; returns its public identity."""
        if role not in ROLES:
            raise IdentityError(f"no role {role!r} (roles: {', '.join(ROLES)})")
        if ROLES[role].per_participant and not participant_id:
            raise IdentityError(f"a {role} needs an id (one identity per {role})")
        own_id = participant_id if ROLES[role].per_participant or ROLES[role].per_person else ""
        name = participant_name(role, own_id)
        identities = self.load()
        existing = next((i for i in identities if i.name == name), None)
        if existing is not None and not existing.revoked and not replace:
            return existing
        seed = new_seed()
        write_private(self.key_path(name), seed + b"\n")
        ident = Identity(name, role, own_id, public_key(seed))
        self._save([i for i in identities if i.name != name] + [ident])
        return ident

    def system_key(self) -> tuple[Path, str]:
        """The site's system-account key (made on first use) and its public key.

        Not a role: it may only talk to the server itself, e.g. to close a revoked rig's
        leaf link, which a configuration reload leaves open (``leafcut.py``).
        """
        path = self.key_path(SYSTEM)
        if not path.exists():
            write_private(path, new_seed() + b"\n")
        return path, public_key(path.read_bytes().strip())

    def ensure_site(self) -> list[Identity]:
        """Every site participant, created where missing (idempotent)."""
        return [self.add(name) for name in SITE_PARTICIPANTS]

    def revoke(self, name: str) -> Identity:
        identities = self.load()
        found = next((i for i in identities if i.name == name), None)
        if found is None:
            raise IdentityError(f"no participant {name!r}")
        revoked = Identity(found.name, found.role, found.participant_id, found.public_key, revoked=True)
        self._save([revoked if i.name == name else i for i in identities])
        self.key_path(name).unlink(missing_ok=True)
        return revoked

    def rotate_all(self) -> list[Identity]:
        """New keys for every participant that is not revoked; the old keys stop working."""
        return [self.add(i.role, i.participant_id, replace=True) for i in self.load() if not i.revoked]
