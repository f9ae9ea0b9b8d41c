"""Who may use which subject: one role per kind of participant, written beside the subjects.

Every connection to the bus is someone (an nkey, ``foto3d auth``) of one of these roles,
and may publish and subscribe only where its role says. The table is compiled into the
nats-server's ``authorization`` block (``foto3d.libs.bus.auth``), so a subject added to
``proto`` without a role that may use it fails ``tests/test_permissions.py``.

Patterns use NATS wildcards. ``{id}`` stands for the participant's own id (a rig's or a
trainer's): the compiler writes it out per participant, so a rig may publish only its
own logs and heartbeats. JetStream's API is scoped by stream and consumer
(``$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>``), so a role reaches only the streams it
works on; deleting or purging a stream is no role's job but the embedded ``up``'s.

Roles that answer requests (the services' endpoints) get ``allow_responses``: they may
publish a reply to whoever asked, once, and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from foto3d.proto import analytics, gateway, jobs, logs, notes, objects, subjects, subscriptions, webhooks
from foto3d.proto.api import API_PREFIX, Api
from foto3d.proto.gateway import ACCESS_LOG_SOURCE_KIND
from foto3d.proto.jobs import LEADER_PREFIX
from foto3d.proto.logs import LOG_QUERY
from foto3d.proto.objects import CATALOG_LEADER_PREFIX, publish_progress_subject
from foto3d.proto.rig import RIG_DATASETS_ALL

JS_API = "$JS.API"
INBOX = "_INBOX.>"
# The NATS services framework's discovery subjects (`nats micro ls|info|stats`).
MICRO = "$SRV.>"
LEADER_LEASE_BUCKET = "queue-leader"
# A publish's upload progress (core, not stored): the publisher reports, `foto3d publish` shows.
PUBLISH_PROGRESS_ALL = publish_progress_subject("*")
# The notifier's instances: who delivers (a lease), and what any of them delivered.
NOTIFIER_LEASE_BUCKET = "notifier-leader"
NOTIFIER_SENT_BUCKET = "notifier-sent"
# The catalog's instances: who writes (a lease); standbys forward writes to the holder.
CATALOG_LEASE_BUCKET = "catalog-leader"
# The catalog's reference images, replicated like its streams (object store, catalog only).
CATALOG_REFS_BUCKET = "catalog-refs"
# The capture notes' photos, the same way. Staff knowledge, not a secret: staff may read them.
CATALOG_NOTES_BUCKET = "catalog-notes"
# Streams whose messages hold secrets: the portal's and the staff accounts' (one-time code
# secrets, cookie keys, password hashes) and the catalog's books (webhook signing secrets).
# Only the services that fold them read them.
SECRET_STREAMS = (
    subjects.GATEWAY_PORTAL_STREAM,
    subjects.CATALOG_BOOKS_STREAM,
    subjects.AUTH_ACCOUNTS_STREAM,
)


def _api(group: str) -> str:
    return f"{API_PREFIX}.{group}.>"


def _stream_api(stream: str) -> tuple[str, ...]:
    """What a reader of ``stream`` needs: its info, its consumers, fetching and acking."""
    return (
        f"{JS_API}.STREAM.INFO.{stream}",
        f"{JS_API}.CONSUMER.INFO.{stream}.*",
        f"{JS_API}.CONSUMER.CREATE.{stream}.>",
        # An unnamed ephemeral consumer (nats-py's ordered consumer: libs/bus/follow.py) is
        # created on the bare subject, which ``.>`` does not cover.
        f"{JS_API}.CONSUMER.CREATE.{stream}",
        f"{JS_API}.CONSUMER.DURABLE.CREATE.{stream}.*",
        f"{JS_API}.CONSUMER.DELETE.{stream}.*",
        f"{JS_API}.CONSUMER.MSG.NEXT.{stream}.*",
        f"{JS_API}.STREAM.MSG.GET.{stream}",
        f"{JS_API}.DIRECT.GET.{stream}",
        f"{JS_API}.DIRECT.GET.{stream}.>",
        f"$JS.ACK.{stream}.>",
        f"$JS.FC.{stream}.>",
    )


# Provisioning the declared topology (every service start does it): create and update
# streams and consumers, never delete or purge them.
PROVISION = (
    f"{JS_API}.INFO",
    f"{JS_API}.STREAM.NAMES",
    f"{JS_API}.STREAM.LIST",
    f"{JS_API}.STREAM.INFO.*",
    f"{JS_API}.STREAM.CREATE.*",
    f"{JS_API}.STREAM.UPDATE.*",
    f"{JS_API}.CONSUMER.INFO.*.*",
    f"{JS_API}.CONSUMER.CREATE.*.>",
    f"{JS_API}.CONSUMER.DURABLE.CREATE.*.*",
)


@dataclass(frozen=True)
class Role:
    """What one kind of participant may do on the bus."""

    name: str
    description: str
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    publish_deny: tuple[str, ...] = ()
    # May answer requests made to it (a responder's reply goes to the asker's inbox).
    responds: bool = False
    # One identity per participant (``{id}`` in the patterns), or one for the whole role.
    per_participant: bool = False
    # Client connections, and for a rig its leaf link too.
    leaf: bool = False
    # Management requests it signs are recorded as done by the person it names in them: it
    # signed that person in itself (the dashboard's pages), so the name is its word, not a
    # claim anyone could make (``libs/bus/proof.py``). Other roles' bodies name nobody.
    names_people: bool = False
    # Besides the one shared identity, one per person (`foto3d auth add staff NAME`), whose
    # signed requests are recorded as that person whatever their body says.
    per_person: bool = False
    # Management requests it signs may name only a customer portal account it signed in
    # itself (``portal:<account>``), never staff: the gateway acts for customers, not people.
    names_portal_accounts: bool = False

    def expand(self, participant_id: str) -> Role:
        """The role with ``{id}`` replaced by one participant's id (a subject token)."""
        tok = subjects.token(participant_id)

        def sub(pats: tuple[str, ...]) -> tuple[str, ...]:
            return tuple(p.replace("{id}", tok) for p in pats)

        return Role(
            self.name,
            self.description,
            sub(self.publish),
            sub(self.subscribe),
            sub(self.publish_deny),
            self.responds,
            self.per_participant,
            self.leaf,
            self.names_people,
            self.per_person,
            self.names_portal_accounts,
        )


