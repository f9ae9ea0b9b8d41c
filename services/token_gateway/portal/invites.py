"""``foto3d portal invite CUSTOMER EMAIL``: the gateway's bus endpoint that invites a person.

The mail goes through the notifier's mail path for account mails (``auth.notice/1`` on
``f3d.auth.notices.<instance>``, the one the staff sign-in uses for new-address mails): the
notifier delivers it with its retries and its outbox, so the gateway never speaks SMTP. The
link is in the mail only; the reply says when it expires and whether the mail was handed over.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable

from foto3d.libs.auth.users import UserError
from foto3d.libs.bus.connection import Bus
from foto3d.proto import subjects
from foto3d.proto.api import BAD_REQUEST, ServiceError
from foto3d.proto.auth import StaffNotice
from foto3d.proto.gateway import PORTAL_INVITE_HOURS, PortalInviteReply, PortalInviteRequest
from foto3d.services.token_gateway.portal.accounts import PortalAccounts

log = logging.getLogger(__name__)

INVITE_PATH = "/portal/invite/"


def invite_text(customer: str, link: str, hours: float) -> str:
    return (
        f"You are invited to the foto3d customer portal of {customer}: your 3D models, their viewer "
        "keys and embed snippets, and how your visitors use them.\n\n"
        f"Choose your password here (the link works once, for {hours:.0f} hours):\n\n  {link}\n\n"
        "If you did not expect this mail, ignore it: nothing happens without the link."
    )


class Inviter:
    def __init__(
        self, bus: Bus, accounts: PortalAccounts, instance: str, base_url: Callable[[], str]
    ) -> None:
        self.bus = bus
        self.accounts = accounts
        self.instance = instance
        self.base_url = base_url

    async def invite(self, req: PortalInviteRequest) -> PortalInviteReply:
        try:
            member, token, expires = await self.accounts.invite(
                req.customer, req.email, req.actor, PORTAL_INVITE_HOURS
            )
        except UserError as exc:
            raise ServiceError(BAD_REQUEST, str(exc)) from None
        notice = StaffNotice(
            notice_id=uuid.uuid4().hex,
            to=member.email,
            user=member.name,
            subject=f"Your invitation to the {req.customer} customer portal",
            text=invite_text(req.customer, f"{self.base_url()}{INVITE_PATH}{token}", PORTAL_INVITE_HOURS),
            at=time.time(),
        )
        mailed = True
        try:
            await self.bus.publish(subjects.auth_notices(self.instance), notice, deadline=10.0)
        except Exception as exc:  # the account and link stand; a new invite sends a new link
            log.warning("the portal invitation for %s was not handed to the notifier: %r", member.name, exc)
            mailed = False
        log.info("portal invitation for %s (%s) by %s", member.name, req.customer, req.actor or "?")
        return PortalInviteReply(
            account=member.name, customer=member.customer, expires_at=expires, mailed=mailed
        )
