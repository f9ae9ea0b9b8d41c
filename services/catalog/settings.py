"""The catalog's settings: the ``[catalog]`` table of the config file (``instance`` also from the environment)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from foto3d.libs.settings import Env, Table
from foto3d.proto.rules import HostName

DAY = 86_400.0


class SubscriptionSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    notice_days: Annotated[
        float, Meta(ge=0, description="days before a subscription's end that staff get the 'ends soon' mail")
    ] = 7.0
    mail_to: Annotated[
        list[str],
        Meta(description="staff addresses for subscription mails (ends soon, ended); empty = no mails"),
    ] = msgspec.field(default_factory=list)


class WebhookSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    timeout_s: Annotated[
        float, Meta(gt=0, le=25, description="seconds a customer's endpoint has to answer one delivery")
    ] = 10.0
    retry_initial_s: Annotated[float, Meta(gt=0, description="delay before the first retry; doubles")] = 5.0
    retry_max_s: Annotated[float, Meta(gt=0, description="the longest delay between two tries")] = 600.0
    give_up_after_s: Annotated[
        float, Meta(gt=0, description="a delivery not accepted this long after it was made is dropped")
    ] = 3 * DAY
    concurrency: Annotated[int, Meta(ge=1, le=256, description="deliveries in flight at once")] = 8


class CatalogSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    publish_timeout_s: Annotated[
        float, Meta(description="how long a publish request waits for the publisher")
    ] = 1800.0
    stuck_after_s: Annotated[
        dict[str, float],
        Meta(description="seconds an object may sit in each stage before the board calls it stuck"),
    ] = msgspec.field(
        default_factory=lambda: {
            "registered": 7 * DAY,
            "captured": 1 * DAY,
            "submitted": 2 * 3600.0,
            "training": 12 * 3600.0,
            "failed": 3600.0,
            "in_review": 2 * DAY,
            "rejected": 2 * DAY,
            "approved": 1 * DAY,
        }
    )
    subscriptions: Annotated[
        SubscriptionSettings, Meta(description="customer subscriptions that end by themselves")
    ] = msgspec.field(default_factory=SubscriptionSettings)
    webhooks: Annotated[WebhookSettings, Meta(description="webhooks to customers' endpoints")] = (
        msgspec.field(default_factory=WebhookSettings)
    )
    instance: Annotated[
        HostName | None,
        Meta(
            description="this instance's name where several catalogs run (a warm standby per site): each "
            "reads the event streams through its own consumers and the lease holder writes; unset = the "
            "only instance"
        ),
        Env("FOTO3D_CATALOG_INSTANCE"),
    ] = None
    create_admin: Annotated[
        bool, Meta(description="on first start, create the staff user `admin` and print its password")
    ] = True


SETTINGS = Table("catalog", CatalogSettings, "the catalog", docs="catalog.md")