# What every service does whatever its job: provision, heartbeat, log, answer micro pings;
# (a service that consumes a stream also dead-letters what it cannot handle: DEAD_ALL, in
# its own grants);
# and, since each service's HTTP port serves the dashboard's sign-in, share its sign-in
# limits (AUTH_SIGNIN, followed by every instance), fold and change the staff accounts
# (AUTH_ACCOUNTS) and hand new-address notices to the notifier (AUTH_NOTICES).
_SERVICE_PUB = (
    *PROVISION,
    subjects.heartbeats_of("service"),
    "f3d.logs.service.>",
    subjects.AUTH_SIGNIN_ALL,
    *_stream_api(subjects.AUTH_SIGNIN_STREAM),
    subjects.AUTH_ACCOUNTS_ALL,
    *_stream_api(subjects.AUTH_ACCOUNTS_STREAM),
    subjects.AUTH_NOTICES_ALL,
    # ... and ship its sign-in log (source kind ``signin``, one source per dashboard instance).
    "f3d.logs.signin.*",
)
_SERVICE_SUB = (INBOX, MICRO)


def _service(
    name: str,
    description: str,
    publish: tuple[str, ...],
    subscribe: tuple[str, ...],
    *,
    names_people: bool = False,
    names_portal_accounts: bool = False,
) -> Role:
    return Role(
        name,
        description,
        publish=(*_SERVICE_PUB, *publish),
        subscribe=(*_SERVICE_SUB, *subscribe),
        responds=True,
        names_people=names_people,
        names_portal_accounts=names_portal_accounts,
    )


