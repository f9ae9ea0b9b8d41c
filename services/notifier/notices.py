"""Staff notices: a mail to one person about their own account (a sign-in from a new address).

They are not alerts (no fingerprint, no repeats, no routes): each notice is one mail to the
address it names, through the same outbox as alerts, so it is retried until delivered and
sent once. Its Message-ID comes from the notice's id, and the outbox's unique Message-ID
makes a redelivered notice a no-op.
"""

from __future__ import annotations

from collections.abc import Mapping
from email.header import Header
from email.mime.text import MIMEText
from email.utils import formatdate

import msgspec

from foto3d.proto.auth import StaffNotice
from foto3d.services.notifier.channels import OutboxChannel, SmtpChannel
from foto3d.services.notifier.compose import _UTF8_QP, MSGID_DOMAIN
from foto3d.services.notifier.store import NewMail

_decoder = msgspec.json.Decoder(StaffNotice)


def decode_notice(data: bytes, _headers: Mapping[str, str]) -> StaffNotice:
    return _decoder.decode(data)


def notice_mail(notice: StaffNotice, sender: str, smtp: bool) -> NewMail:
    message_id = f"<notice-{notice.notice_id}@{MSGID_DOMAIN}>"
    subject = f"[foto3d] {notice.subject}"
    # MIMEText accepts a Charset at runtime; the stubs only know charset names.
    msg = MIMEText(notice.text + "\n\n— foto3d\n", "plain", _UTF8_QP)  # type: ignore[arg-type]
    msg["Subject"] = subject if subject.isascii() else Header(subject, "utf-8").encode()
    msg["From"] = sender
    msg["To"] = notice.to
    msg["Date"] = formatdate(notice.at, localtime=False, usegmt=True)
    msg["Message-ID"] = message_id
    msg["X-Foto3d-Notice"] = notice.user
    channel = SmtpChannel.name if smtp else OutboxChannel.name
    return NewMail(channel, notice.to, message_id, subject, msg.as_bytes())
