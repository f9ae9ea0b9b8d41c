"""Identities for tests: servers start with authorization on, as production runs.

One identity set serves a whole test session (``session_identities``): every nats-server
that a test launcher starts includes its compiled ``authorization`` block, and
``FOTO3D_NATS_CREDS`` names its ``up`` key, so whatever a test connects or starts
(services in process, ``foto3d serve`` in a subprocess, the CLI) finds credentials
the way a deployed participant does. A test that needs a narrower role asks
:func:`creds_for`.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

from foto3d.libs.bus.authconf import write_authorization
from foto3d.libs.bus.connection import CREDS_ENV
from foto3d.libs.bus.identities import IdentityStore, participant_name
from foto3d.libs.nats_server import NatsServer

# The per-participant identities every session also holds, for tests of those roles.
TEST_RIG = "r1"
TEST_TRAINER = "t1"
# A person with a personal staff key (`foto3d auth add staff maria`): recorded as themself.
TEST_PERSON = "maria"

_session: IdentityStore | None = None


def make_identities(folder: Path) -> IdentityStore:
    """Every site role, a rig ``r1``, a trainer ``t1`` and maria's personal staff key, with the
    server's config written."""
    store = IdentityStore(folder)
    store.ensure_site()
    store.add("rig", TEST_RIG)
    store.add("trainer", TEST_TRAINER)
    store.add("staff", TEST_PERSON)
    write_authorization(store)
    return store


def session_identities() -> IdentityStore:
    """This test session's identities (made once, removed at exit)."""
    global _session
    if _session is None:
        folder = Path(tempfile.mkdtemp(prefix="foto3d-auth-"))
        atexit.register(shutil.rmtree, folder, True)
        _session = make_identities(folder)
    return _session


def auth_includes() -> list[Path]:
    """What a test's nats-server includes to run with the session's authorization on."""
    store = session_identities()
    return [store.folder / "authorization.conf"]


def creds_for(role: str, participant_id: str = "") -> Path:
    """The seed file of one role's identity in this session (``rig``/``trainer``: r1/t1 by
    default; ``staff`` with an id: that person's own key)."""
    store = session_identities()
    if role in ("rig", "trainer") and not participant_id:
        participant_id = TEST_RIG if role == "rig" else TEST_TRAINER
    return store.key_path(participant_name(role, participant_id))


def use_session_identities() -> None:
    """Make ``up``'s key the default of every connection of this process and its children."""
    os.environ[CREDS_ENV] = str(creds_for("up"))


# Servers started with the session's authorization that must see identities added later.
_watching: list[NatsServer] = []


def reload_on_change(server: NatsServer) -> NatsServer:
    """Have ``server`` re-read the session's authorization when :func:`add_participant` adds one."""
    _watching.append(server)
    return server


def add_participant(role: str, participant_id: str) -> Path:
    """One more rig or trainer in this session (e.g. a rig test's ``rig-k8``); its key file.

    The watched servers reload at once; a participant that connects in the moment before
    is refused and retries, as it would after `foto3d auth add` on a live site.
    """
    store = session_identities()
    name = participant_name(role, participant_id)
    if store.get(name) is None:
        store.add(role, participant_id)
        write_authorization(store)
        for server in _watching:
            if server.running:
                server.reload()
    return store.key_path(name)
