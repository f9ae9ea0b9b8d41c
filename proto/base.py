"""Building blocks shared by every event type."""

from __future__ import annotations

import time
import typing
from collections.abc import Callable, Mapping
from typing import Annotated, Any, TypeVar

import msgspec

T = TypeVar("T")

# Bounds of every number on the wire, so that what decodes can also be stored: JSON readers
# hold integers exactly up to 2**53 (IEEE doubles) and sqlite's INTEGER is signed 64-bit; a
# larger value would pass decoding and then fail deep in a consumer, again on every redelivery.
MAX_SAFE_INT = 2**53 - 1
Count = Annotated[int, msgspec.Meta(ge=0, le=MAX_SAFE_INT)]
"""A non-negative integer (counts, sizes, sequence numbers, versions)."""
Int = Annotated[int, msgspec.Meta(ge=-MAX_SAFE_INT, le=MAX_SAFE_INT)]
"""Any integer that JSON and sqlite both carry exactly."""
Real = Annotated[float, msgspec.Meta(ge=-float(MAX_SAFE_INT), le=float(MAX_SAFE_INT))]
"""A finite number (timestamps, durations); infinities and NaN do not fit JSON."""


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", forbid_unknown_fields=False):
    """Base of every event. Subclasses set ``tag="name/version"``.

    Unknown fields are tolerated so an older reader can decode a newer writer's
    additive changes; removed or retyped fields need a new version tag.
    """


def now() -> float:
    """Wall-clock seconds since the epoch, the timestamp unit of the whole contract."""
    return time.time()


_json_encoder = msgspec.json.Encoder()


def encode(event: msgspec.Struct) -> bytes:
    """JSON-encode an event (readable with ``nats sub``)."""
    return _json_encoder.encode(event)


class DecodeError(ValueError):
    """A payload that does not match the contract; the message says what was wrong."""


def decoder(tp: type[T] | Any) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(tp)


def decode(dec: msgspec.json.Decoder[Any], payload: bytes) -> Any:
    """Decode with a validating decoder, turning msgspec's errors into ``DecodeError``."""
    try:
        return dec.decode(payload)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise DecodeError(str(exc)) from exc


class _Tagged(msgspec.Struct):
    type: str = ""


_tag_decoder = msgspec.json.Decoder(_Tagged)


def tolerant_decoder(tp: Any) -> Callable[[bytes, Mapping[str, str] | None], Any]:
    """Decode ``tp`` (a tagged union of events); an event type outside it is skipped as None.

    A reader that wants a few event types of a stream, or that runs beside a newer writer
    whose new event types it does not know yet, skips those instead of dead-lettering them.
    A message of a listed type that does not validate is still malformed and raises.
    """
    dec = msgspec.json.Decoder(tp)
    members = typing.get_args(tp) or (tp,)
    known = {m.__struct_config__.tag for m in members}

    def decode(data: bytes, _headers: Mapping[str, str] | None = None) -> Any:
        try:
            return dec.decode(data)
        except msgspec.ValidationError:
            if _tag_decoder.decode(data).type not in known:
                return None
            raise

    return decode