ROLES: dict[str, Role] = {
    r.name: r
    for r in (
        Role(
            "up",
            "the embedded one-process system (`foto3d up`): every service runs in its process, so "
            "every service's key would be there anyway; it also provisions and repairs the store",
            publish=(">",),
            subscribe=(">",),
            responds=True,
            names_people=True,
        ),
        Role(
            "staff",
            "people: the CLI and the dashboards; call every service's management API, read "
            "logs, heartbeats and the streams' state, ship a command's logs (`foto3d run`); "
            "never delete streams",
            publish=(
                f"{API_PREFIX}.>",
                subjects.LOGS_ALL,
                subjects.AUTH_SIGNIN_ALL,  # `foto3d users unlock`
                # `foto3d users add/passwd/...`: write-only; the stream's messages stay unread.
                subjects.AUTH_ACCOUNTS_ALL,
                f"{JS_API}.INFO",
                f"{JS_API}.STREAM.NAMES",
                f"{JS_API}.STREAM.LIST",
                f"{JS_API}.STREAM.INFO.*",
                f"{JS_API}.CONSUMER.INFO.*.*",
                f"{JS_API}.STREAM.MSG.GET.*",
                f"{JS_API}.DIRECT.GET.>",
                MICRO,
            ),
            # What the CLI reads live: logs (`logs --follow`), heartbeats (`status`) and a
            # publish's progress (`publish`); events and alerts it reads through the services.
            subscribe=(INBOX, subjects.LOGS_ALL, subjects.HEARTBEATS_ALL, PUBLISH_PROGRESS_ALL),
            # Staff read the streams' messages, except those of the streams that hold secrets.
            publish_deny=(
                f"{LEADER_PREFIX}.>",
                f"{CATALOG_LEADER_PREFIX}.>",
                *(
                    denied
                    for stream in SECRET_STREAMS
                    for denied in (
                        f"{JS_API}.STREAM.MSG.GET.{stream}",
                        f"{JS_API}.DIRECT.GET.{stream}",
                        f"{JS_API}.DIRECT.GET.{stream}.>",
                    )
                ),
            ),
            # The shared key (the site host's, in its data folder) names the person the host's
            # login acts as; a personal key (staff-NAME) is that person, whatever it names.
            names_people=True,
            per_person=True,
        ),
        _service(
            "queue",
            "job records and their state machine: takes submissions, feeds the work stream",
            publish=(
                subjects.JOB_EVENTS_ALL,
                subjects.WORK_TRAIN_ALL,
                # Each instance's own beat (jobs waiting, a takeover), beside its service beat.
                subjects.heartbeats_of("queue"),
                subjects.DEAD_ALL,
                f"{LEADER_PREFIX}.>",
                *_stream_api(subjects.SUBMISSIONS_STREAM),
                *_stream_api(subjects.QUEUE_ADVISORIES_STREAM),
                *_stream_api(subjects.JOB_EVENTS_STREAM),
                *_stream_api(subjects.WORK_STREAM),
                f"{JS_API}.STREAM.MSG.DELETE.{subjects.WORK_STREAM}",
                *_stream_api(f"KV_{LEADER_LEASE_BUCKET}"),
                f"$KV.{LEADER_LEASE_BUCKET}.>",
            ),
            subscribe=(_api("jobs"), f"{LEADER_PREFIX}.>", subjects.JOB_EVENTS_ALL),
        ),
        _service(
            "log_collector",
            "stores every log batch; answers log searches",
            publish=(subjects.DEAD_ALL, *_stream_api(subjects.LOGS_STREAM)),
            subscribe=(_api("logs"), subjects.LOGS_ALL),
        ),
        _service(
            "notifier",
            "raises and resolves alerts from logs, job events and heartbeats; sends mail",
            publish=(
                subjects.ALERTS_ALL,
                subjects.DEAD_ALL,
                *_stream_api(subjects.LOGS_STREAM),
                *_stream_api(subjects.JOB_EVENTS_STREAM),
                *_stream_api(subjects.HEARTBEATS_STREAM),
                *_stream_api(subjects.ALERTS_STREAM),
                *_stream_api(subjects.AUTH_NOTICES_STREAM),
                *_stream_api(f"KV_{NOTIFIER_LEASE_BUCKET}"),
                f"$KV.{NOTIFIER_LEASE_BUCKET}.>",
                *_stream_api(f"KV_{NOTIFIER_SENT_BUCKET}"),
                f"$KV.{NOTIFIER_SENT_BUCKET}.>",
                subjects.heartbeats_of("site"),
                # The log lines around a problem, quoted in its mail (``log_context.py``).
                LOG_QUERY.subject,
            ),
            subscribe=(subjects.HEARTBEATS_ALL, subjects.ALERTS_ALL),
        ),
        _service(
            "catalog",
            "objects, approvals and statuses; the only writer of status changes",
            publish=(
                subjects.OBJECT_EVENTS_ALL,
                subjects.DEAD_ALL,
                f"{API_PREFIX}.jobs.submit",
                f"{API_PREFIX}.jobs.get",
                f"{API_PREFIX}.publisher.>",
                subjects.WEBHOOKS_ALL,
                subjects.CATALOG_BOOKS_ALL,
                *_stream_api(subjects.OBJECT_EVENTS_STREAM),
                *_stream_api(subjects.JOB_EVENTS_STREAM),
                *_stream_api(subjects.WEBHOOKS_STREAM),
                *_stream_api(subjects.CATALOG_BOOKS_STREAM),
                f"{CATALOG_LEADER_PREFIX}.>",
                *_stream_api(f"KV_{CATALOG_LEASE_BUCKET}"),
                f"$KV.{CATALOG_LEASE_BUCKET}.>",
                *_stream_api(f"OBJ_{CATALOG_REFS_BUCKET}"),
                # Replacing an image purges its old chunks.
                f"{JS_API}.STREAM.PURGE.OBJ_{CATALOG_REFS_BUCKET}",
                f"$O.{CATALOG_REFS_BUCKET}.>",
                *_stream_api(f"OBJ_{CATALOG_NOTES_BUCKET}"),
                f"$O.{CATALOG_NOTES_BUCKET}.>",
            ),
            subscribe=(
                _api("catalog"),
                _api("subscriptions"),
                _api("webhooks"),
                f"{CATALOG_LEADER_PREFIX}.>",
            ),
            names_people=True,
        ),
        Role(
            "crm",
            "a CRM (or its adapter): sets customers' subscriptions through the subscriptions API "
            "and reads its answers; nothing else",
            publish=(_api("subscriptions"),),
            subscribe=(INBOX,),
            # The CRM signs its own users in; it names who changed a subscription there.
            names_people=True,
        ),
        _service(
            "publisher",
            "uploads approved models; reports publish results as object events",
            publish=(
                subjects.OBJECT_EVENTS_ALL,
                PUBLISH_PROGRESS_ALL,
                *_stream_api(subjects.OBJECT_EVENTS_STREAM),
            ),
            subscribe=(_api("publisher"),),
        ),
        _service(
            "gateway",
            "customer credentials and the viewer's files; follows object statuses",
            publish=(
                subjects.GATEWAY_CREDENTIALS_ALL,
                subjects.GATEWAY_USAGE_ALL,
                subjects.GATEWAY_BANS_ALL,
                subjects.GATEWAY_PORTAL_ALL,
                f"f3d.logs.{ACCESS_LOG_SOURCE_KIND}.>",
                *_stream_api(subjects.GATEWAY_CREDENTIALS_STREAM),
                *_stream_api(subjects.GATEWAY_USAGE_STREAM),
                *_stream_api(subjects.GATEWAY_BANS_STREAM),
                *_stream_api(subjects.GATEWAY_PORTAL_STREAM),
                *_stream_api(subjects.OBJECT_EVENTS_STREAM),
                # The customer portal reads a customer's webhook endpoints and delivery log and
                # adds or removes the signed-in customer's endpoints (the catalog keeps them).
                webhooks.WEBHOOK_LIST.subject,
                webhooks.WEBHOOK_DELIVERIES.subject,
                webhooks.WEBHOOK_ADD.subject,
                webhooks.WEBHOOK_REMOVE.subject,
                # ... and saves the viewer settings a customer may change (background,
                # auto-rotate, poster) as a new version of its own model's settings.
                objects.CUSTOMER_VIEWER.subject,
            ),
            subscribe=(_api("gateway"),),
            # Recorded as the portal account that did it (``portal:<account>``), nobody else.
            names_portal_accounts=True,
        ),
        _service(
            "scaler",
            "starts and stops trainers from the work waiting and the trainers' heartbeats",
            publish=(*_stream_api(subjects.WORK_STREAM),),
            subscribe=(subjects.heartbeats_of("trainer"),),
        ),
        Role(
            "trainer",
            "takes training work and reports on it; cannot submit, publish, read credentials "
            "or change statuses",
            publish=(
                f"{JS_API}.INFO",
                f"{JS_API}.STREAM.INFO.{subjects.WORK_STREAM}",
                f"{JS_API}.CONSUMER.INFO.{subjects.WORK_STREAM}.*",
                f"{JS_API}.CONSUMER.MSG.NEXT.{subjects.WORK_STREAM}.{subjects.TRAINER_VIP_CONSUMER}",
                f"{JS_API}.CONSUMER.MSG.NEXT.{subjects.WORK_STREAM}.{subjects.TRAINER_NORMAL_CONSUMER}",
                f"$JS.ACK.{subjects.WORK_STREAM}.>",
                f"{JS_API}.STREAM.MSG.GET.{subjects.JOB_EVENTS_STREAM}",
                f"{JS_API}.DIRECT.GET.{subjects.JOB_EVENTS_STREAM}.>",
                subjects.JOB_EVENTS_ALL,
                subjects.dead(subjects.WORK_STREAM),
                # A trainer's id is chosen at its start (host and pid unless configured), so
                # its logs and heartbeats are not tied to its key's id; the runtime's service
                # heartbeat names it too.
                "f3d.logs.trainer.*",
                "f3d.logs.service.*",  # the runtime's own WARNING/ERROR records (service_logs)
                subjects.heartbeats_of("trainer"),
                subjects.heartbeats_of("service"),
                subjects.heartbeats_of("job"),  # a running job's own heartbeat
            ),
            subscribe=(INBOX, MICRO, subjects.JOB_EVENTS_ALL),
            responds=True,
            per_participant=True,
        ),
        Role(
            "rig",
            "a capture rig: its own logs, heartbeats and dataset submissions, over its client "
            "connection and its leaf link",
            publish=(
                "f3d.logs.rig.{id}",
                "f3d.hb.rig.{id}",
                "f3d.rig.datasets.{id}",
                subjects.JOB_SUBMIT,
                f"{JS_API}.INFO",
                f"{JS_API}.STREAM.INFO.{subjects.LOGS_STREAM}",
                f"{JS_API}.STREAM.UPDATE.{subjects.LOGS_STREAM}",
                # Over the leaf link: the sourced batches, and the rig server's answers to the
                # site's sourcing requests (JetStream's internal reply subjects).
                "f3d.leaf.{id}.>",
                "$JSC.R.>",
                INBOX,
            ),
            # The site's sourcing requests to the rig's own JetStream domain and its flow
            # control (which acknowledges what the site stored).
            subscribe=(INBOX, "f3d.leaf.{id}.>", "$JS.rig-{id}.API.>", "$JS.FC.>"),
            per_participant=True,
            leaf=True,
        ),
    )
}

