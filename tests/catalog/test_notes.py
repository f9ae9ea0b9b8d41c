"""Capture notes: written on the dashboard and the CLI, recorded as object events (attributed,
in the timeline, rebuilt from the stream), tags from a vocabulary that grows on purpose,
photos kept by the catalog; found by search and by similar objects."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import msgspec
import pytest

from foto3d.cli.main import main
from foto3d.libs.bus.connection import Bus
from foto3d.libs.config import Settings
from foto3d.libs.viewer.png import encode_png
from foto3d.proto import subjects
from foto3d.proto.objects import ObjectNoted, ObjectStreamEvent
from foto3d.services.catalog import notes
from foto3d.services.catalog.store import CatalogStore
from testkit.running import running_services
from tests.catalog.helpers import call, signed_in


def _png() -> bytes:
    import numpy as np

    return encode_png(np.full((8, 8, 3), 200, np.uint8))


async def _stream_events(bus: Bus) -> list[Any]:
    """Every event in OBJECT_EVENTS, in stream order (what a rebuild replays)."""
    info = await bus.js.stream_info(subjects.OBJECT_EVENTS_STREAM)
    decoder = msgspec.json.Decoder(ObjectStreamEvent)
    out = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await bus.js.get_msg(subjects.OBJECT_EVENTS_STREAM, seq)
        assert msg.data is not None
        out.append(decoder.decode(msg.data))
    return out


async def test_notes_are_attributed_events_found_by_search_and_by_similar_objects(
    settings: Settings, bus: Bus, tmp_path: Path
) -> None:
    async with running_services(settings, ["catalog"]) as rt:
        s = await signed_in(rt, settings, "maria")
        async with s:
            for slug in ("acme", "globex"):
                assert (await call(s, "POST", "/api/customers", {"slug": slug}))[0] == 201
            ids = {}
            for cust, name in (
                ("acme", "Blue vase"),
                ("acme", "Oak chair"),
                ("globex", "Green vase"),
                ("acme", "Red vase"),
            ):
                st, o = await call(s, "POST", "/api/objects", {"customer": cust, "display_name": name})
                assert st == 201
                ids[name] = o["object_id"]
            blue, chair, green, red = ids["Blue vase"], ids["Oak chair"], ids["Green vase"], ids["Red vase"]

            # A value nobody used yet is refused (with the near miss) unless the writer says it is new.
            st, body = await call(
                s, "POST", f"/api/objects/{blue}/notes", {"text": "x", "tags": "finish:glosy"}
            )
            assert st == 400 and "finish:glossy" in body["error"], body
            st, body = await call(s, "POST", f"/api/objects/{blue}/notes", {"tags": ["colour:blue"]})
            assert st == 400 and "unknown facet 'colour'" in body["error"]
            st, body = await call(s, "POST", f"/api/objects/{blue}/notes", {"text": " "})
            assert st == 400 and "needs text, tags or a photo" in body["error"]

            photo = _png()
            st, note = await call(
                s,
                "POST",
                f"/api/objects/{blue}/notes",
                {
                    "text": "Glaze reflected the softboxes; raised it 10 cm and used cross-polarised light.",
                    "tags": "shape:tall, Material:Ceramic, finish:glossy, problem:reflections, fix:glaze-tape",
                    "new_tags": True,
                    "photos": [{"name": "setup.png", "b64": base64.b64encode(photo).decode()}],
                },
            )
            assert st == 201, note
            assert note["actor"] == "maria" and note["customer"] == "acme"
            assert "material:ceramic" in note["tags"] and "fix:glaze-tape" in note["tags"]
            # the new value joined the vocabulary: next time it needs no confirmation
            st, vocab = await call(s, "GET", "/api/note-tags")
            assert "glaze-tape" in vocab["fix"] and "glass" in vocab["material"]
            async with s.get(note["photos"][0]) as r:
                assert r.status == 200 and await r.read() == photo

            # in the object's timeline, attributed
            st, timeline = await call(s, "GET", f"/api/objects/{blue}/timeline")
            noted = [e for e in timeline if e["kind"] == "note"]
            assert len(noted) == 1 and noted[0]["actor"] == "maria"
            assert "problem:reflections" in noted[0]["summary"] and "(1 photo)" in noted[0]["summary"]

            st, _ = await call(
                s, "POST", f"/api/objects/{green}/notes",
                {"text": "Matte paint, no trouble at all.", "tags": ["shape:tall", "material:ceramic", "finish:matte"]},
            )  # fmt: skip
            assert st == 201
            st, _ = await call(
                s,
                "POST",
                f"/api/objects/{chair}/notes",
                {"text": "Legs need markers", "tags": ["material:wood", "fix:markers"]},
            )
            assert st == 201

            # full text and tags
            st, found = await call(s, "GET", "/api/notes?q=softbox*")
            assert [n["object_id"] for n in found] == [blue]
            st, found = await call(s, "GET", "/api/notes?tag=material:ceramic")
            assert {n["object_id"] for n in found} == {blue, green}
            st, found = await call(s, "GET", "/api/notes?tag=material:ceramic&tag=finish:matte")
            assert [n["object_id"] for n in found] == [green]
            st, found = await call(s, "GET", "/api/notes?q=ceramic&customer=globex")
            assert [n["object_id"] for n in found] == [green]  # a word in the tags counts too
            st, found = await call(s, "GET", '/api/notes?q=" OR (')
            assert st == 200 and found == []  # query syntax in what a person typed is just text

            # A new object of the same customer, untagged: its customer's lessons.
            st, rel = await call(s, "GET", f"/api/objects/{red}/notes/related")
            assert {n["object_id"] for n in rel} == {blue, chair}
            # Tagged like the vases: notes sharing most tags first, then the same customer's.
            st, _ = await call(
                s,
                "POST",
                f"/api/objects/{red}/notes",
                {"tags": ["shape:tall", "material:ceramic", "finish:matte"]},
            )
            st, rel = await call(s, "GET", f"/api/objects/{red}/notes/related")
            assert [n["object_id"] for n in rel] == [green, blue, chair]
            assert rel[0]["shared_tags"] == ["shape:tall", "material:ceramic", "finish:matte"]

            # The object page shows them; the search page finds them.
            async with s.get(f"/objects/{red}") as r:
                page = await r.text()
            assert "Lessons from similar objects" in page and "Matte paint, no trouble" in page
            assert page.index("Lessons from similar objects") < page.index("Notes on this object")
            async with s.get("/notes?q=markers") as r:
                page = await r.text()
            assert r.status == 200 and "Legs need markers" in page and "Glaze reflected" not in page

            # A replay of the stream into an empty store gives the same notes.
            events = await _stream_events(bus)
            assert sum(isinstance(e, ObjectNoted) for e in events) == 4
            rebuilt = await CatalogStore(tmp_path / "rebuilt.db").open()
            try:
                await rebuilt.ingest(events)
                await rebuilt.ingest(events)  # twice: still once each
                st, live = await call(s, "GET", "/api/notes?limit=100")
                again = await notes.search(rebuilt.db, limit=100)
                assert again == live
                assert await notes.related(rebuilt.db, red, "acme") == rel
            finally:
                await rebuilt.close()


async def test_a_failed_or_rejected_object_asks_for_a_note(settings: Settings, bus: Bus) -> None:
    from foto3d.proto.jobs import JobDead, JobQueued, Priority, TrainOptions

    async with running_services(settings, ["catalog"]) as rt:
        s = await signed_in(rt, settings)
        async with s:
            await call(s, "POST", "/api/customers", {"slug": "acme"})
            _, o = await call(s, "POST", "/api/objects", {"customer": "acme", "display_name": "Lamp"})
            oid = o["object_id"]
            async with s.get(f"/objects/{oid}") as r:
                assert "suggest-note" not in await r.text()
            import time

            t = time.time()
            subject = subjects.job_events("j-1")
            await bus.publish(subject, JobQueued(job_id="j-1", object_id=oid, ts=t, dataset="/d", priority=Priority.NORMAL, options=TrainOptions()))  # fmt: skip
            await bus.publish(
                subject, JobDead(job_id="j-1", object_id=oid, ts=t + 1, error="COLMAP found no poses")
            )

            from testkit.waiting import eventually

            async def failed() -> bool:
                _, row = await call(s, "GET", f"/api/objects/{oid}")
                return bool(row["stage"] == "failed")

            await eventually(failed, "the job's failure recorded")
            async with s.get(f"/objects/{oid}") as r:
                page = await r.text()
            assert "suggest-note" in page and "what did you learn?" in page


async def test_note_commands(settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert settings.nats_urls
    system = ["--nats", settings.nats_urls[0], "--data", str(settings.data_dir)]

    async def cli(*argv: str) -> tuple[int, str, str]:
        code = await asyncio.to_thread(main, [*argv[:2], *system, *argv[2:]])
        out, err = capsys.readouterr()
        return code, out, err

    async with running_services(settings, ["catalog"]):
        assert (await cli("objects", "customer-add", "acme", "--as", "ops"))[0] == 0
        code, out, _ = await cli("objects", "register", "--customer", "acme", "--name", "Glass bowl")
        oid = out.strip()
        photo = tmp_path / "bowl.png"
        photo.write_bytes(_png())
        code, _, err = await cli(
            "objects", "note", oid, "--tag", "material:glas", "--text", "x", "--as", "ops"
        )
        assert code == 2 and "material:glass" in err and "Traceback" not in err
        code, out, err = await cli(
            "objects", "note", oid, "--tag", "material:glass", "--tag", "finish:transparent",
            "--text", "Dulling spray on the rim", "--photo", str(photo), "--as", "ops",
        )  # fmt: skip
        assert code == 0 and f"{oid}: noted note-" in out, err
        code, out, _ = await cli("objects", "notes", "dulling", "--json")
        found = msgspec.json.decode(out)
        assert [n["actor"] for n in found] == ["ops"] and len(found[0]["photos"]) == 1
        code, out, _ = await cli("objects", "notes", "--tag", "material:glass")
        assert code == 0 and "Dulling spray" in out
        code, out, _ = await cli("objects", "timeline", oid)
        assert "note [material:glass finish:transparent]" in out
        code, out, _ = await cli("objects", "note-tags")
        assert code == 0 and out.startswith("shape: ")


async def test_a_note_written_on_the_object_page(settings: Settings, page: Any, tmp_path: Path) -> None:
    """The page's form sends text, typed tags and a photo; after the reload the note is there."""
    from testkit.signin import sign_in_browser

    async with running_services(settings, ["catalog"]) as rt:
        s = await signed_in(rt, settings)
        async with s:
            await call(s, "POST", "/api/customers", {"slug": "acme"})
            _, o = await call(s, "POST", "/api/objects", {"customer": "acme", "display_name": "Glass bowl"})
        oid = o["object_id"]
        await sign_in_browser(page, settings, rt.http_url)
        await page.goto(f"{rt.http_url}/objects/{oid}")
        form = page.locator("form.note-form")
        await form.locator('[name="text"]').fill("Rim needs dulling spray")
        await form.locator('[name="tags"]').fill("material:glass, finish:transparnt")
        photo = tmp_path / "rim.png"
        photo.write_bytes(_png())
        await form.locator('input[name="photos"]').set_input_files(str(photo))
        await form.locator("button").click()
        error = form.locator(".msg.error")
        await error.wait_for()
        assert "finish:transparent" in await error.inner_text()  # the near miss, not saved
        await form.locator('[name="tags"]').fill("material:glass, finish:transparent")
        await form.locator("button").click()
        saved = page.locator(".object-notes li.note")
        await saved.wait_for()
        assert "Rim needs dulling spray" in await saved.inner_text()
        assert await saved.locator("img.note-photo").count() == 1
        assert "material:glass" in (await page.locator(".object-notes .tags").text_content() or "")
