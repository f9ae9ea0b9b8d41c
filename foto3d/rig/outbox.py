"""The rig-local streams (the outbox) and the agent's read position in the datasets.

Everything the rig produces is stored here first, so it is accepted at once whatever
the uplink does. Both streams are work queues: what is still in them has not reached
a site.

* The log stream is sourced by the site in use through one durable consumer whose
  acknowledgements are the site's own flow-control replies (``sourcing.py``): a batch
  leaves the rig once the site has stored it.
* The datasets stream is forwarded by the agent from its cursor: the sequence number
  of the last submission a site acknowledged. The cursor is a small file written after
  the site's ack; a crash between the ack and the write resends a submission, which the
  site drops by its ``Nats-Msg-Id`` (its duplicate window). Forwarded submissions are
  purged from the rig afterwards.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy
from nats.js.errors import NotFoundError

from foto3d.libs.bus.topology import DAY, MiB, StreamSpec
from foto3d.libs.settings import ConfigError
from foto3d.proto.rig import RIG_DATASETS_ALL, RIG_DATASETS_STREAM, RIG_LOGS_STREAM, RIG_LOGS_SUBJECTS
from foto3d.rig.settings import RigSettings


def outbox_streams(settings: RigSettings) -> list[StreamSpec]:
    return [
        StreamSpec(
            RIG_LOGS_STREAM,
            list(RIG_LOGS_SUBJECTS),
            "Log batches of this rig, held until a site has sourced them.",
            retention=RetentionPolicy.WORK_QUEUE,
            max_bytes=settings.logs_max_bytes,
            duplicate_window=600.0,
        ),
        StreamSpec(
            RIG_DATASETS_STREAM,
            [RIG_DATASETS_ALL],
            "Dataset submissions of this rig, held until their files are uploaded and a site has them.",
            retention=RetentionPolicy.WORK_QUEUE,
            max_msg_size=4 * MiB,
            # The request id is the message id: a capture tool's retry is stored once.
            duplicate_window=DAY,
        ),
    ]


async def provision_outbox(js: JetStreamContext, settings: RigSettings) -> None:
    """Create or update the outbox streams, with direct get on (the agent reads by sequence:
    a direct get returns the raw message, not base64 inside JSON, several times cheaper)."""
    for spec in outbox_streams(settings):
        want = spec.config()
        want.allow_direct = True
        try:
            have = await js.stream_info(spec.name)
        except NotFoundError:
            await js.add_stream(want)
            continue
        if have.config.retention != want.retention:
            raise ConfigError(
                f"the rig's stream {spec.name} has {have.config.retention} retention (an older "
                f"foto3d); deliver what it holds, then remove it (`nats stream rm {spec.name}` on the "
                "rig's server) and start `foto3d rig up` again"
            )
        await js.update_stream(want)


class Cursor:
    """The last forwarded sequence of one stream, kept in a file that survives kill -9."""

    def __init__(self, state_dir: Path, stream: str) -> None:
        self.path = state_dir / f"cursor-{stream}.json"
        self.seq = 0
        try:
            self.seq = int(json.loads(self.path.read_text())["seq"])
        except (FileNotFoundError, ValueError, KeyError):
            self.seq = 0

    def reset(self) -> None:
        self.path.unlink(missing_ok=True)
        self.seq = 0

    def save(self, seq: int) -> None:
        if seq <= self.seq and self.path.exists():
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w") as f:
            json.dump({"seq": seq}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        self.seq = seq