# Every subject family in proto, each with an example subject (for the table test) and the
# roles that are meant to produce it and consume it.
STREAM_SUBJECTS: dict[str, str] = {
    subjects.LOGS_ALL: subjects.logs("service", "x"),
    subjects.JOB_EVENTS_ALL: subjects.job_events("j1"),
    subjects.JOB_SUBMIT: subjects.JOB_SUBMIT,
    subjects.WORK_TRAIN_ALL: subjects.work_train("normal"),
    subjects.OBJECT_EVENTS_ALL: subjects.object_events("o1"),
    subjects.HEARTBEATS_ALL: subjects.heartbeat("service", "x"),
    subjects.ALERTS_ALL: subjects.alerts("error"),
    subjects.DEAD_ALL: subjects.dead("work"),
    subjects.GATEWAY_CREDENTIALS_ALL: subjects.gateway_credentials("c1"),
    subjects.GATEWAY_USAGE_ALL: subjects.gateway_usage("i1"),
    subjects.GATEWAY_BANS_ALL: subjects.gateway_bans("i1"),
    subjects.GATEWAY_PORTAL_ALL: subjects.gateway_portal_accounts(),
    RIG_DATASETS_ALL: "f3d.rig.datasets.r1",
    subjects.AUTH_SIGNIN_ALL: subjects.auth_signin("i1"),
    subjects.AUTH_NOTICES_ALL: subjects.auth_notices("i1"),
    subjects.AUTH_ACCOUNTS_ALL: subjects.auth_cookie_key(),
    subjects.WEBHOOKS_ALL: subjects.webhooks("acme"),
    subjects.CATALOG_BOOKS_ALL: subjects.catalog_books("subscription", "s1"),
}


def service_role(service: str) -> str:
    """The role a service (its name in ``foto3d serve NAME``) runs as."""
    return "gateway" if service == "token_gateway" else service


# The modules that declare request/reply endpoints (``Api`` values).
API_MODULES = (analytics, gateway, jobs, logs, notes, objects, subscriptions, webhooks)


def all_apis() -> list[Api[Any, Any]]:
    """Every request/reply endpoint declared in proto."""
    found: dict[str, Api[Any, Any]] = {}
    for mod in API_MODULES:
        for value in vars(mod).values():
            if isinstance(value, Api):
                found[value.subject] = value
    return [found[k] for k in sorted(found)]


def matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: ``*`` one token, ``>`` one or more trailing tokens."""
    pt, st = pattern.split("."), subject.split(".")
    for i, p in enumerate(pt):
        if p == ">":
            return len(st) > i
        if i >= len(st) or (p != "*" and p != st[i]):
            return False
    return len(pt) == len(st)


def may_publish(role: Role, subject: str) -> bool:
    if any(matches(p, subject) for p in role.publish_deny):
        return False
    return any(matches(p, subject) for p in role.publish)


def may_subscribe(role: Role, subject: str) -> bool:
    return any(matches(p, subject) for p in role.subscribe)
