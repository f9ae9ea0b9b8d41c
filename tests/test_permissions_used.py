"""The role table the other way round: a role may use nothing that no code of that role uses.

For every pattern a role may publish or subscribe, one of the names proto gives what it
covers (a subject constant or builder, a stream or its subjects, an API) must appear in the
code that runs as that role: a grant no code needs is a grant a thief of that key gets for
free. "The code of a role" is its entry folder and every module of ``libs`` it imports,
transitively (services depend on proto and libs only), plus the service runtime for the
services. Protocol subjects no proto name stands for (reply inboxes, JetStream's acks, a
rig's leaf subjects) are traced to the call that needs them (``PROTOCOL``).

It is a static trace, so it proves a use is *possible* in the role's code, not that it
happens; the forward direction (every subject has a role) is ``test_permissions.py``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from functools import cache
from pathlib import Path

from foto3d.libs.bus.topology import STREAMS
from foto3d.proto import gateway, jobs, objects, permissions, rig, subjects
from foto3d.proto.api import Api
from foto3d.proto.permissions import ROLES, matches

ROOT = Path(__file__).resolve().parent.parent
# What every service (the trainer too) runs whatever its job: connection, provisioning,
# heartbeats, its own log records, the dashboard's sign-in, micro registration.
RUNTIME = ("foto3d/app/runtime.py", "libs/service.py")
ENTRY: dict[str, tuple[str, ...]] = {
    "staff": ("foto3d/cli",),
    "queue": ("services/queue", *RUNTIME),
    "log_collector": ("services/log_collector", *RUNTIME),
    "notifier": ("services/notifier", *RUNTIME),
    "catalog": ("services/catalog", *RUNTIME),
    "publisher": ("services/publisher", *RUNTIME),
    "gateway": ("services/token_gateway", *RUNTIME),
    "scaler": ("services/scaler", *RUNTIME),
    "trainer": ("services/trainer", *RUNTIME),
    "rig": ("foto3d/rig",),
    # A CRM's adapter runs `foto3d subscriptions set --creds crm.nk …` (docs/catalog.md).
    "crm": ("foto3d/cli/commands/subscriptions.py",),
}
# Declarations of every stream, not uses of any.
NOT_USE = {ROOT / "libs/bus/topology.py", ROOT / "foto3d/app/topology.py"}
# Subjects of the protocol itself, each with the call in the role's code that needs it.
PROTOCOL: dict[str, str] = {
    permissions.INBOX: r"\.request\(|\.call\(|\.fetch\(|pull_subscribe|add_service",  # replies
    permissions.MICRO: r"add_service",  # `nats micro` discovery
    "$JSC.R.>": r"leafnodes",  # JetStream's internal replies over a leaf link
    "$JS.FC.>": r"sources",  # flow control of the site's sourcing
    "f3d.leaf.{id}.>": r"f3d\.leaf\.",  # the rig's sourced batches (docs/rig.md)
    "$JS.rig-{id}.API.>": r"domain",  # the site sourcing from the rig's own JetStream domain
    f"{jobs.LEADER_PREFIX}.>": r"leader_subject\(",  # a queue standby forwarding to its leader
    f"{objects.CATALOG_LEADER_PREFIX}.>": r"to_catalog_leader\(",  # a catalog standby forwarding
    "$JS.API.INFO": r"provision|account_info|\.jetstream\(",
    "$JS.API.STREAM.NAMES": r"provision|streams_info|stream_names",
    "$JS.API.STREAM.LIST": r"provision|streams_info",
    "$JS.API.STREAM.INFO.*": r"provision|stream_info",
    "$JS.API.STREAM.CREATE.*": r"provision|add_stream",
    "$JS.API.STREAM.UPDATE.*": r"provision|update_stream",
    "$JS.API.CONSUMER.INFO.*.*": r"provision|consumer_info",
    "$JS.API.CONSUMER.CREATE.*.>": r"provision|add_consumer",
    "$JS.API.CONSUMER.DURABLE.CREATE.*.*": r"provision|add_consumer",
    "$JS.API.STREAM.MSG.GET.*": r"get_msg|get_last_msg",
    "$JS.API.DIRECT.GET.>": r"get_msg|get_last_msg",
}
STREAM_IN = re.compile(r"^\$(?:JS\.(?:API\.(?:[A-Z]+\.)+|ACK\.|FC\.)|KV\.|O\.)([A-Za-z0-9_-]+)")


def _files(rel: str) -> list[Path]:
    path = ROOT / rel
    return [path] if path.is_file() else sorted(path.rglob("*.py"))


def _module_file(module: str) -> Path | None:
    """The file of a ``foto3d.libs``/``foto3d.app`` module (others are not this role's)."""
    parts = module.split(".")
    if parts[0] != "foto3d" or len(parts) < 2 or parts[1] not in ("libs", "app"):
        return None
    base = ROOT.joinpath(*parts[1:]) if parts[1] == "libs" else ROOT.joinpath("foto3d", *parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path) -> Iterator[Path]:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        else:
            continue
        for m in modules:
            if (found := _module_file(m)) is not None:
                yield found


@cache
def code_of(role: str) -> str:
    todo = [f for rel in ENTRY[role] for f in _files(rel)]
    seen: set[Path] = set()
    while todo:
        f = todo.pop()
        if f not in seen:
            seen.add(f)
            todo.extend(_imports(f))
    return "\n".join(f.read_text() for f in sorted(seen - NOT_USE))


def _constants() -> dict[str, str]:
    found: dict[str, str] = {}
    for mod in (subjects, rig, jobs, gateway, objects, permissions):
        for name, value in vars(mod).items():
            if name.isupper() and isinstance(value, str):
                found.setdefault(name, value)
    return found


def _builders() -> dict[str, Callable[..., str]]:
    return {
        n: f
        for mod in (subjects, objects)
        for n, f in vars(mod).items()
        if callable(f)
        and n != "token"
        and getattr(f, "__module__", "") == mod.__name__
        and n.endswith(
            ("_subject", "s", "_of", "dead", "heartbeat", "train", "signin", "notices", "usage", "bans")
        )
        and not isinstance(f, type)
    }


def _apis() -> dict[str, str]:
    return {
        v.subject: n for mod in permissions.API_MODULES for n, v in vars(mod).items() if isinstance(v, Api)
    }


SAMPLE_TOKENS = ("service", "rig", "trainer", "job", "access", "signin", "x", *(s.name for s in STREAMS))


def _subject_names(pattern: str, participant: str) -> list[str]:
    names = []
    for name, value in _constants().items():
        if not value.startswith("f3d."):
            continue
        if value == pattern or matches(pattern, value) or matches(value, pattern) or pattern == f"{value}.>":
            names.append(name)
    for name, build in _builders().items():
        arity = build.__code__.co_argcount
        for tok in SAMPLE_TOKENS:
            try:
                subject = build(*(tok, participant or "x")[:arity])
            except (TypeError, ValueError):
                continue
            if matches(pattern, subject) or matches(subject, pattern):
                names.append(name + "(")
    return names


def names_for(pattern: str, participant: str) -> list[str]:
    """The proto names whose subjects ``pattern`` covers: one must appear in the role's code."""
    pattern = pattern.replace("{id}", participant)
    names: list[str] = []
    if m := STREAM_IN.match(pattern):
        stream = m.group(1)
        bucket = stream.removeprefix("KV_").removeprefix("OBJ_")  # a KV bucket or an object store
        names += [n for n, v in _constants().items() if v in (stream, bucket)] + [f'"{bucket}"']
        for s in STREAMS:
            if s.name == stream:  # a stream is used through its subjects too
                for subj in s.subjects:
                    names += _subject_names(subj, participant)
    names += _subject_names(pattern, participant)
    names += [n for subject, n in _apis().items() if matches(pattern, subject)]
    return sorted(set(names))


def _appears(name: str, code: str) -> bool:
    if name.startswith('"'):
        return name in code
    return re.search(rf"\b{re.escape(name)}" + ("" if name.endswith("(") else r"\b"), code) is not None


def unused(role: str) -> list[str]:
    r = ROLES[role]
    participant = {"rig": "r1", "trainer": "t1"}.get(role, "")
    code = code_of(role)
    out = []
    for kind, pattern in [*(("publish", p) for p in r.publish), *(("subscribe", p) for p in r.subscribe)]:
        if pattern in PROTOCOL:
            if not re.search(PROTOCOL[pattern], code):
                out.append(f"{kind} {pattern}: no code of the role makes the call that needs it")
            continue
        names = names_for(pattern, participant)
        if not names:
            out.append(f"{kind} {pattern}: no proto name covers it (declare it in proto)")
        elif not any(_appears(n, code) for n in names):
            out.append(f"{kind} {pattern}: none of {names} appears in the code of {', '.join(ENTRY[role])}")
    return out


def test_every_role_has_its_code() -> None:
    assert set(ENTRY) == set(ROLES) - {"up"}


def test_a_role_may_use_nothing_its_code_does_not_use() -> None:
    problems = {role: unused(role) for role in ENTRY}
    assert {r: p for r, p in problems.items() if p} == {}


def test_the_check_sees_a_grant_nobody_uses() -> None:
    """A grant no trainer code needs, added to the trainer's role, is caught."""
    role = ROLES["trainer"]
    ROLES["trainer"] = replace(role, publish=(*role.publish, subjects.GATEWAY_BANS_ALL))
    try:
        assert [p for p in unused("trainer") if "f3d.gateway.bans" in p]
    finally:
        ROLES["trainer"] = role
