"""Read log batches back from the LOGS stream, to check what really arrived."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from foto3d.proto.logs import LogBatch, LogRecord

_dec = msgspec.json.Decoder(LogBatch)


@dataclass
class Stored:
    batches: list[LogBatch]
    msg_ids: list[str]

    def records(self, source_id: str | None = None) -> list[tuple[LogBatch, LogRecord]]:
        return [
            (b, r) for b in self.batches if source_id is None or b.source_id == source_id for r in b.records
        ]

    def seqs(self, source_id: str) -> list[int]:
        return [r.seq for _, r in self.records(source_id)]


async def read_logs(js: JetStreamContext, stream: str = "LOGS") -> Stored:
    info = await js.stream_info(stream)
    out = Stored([], [])
    if info.state.messages == 0:
        return out
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        try:
            msg = await js.get_msg(stream, seq)
        except NotFoundError:
            continue
        out.batches.append(_dec.decode(msg.data or b""))
        out.msg_ids.append((msg.headers or {}).get("Nats-Msg-Id", ""))
    return out


def assert_exactly_once_in_order(seqs: list[int], expected: int) -> None:
    """Every record once (no loss, no duplicate), in strictly increasing seq order."""
    assert len(set(seqs)) == expected, f"{len(set(seqs))} unique of {expected} expected"
    assert len(seqs) == expected, f"{len(seqs) - expected} duplicate(s) stored"
    assert all(a < b for a, b in itertools.pairwise(seqs)), "order per source broken"
