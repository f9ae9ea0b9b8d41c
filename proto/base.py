"""Building blocks shared by every event type."""

from __future__ import annotations

import time
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import msgspec

T = TypeVar("T")


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
