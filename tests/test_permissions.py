"""The role table against proto and against a real nats-server.

Every subject family and API in proto has a role that may produce it and one that may
consume it; and on a real server, each role's key is refused (the server's permissions
violation, seen through the client's error callback, never a time-out) exactly where
its role says no, and accepted where it says yes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client
from nats.js.api import RetentionPolicy

from foto3d.app.registry import SERVICES
from foto3d.app.topology import assemble
from foto3d.libs.auth.signinlog import SIGN_IN_SOURCE_KIND
from foto3d.libs.bus.connection import Bus, connect
from foto3d.libs.bus.follow import StreamFollower
from foto3d.libs.bus.topology import STREAMS
from foto3d.libs.nats_server import NatsServer
from foto3d.proto import permissions, subjects
from foto3d.proto.permissions import (
    ROLES,
    STREAM_SUBJECTS,
    Role,
    all_apis,
    may_publish,
    may_subscribe,
    service_role,
)
from testkit.identities import TEST_RIG, TEST_TRAINER, auth_includes, creds_for
from testkit.servers import free_port
from testkit.waiting import eventually

WORKERS = [name for name in ROLES if name != "up"]


def reads_stream(role: Role, stream: str) -> bool:
    return may_publish(role, f"$JS.API.CONSUMER.MSG.NEXT.{stream}.x") or may_publish(
        role, f"$JS.API.CONSUMER.CREATE.{stream}.x"
    )


def sample(role_name: str, subject: str) -> Role:
    role = ROLES[role_name]
    if role.per_participant:
        return role.expand(TEST_RIG if role_name == "rig" else TEST_TRAINER)
    return role


def test_every_stream_subject_has_a_producer_and_a_consumer() -> None:
    covered = set(STREAM_SUBJECTS)
    for stream in STREAMS:
        assert set(stream.subjects) <= covered | {subjects.WORK_MAX_DELIVERIES}, stream.name
    for family, example in STREAM_SUBJECTS.items():
        producers = [r for r in WORKERS if may_publish(sample(r, example), example)]
        assert producers, f"no role but up may publish {family}"
    for stream in STREAMS:
        consumers = [
            r
            for r in WORKERS
            if reads_stream(ROLES[r], stream.name)
            or any(may_subscribe(ROLES[r], STREAM_SUBJECTS.get(s, s)) for s in stream.subjects)
        ]
        assert consumers, f"no role but up reads {stream.name}"


def test_every_api_has_a_caller_and_a_responder() -> None:
    for api in all_apis():
        callers = [r for r in WORKERS if may_publish(ROLES[r], api.subject)]
        responders = [r for r in WORKERS if may_subscribe(ROLES[r], api.subject) and ROLES[r].responds]
        assert callers, f"no role may call {api.subject}"
        assert responders == [r for r in responders if r != "staff"] and responders, api.subject


def test_least_privilege_in_the_table() -> None:
    trainer, rig = sample("trainer", ""), sample("rig", "")
    for role in (trainer, rig):
        for api in all_apis():
            assert not may_publish(role, api.subject), (role.name, api.subject)
        assert not may_subscribe(role, subjects.GATEWAY_CREDENTIALS_ALL)
        assert not may_subscribe(role, subjects.logs("service", "x"))
        assert not may_publish(role, subjects.object_events("o1"))
        assert not may_publish(role, "$JS.API.STREAM.DELETE.LOGS")
    assert may_publish(rig, subjects.logs("rig", TEST_RIG))
    assert not may_publish(rig, subjects.logs("rig", "other"))
    assert not may_publish(rig, subjects.heartbeat("rig", "other"))
    assert not may_publish(trainer, subjects.heartbeat("rig", TEST_RIG))
    assert not may_publish(trainer, subjects.JOB_SUBMIT)
    for name in WORKERS:
        if name != "staff":
            assert not may_publish(sample(name, ""), "f3d.api.gateway.tokens-issue"), name
    # the portal's stream holds one-time code secrets: its gateway reads it, staff never
    for read in ("$JS.API.STREAM.MSG.GET.GATEWAY_PORTAL", "$JS.API.DIRECT.GET.GATEWAY_PORTAL"):
        assert not may_publish(sample("staff", ""), read), read
    # ... and the staff accounts' (password hashes, code secrets): staff may publish a change
    # (`foto3d users`), never read one; every service (each serves a dashboard) reads it
    for read in ("$JS.API.STREAM.MSG.GET.AUTH_ACCOUNTS", "$JS.API.DIRECT.GET.AUTH_ACCOUNTS"):
        assert not may_publish(sample("staff", ""), read), read
    assert not may_publish(sample("staff", ""), "$JS.API.CONSUMER.CREATE.AUTH_ACCOUNTS")
    assert may_publish(sample("staff", ""), subjects.auth_account("k"))
    for name in ("catalog", "queue", "gateway", "notifier"):
        assert may_publish(sample(name, ""), "$JS.API.CONSUMER.CREATE.AUTH_ACCOUNTS"), name
    assert may_publish(sample("staff", ""), "$JS.API.STREAM.MSG.GET.GATEWAY_CREDENTIALS")
    # notes' photos are staff knowledge, not a secret: staff read their bucket's stream as any other
    assert may_publish(sample("staff", ""), f"$JS.API.STREAM.MSG.GET.OBJ_{permissions.CATALOG_NOTES_BUCKET}")
    assert may_publish(sample("gateway", ""), "$JS.API.STREAM.MSG.GET.GATEWAY_PORTAL")
    assert permissions.matches("a.>", "a.b.c") and not permissions.matches("a.*", "a.b.c")
    # the catalog's books and its image buckets' writes: the catalog's alone
    for subject in CATALOG_PRIVATE:
        for name in WORKERS:
            allowed = may_publish(sample(name, ""), subject)
            assert allowed == (name == "catalog"), (name, subject)
    # a CRM sets subscriptions and nothing else
    crm = ROLES["crm"]
    for api in all_apis():
        assert may_publish(crm, api.subject) == api.subject.startswith("f3d.api.subscriptions."), api.subject
    for example in STREAM_SUBJECTS.values():
        assert not may_publish(crm, example) and not may_subscribe(crm, example), example


# The catalog's books (webhook signing secrets: not even staff read them) and a write to its
# reference images' and notes' photos' buckets.
CATALOG_PRIVATE = (
    subjects.catalog_books("subscription", "s1"),
    f"$JS.API.STREAM.MSG.GET.{subjects.CATALOG_BOOKS_STREAM}",
    f"$JS.API.DIRECT.GET.{subjects.CATALOG_BOOKS_STREAM}",
    f"$O.{permissions.CATALOG_REFS_BUCKET}.C.chunk",
    f"$O.{permissions.CATALOG_NOTES_BUCKET}.C.chunk",
)

# Subjects every role is tried on: each family's example, every API, the JetStream API's
# dangerous corners and each role's own allowances made concrete.
PROBES = sorted(
    {
        *STREAM_SUBJECTS.values(),
        *(a.subject for a in all_apis()),
        "$JS.API.STREAM.DELETE.LOGS",
        "$JS.API.STREAM.PURGE.GATEWAY_CREDENTIALS",
        "$JS.API.STREAM.UPDATE.OBJECT_EVENTS",
        "$JS.API.CONSUMER.MSG.NEXT.WORK.trainer-vip",
        "$JS.API.CONSUMER.MSG.NEXT.GATEWAY_CREDENTIALS.x",
        "$JS.API.STREAM.MSG.GET.GATEWAY_PORTAL",
        "$JS.API.DIRECT.GET.GATEWAY_PORTAL",
        *CATALOG_PRIVATE,
        subjects.logs("rig", TEST_RIG),
        subjects.logs("rig", "r2"),
        subjects.heartbeat("trainer", TEST_TRAINER),
        subjects.heartbeat("trainer", "t2"),
    }
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """A bare server (no streams: a publish here changes nothing) with authorization on."""
    root = tmp_path_factory.mktemp("perm")
    s = NatsServer(store_dir=root / "nats", port=free_port(), includes=auth_includes()).start()
    yield s
    s.stop()


async def connect_as(server: NatsServer, key: Path | None, errors: list[str]) -> Client:
    async def on_error(exc: Exception) -> None:
        errors.append(str(exc).lower())

    opts = {"nkeys_seed": str(key)} if key else {}
    return await nats.connect(server.client_url, error_cb=on_error, allow_reconnect=False, **opts)


def refused(errors: list[str], kind: str, subject: str) -> bool:
    return any(f'violation for {kind} to "{subject.lower()}"' in e for e in errors)


async def test_no_key_is_refused(server: NatsServer) -> None:
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await connect_as(server, None, [])


@pytest.mark.parametrize("role_name", WORKERS)
async def test_each_role_is_refused_outside_and_accepted_inside(server: NatsServer, role_name: str) -> None:
    role = sample(role_name, "")
    errors: list[str] = []
    nc = await connect_as(server, creds_for(role_name), errors)
    try:
        for subject in PROBES:
            await nc.publish(subject, b"{}")
        subs = [await nc.subscribe(subject) for subject in PROBES]
        await nc.flush(timeout=10)

        def expected_refusals_arrived() -> bool:
            return all(
                (may_publish(role, subj) or refused(errors, "publish", subj))
                and (may_subscribe(role, subj) or refused(errors, "subscription", subj))
                for subj in PROBES
            )

        # Refusals come as asynchronous -ERR lines: wait for each one the table predicts.
        await eventually(expected_refusals_arrived, "the refusals the table predicts", timeout=15)
        await nc.flush(timeout=10)
        wrong = []
        for subject in PROBES:
            if refused(errors, "publish", subject) == may_publish(role, subject):
                wrong.append(f"publish {subject}: table says {may_publish(role, subject)}")
            if refused(errors, "subscription", subject) == may_subscribe(role, subject):
                wrong.append(f"subscribe {subject}: table says {may_subscribe(role, subject)}")
        assert not wrong, "\n".join(wrong)
        for s in subs:
            if not nc.is_closed:
                await s.unsubscribe()
    finally:
        await nc.close()


async def _ignore(_data: bytes, _seq: int) -> None:
    return None


async def test_a_role_that_reads_a_stream_may_follow_it(bus: Bus, nats_server: NatsServer) -> None:
    """A follower (``libs/bus/follow.py``: nats-py's ordered consumer, created unnamed on
    ``$JS.API.CONSUMER.CREATE.<stream>``) starts under every role's own key wherever the table
    lets it read a stream. The dashboards' sign-in limits and the gateway's
    credentials are followed so: refused, a service's start timed out (seen as
    `foto3d serve catalog` with HTTP, and `serve token_gateway`, under their own keys)."""
    failed = []
    for role_name in WORKERS:
        role = sample(role_name, "")
        # Its readers' grants (``_stream_api``), not provisioning's (which every service has); a
        # work queue is only pulled from (the server refuses to follow one).
        streams = [
            s
            for s in assemble().streams
            if may_publish(role, f"$JS.API.CONSUMER.MSG.NEXT.{s.name}.x")
            and s.retention != RetentionPolicy.WORK_QUEUE
        ]
        if not streams:
            continue
        b = await connect(
            [nats_server.client_url], f"follow-{role_name}", creds=creds_for(role_name), js_timeout=2.0
        )
        try:
            for stream in streams:
                follower = StreamFollower(b.js, stream.name, stream.subjects[0], _ignore)
                try:
                    await follower.start(1, timeout=10)
                except Exception as exc:
                    failed.append(f"{role_name} following {stream.name}: {exc!r}")
                finally:
                    await follower.stop()
        finally:
            await b.close()
    assert not failed, "\n".join(failed)


def test_a_queue_may_send_its_own_heartbeats() -> None:
    """Each queue instance beats as ``queue`` too (the pending count, a takeover for the
    notifier's alert); refused under the queue's key, those beats never left a deployed queue."""
    assert may_publish(ROLES["queue"], subjects.heartbeat("queue", "vm-1"))


# A trainer runs without HTTP wherever it is deployed (`serve trainer --no-http`).
@pytest.mark.parametrize("service", [e.name for e in SERVICES if e.name != "trainer"])
def test_a_services_dashboard_may_ship_its_sign_in_log(service: str) -> None:
    """Every service's HTTP port (`foto3d serve NAME`) serves the dashboard's sign-in, whose log
    goes out as records of source kind ``signin``; refused, a deployed dashboard kept them and
    retried for ever (seen with the catalog under its own key)."""
    role = ROLES[service_role(service)]
    assert may_publish(role, subjects.logs(SIGN_IN_SOURCE_KIND, "dashboard.0cf5c577"))
