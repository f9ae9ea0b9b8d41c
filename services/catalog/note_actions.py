"""Writing a capture note: check its tags against the vocabulary, store its photos, record the event.

The dashboard's object page, ``foto3d objects note`` (over the bus) and any script with a
signed-in session come here; like every change to an object it is published as an event
first (``Catalog.record``) and recorded through the ingest path.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from foto3d.proto.notes import (
    MAX_PHOTO_BYTES,
    MAX_PHOTOS,
    MAX_TAGS,
    MAX_TEXT,
    NotePhoto,
    TagError,
    normalise_tag,
)
from foto3d.proto.objects import ObjectNoted
from foto3d.services.catalog import notes
from foto3d.services.catalog.actions import IMAGE_TYPES, ActionError, Catalog
from foto3d.services.catalog.note_photos import NotePhotos, photo_name

NOTE_ID_RE = r"note-[0-9a-f]{32}"


def photo_url(object_id: str, note_id: str, index: int) -> str:
    return f"/objects/{object_id}/notes/{note_id}/photos/{index}"


class CaptureNotes:
    def __init__(self, catalog: Catalog, photos_dir: Path) -> None:
        self.catalog = catalog
        self.photos = NotePhotos(catalog.bus, photos_dir)

    async def check_tags(self, raw: Sequence[str], new_tags: bool) -> list[str]:
        """The tags normalised, known ones only unless ``new_tags`` (then new values join)."""
        tags: list[str] = []
        for r in raw:
            if not r.strip():
                continue
            try:
                tag = normalise_tag(r)
            except TagError as exc:
                raise ActionError(str(exc)) from None
            if tag not in tags:
                tags.append(tag)
        if len(tags) > MAX_TAGS:
            raise ActionError(f"a note takes at most {MAX_TAGS} tags")
        if new_tags:
            return tags
        vocab = await notes.vocabulary(self.catalog.store.db)
        unknown = [t for t in tags if t.partition(":")[2] not in vocab[t.partition(":")[0]]]
        if unknown:
            hints = []
            for t in unknown:
                facet, _, value = t.partition(":")
                close = difflib.get_close_matches(value, vocab[facet], n=1)
                hints.append(f"{t} (did you mean {facet}:{close[0]}?)" if close else t)
            raise ActionError(
                f"new tag value{'s' if len(unknown) > 1 else ''}: {', '.join(hints)}; "
                "check the spelling, or confirm that the vocabulary should grow (new tags)"
            )
        return tags

    def _decode_photos(self, photos: Sequence[NotePhoto]) -> list[tuple[bytes, str]]:
        if len(photos) > MAX_PHOTOS:
            raise ActionError(f"a note takes at most {MAX_PHOTOS} photos")
        out = []
        for p in photos:
            suffix = Path(p.name or "photo.jpg").suffix.lower()
            if suffix not in IMAGE_TYPES:
                raise ActionError(f"photo {p.name!r} must be one of {', '.join(IMAGE_TYPES)}")
            try:
                data = base64.b64decode(p.b64, validate=True)
            except (binascii.Error, ValueError):
                raise ActionError(f"photo {p.name!r} is not valid base64") from None
            out.append((data, suffix))
        if sum(len(d) for d, _ in out) > MAX_PHOTO_BYTES:
            raise ActionError(f"a note's photos together must stay under {MAX_PHOTO_BYTES // 1024} KiB")
        return out

    async def write(
        self,
        object_id: str,
        text: str,
        tags: Sequence[str],
        photos: Sequence[NotePhoto],
        new_tags: bool,
        actor: str,
    ) -> dict[str, Any]:
        await self.catalog.obj(object_id)
        text = text.strip()
        if any(ord(c) < 32 and c not in "\n\t" for c in text):
            raise ActionError("note text contains control characters")
        if len(text) > MAX_TEXT:
            raise ActionError(f"note text is longer than {MAX_TEXT} characters")
        clean = await self.check_tags(tags, new_tags)
        files = self._decode_photos(photos)
        if not text and not clean and not files:
            raise ActionError("a note needs text, tags or a photo")
        note_id = f"note-{uuid.uuid4().hex}"
        urls = []
        for i, (data, suffix) in enumerate(files):
            # In the replicated bucket before the event that names it is published. A note
            # whose publish then fails leaves its photos there unnamed (its id is never reused).
            try:
                await self.photos.put(photo_name(note_id, i, suffix), data)
            except Exception as exc:
                raise ActionError(
                    f"could not store the note's photo ({exc!r}); nothing changed", 503
                ) from exc
            urls.append(photo_url(object_id, note_id, i))
        event = ObjectNoted(
            event_id=note_id,
            object_id=object_id,
            ts=time.time(),
            actor=actor,
            note_id=note_id,
            text=text,
            tags=clean,
            photos=urls,
        )
        await self.catalog.record(event)
        row = await notes.get(self.catalog.store.db, note_id)
        assert row is not None, "a recorded note is in the store"
        return row

    async def photo_path(self, note_id: str, index: int) -> Path | None:
        """The photo's file here, fetched from the bucket when this instance has none."""
        return await self.photos.path(note_id, index)
