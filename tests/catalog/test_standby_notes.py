"""Capture notes' photos outlive the disk that took them: they live in the ``catalog-notes``
bucket, and the notes themselves are events every instance folds.

A note with a photo taken through the leader is listed and its photo served byte for byte
by the standby (which never had the file), and the other way round; after a kill -9 of the
leader and the loss of its database and notes folder, ``foto3d objects rebuild --replace``
brings the notes and their photos back.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

from foto3d.libs.bus.connection import Bus
from foto3d.libs.nats_server import NatsServer
from testkit.waiting import eventually
from tests.catalog.test_standby import CUSTOMER, Instance, post, rows
from tests.catalog.test_standby_refs import leader_and_standby, lose_the_leader, rebuild_replacing

# PNG signatures, then bytes no other test uses: a wrong or truncated file cannot match.
PHOTO_A = b"\x89PNG\r\n\x1a\n" + os.urandom(150_000)
PHOTO_B = b"\x89PNG\r\n\x1a\n" + os.urandom(120_000)


async def note(inst: Instance, object_id: str, text: str, photo: bytes) -> dict[str, Any]:
    body = {
        "text": text,
        "tags": ["finish:glossy"],
        "photos": [{"name": "setup.png", "b64": base64.b64encode(photo).decode()}],
    }
    status, row = await post(inst, f"/api/objects/{object_id}/notes", body)
    assert status == 201, row
    assert isinstance(row, dict)
    return row


async def get(inst: Instance, path: str) -> tuple[int, bytes]:
    assert inst.session is not None
    async with inst.session.get(path) as r:
        return r.status, await r.read()


async def texts_are(inst: Instance, object_id: str, *want: str) -> bool:
    """Whether ``inst`` lists exactly these notes of the object (a 404 until it has folded
    the object's registration)."""
    status, body = await get(inst, f"/api/objects/{object_id}/notes")
    return status == 200 and sorted(n["text"] for n in json.loads(body)) == sorted(want)


async def test_a_note_photo_taken_by_either_instance_is_served_by_the_other_and_rebuilt(
    tmp_path: Path, nats_server: NatsServer, bus: Bus
) -> None:
    async with leader_and_standby(tmp_path, nats_server.client_url, bus) as (a, b):
        status, obj = await post(a, "/api/objects", {"customer": CUSTOMER, "display_name": "Vase"})
        assert status == 201, obj
        oid = obj["object_id"]
        by_a = await note(a, oid, "glaze reflected the softboxes", PHOTO_A)
        name_a = f"{by_a['note_id']}-0.png"
        assert (a.data / "catalog" / "notes" / name_a).read_bytes() == PHOTO_A

        # The standby never had the file: it lists the note (folded from the object events)
        # and reads the photo from the bucket.
        assert not (b.data / "catalog" / "notes" / name_a).exists()
        await eventually(lambda: texts_are(b, oid, by_a["text"]), what="the note on the standby", timeout=60)
        assert await get(b, by_a["photos"][0]) == (200, PHOTO_A)
        assert (b.data / "catalog" / "notes" / name_a).read_bytes() == PHOTO_A

        # A note taken on the standby is the leader's too.
        by_b = await note(b, oid, "polarising filter fixed it", PHOTO_B)
        await eventually(
            lambda: texts_are(a, oid, by_a["text"], by_b["text"]),
            what="the standby's note on the leader",
            timeout=60,
        )
        assert await get(a, by_b["photos"][0]) == (200, PHOTO_B)

        lose_the_leader(a, b, "notes")

    out = await rebuild_replacing(nats_server.client_url, a.data)
    assert "1 objects" in out and "missing" not in out, out
    for row, photo in ((by_a, PHOTO_A), (by_b, PHOTO_B)):
        assert (a.data / "catalog" / "notes" / f"{row['note_id']}-0.png").read_bytes() == photo
    noted = rows(a.db(), "SELECT note_id, text, photos FROM notes ORDER BY id")
    assert [(r[0], r[1]) for r in noted] == [(by_a["note_id"], by_a["text"]), (by_b["note_id"], by_b["text"])]
