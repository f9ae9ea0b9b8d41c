"""Capture notes: what people learn photographing objects, tagged so the next person finds it.

A note belongs to one object (and through it to the object's customer). It is recorded as an
``object.note/1`` event (:class:`~foto3d.proto.objects.ObjectNoted`) on the object's events
subject, like every other change in the catalog, so it is attributed, shows in the object's
timeline and is rebuilt from the event stream with everything else.

Tags are ``facet:value`` words. The facets are fixed (:data:`FACETS`); each starts with a
short list of values (:data:`STARTER_VALUES`) and grows: a value nobody used yet is refused
unless the writer says it is new (``new_tags``), which keeps "glosy" from becoming a second
"glossy" while letting the vocabulary follow what the studio meets. Every value used in a
recorded note is part of the vocabulary from then on.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from foto3d.proto.api import Api, NoBody
from foto3d.proto.base import Int, Real

FACETS = ("shape", "material", "finish", "size", "lighting", "rig", "problem", "fix")

STARTER_VALUES: dict[str, tuple[str, ...]] = {
    "shape": ("flat", "round", "tall", "thin", "hollow", "complex"),
    "material": ("glass", "metal", "wood", "fabric", "leather", "plastic", "ceramic", "stone", "paper"),
    "finish": ("glossy", "matte", "mirror", "transparent", "translucent", "textured"),
    "size": ("tiny", "small", "medium", "large", "oversize"),
    "lighting": ("softbox", "cross-polarised", "diffuse", "backlit", "ring-light"),
    "rig": ("turntable", "multi-camera", "handheld", "drone"),
    "problem": ("reflections", "floaters", "blur", "holes", "wrong-scale", "low-texture", "moved"),
    "fix": ("raised-placement", "polarising-filter", "dulling-spray", "more-photos", "markers", "masking"),
}

TAG_RE = re.compile(r"^([a-z]+):([a-z0-9][a-z0-9-]{0,39})$")
MAX_TAGS = 20
MAX_TEXT = 8000
MAX_PHOTOS = 6
# All of a note's photos together, as they travel in one request (the bus's 1 MiB payload
# holds this much once base64-encoded, with room for the rest of the note).
MAX_PHOTO_BYTES = 700 * 1024


class TagError(ValueError):
    """A tag that is not ``facet:value`` with a known facet."""


def normalise_tag(raw: str) -> str:
    """``" Material : Glass "`` -> ``"material:glass"``; spaces and underscores become dashes."""
    facet, sep, value = raw.strip().lower().partition(":")
    value = re.sub(r"[\s_]+", "-", value.strip())
    tag = f"{facet.strip()}:{value}"
    m = TAG_RE.match(tag) if sep else None
    if m is None:
        raise TagError(
            f"tag {raw!r} must be facet:value, e.g. material:glass "
            "(value: lowercase letters, digits and dashes, up to 40)"
        )
    if m.group(1) not in FACETS:
        raise TagError(f"tag {raw!r}: unknown facet {m.group(1)!r}; facets are {', '.join(FACETS)}")
    return tag


def starter_tags() -> list[str]:
    return [f"{facet}:{v}" for facet in FACETS for v in STARTER_VALUES[facet]]


class NotePhoto(msgspec.Struct, frozen=True, kw_only=True):
    """A photo sent with a note: its file name (for the type) and its bytes in base64."""

    name: str
    b64: str


class NoteRequest(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Body of ``catalog.note``: write a note about an object."""

    object_id: str
    text: str = ""
    tags: list[str] = msgspec.field(default_factory=list)
    photos: list[NotePhoto] = msgspec.field(default_factory=list)
    # Values not in the vocabulary yet are accepted (and join it) only when this is set.
    new_tags: bool = False
    actor: str = ""


class NotesQuery(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Body of ``catalog.notes``: full-text words (all must occur) and tags (all must be on the note)."""

    q: str = ""
    tags: list[str] = msgspec.field(default_factory=list)
    customer: str | None = None
    object_id: str | None = None
    since: Real | None = None
    limit: Int = 50


class RelatedQuery(msgspec.Struct, frozen=True, kw_only=True):
    """Body of ``catalog.notes-related``: notes of other objects sharing this one's tags or customer."""

    object_id: str
    limit: Int = 20


Row = dict[str, Any]
NOTE: Api[NoteRequest, Row] = Api("catalog", "note", NoteRequest, Row)
NOTES: Api[NotesQuery, list[Row]] = Api("catalog", "notes", NotesQuery, list[Row])
NOTES_RELATED: Api[RelatedQuery, list[Row]] = Api("catalog", "notes-related", RelatedQuery, list[Row])
# {facet: [values…]}: the starter values plus every value used in a recorded note.
NOTE_TAGS: Api[NoBody, dict[str, list[str]]] = Api("catalog", "note-tags", NoBody, dict[str, list[str]])

SCHEMAS = (NotePhoto, NoteRequest, NotesQuery, RelatedQuery)
