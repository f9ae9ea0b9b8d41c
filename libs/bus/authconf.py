"""Compile the role table (``foto3d.proto.permissions``) into nats-server configuration.

One ``authorization { users = [...] }`` entry per identity that is not revoked: its public
nkey and its role's permissions, written out for that participant. A revoked identity is
simply absent, so a configuration reload (``nats-server --signal reload`` or SIGHUP)
closes its connections and refuses it from then on, without a restart.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from foto3d.libs.bus.identities import Identity, IdentityStore, write_private
from foto3d.proto.permissions import Role

AUTH_FILE = "authorization.conf"
# Leaf links are accepted only from identities whose role has a leaf link (rigs).
CLIENT = "STANDARD"
LEAF = "LEAFNODE"


def _list(items: Iterable[str]) -> str:
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


def _permissions(role: Role) -> str:
    if role.publish == (">",) and role.subscribe == (">",) and not role.publish_deny:
        return ""  # everything: no permissions block at all
    pub = f"allow: {_list(role.publish)}"
    if role.publish_deny:
        pub += f", deny: {_list(role.publish_deny)}"
    parts = [f"publish: {{ {pub} }}", f"subscribe: {{ allow: {_list(role.subscribe)} }}"]
    if role.responds:
        parts.append("allow_responses: true")
    return ", permissions: { " + ", ".join(parts) + " }"


def user_entry(identity: Identity) -> str:
    role = identity.permissions()
    types = [CLIENT, LEAF] if role.leaf else [CLIENT]
    return (
        f"    # {identity.name} ({identity.role})\n"
        f"    {{ nkey: {json.dumps(identity.public_key)}, allowed_connection_types: {_list(types)}"
        f"{_permissions(role)} }}\n"
    )


def authorization_block(identities: Iterable[Identity], system_key: str | None = None) -> str:
    """The server's ``authorization`` block: every live identity, nobody else; with
    ``system_key``, the system account that only talks to the server itself."""
    users = "".join(user_entry(i) for i in identities if not i.revoked)
    text = f"authorization {{\n  users = [\n{users}  ]\n}}\n"
    if system_key:
        text += f"accounts {{\n  SYS {{ users = [ {{ nkey: {json.dumps(system_key)} }} ] }}\n}}\nsystem_account: SYS\n"
    return text


def write_authorization(store: IdentityStore) -> Path:
    """(Re)write the store's compiled ``authorization.conf``; a server that includes it
    applies it at its next reload."""
    path = store.folder / AUTH_FILE
    _, system = store.system_key()
    write_private(path, authorization_block(store.load(), system).encode())
    return path
