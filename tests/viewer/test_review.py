"""Review in 3D: the trained splat on the object page before publishing, saved viewer settings
(versioned, attributed, in the timeline) and their use by the next publish."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from foto3d.libs.bus.connection import Bus
from foto3d.libs.config import Settings
from foto3d.libs.splat import write as write_splat
from foto3d.libs.splat.synthetic import synthetic_object
from foto3d.proto.jobs import Artifact
from testkit.running import running_services
from testkit.waiting import eventually
from tests.catalog.helpers import APPROVE, PASSWORD, call, signed_in, train

pytestmark = pytest.mark.timeout(240)


def real_artifacts(folder: Path, gaussians: int = 8000) -> list[Artifact]:
    """A trained job's files as the trainer writes them: the same +Z-up splat as .ply and .spz."""
    folder.mkdir(parents=True, exist_ok=True)
    splat = synthetic_object(gaussians, sh_degree=1, seed=5)
    out = []
    for fmt in ("ply", "spz"):
        p = folder / f"model.{fmt}"
        write_splat(splat, p)
        out.append(
            Artifact(
                kind="splat",
                format=fmt,
                uri=p.as_uri(),
                bytes=p.stat().st_size,
                sha256=hashlib.sha256(p.read_bytes()).hexdigest(),
                gaussians=gaussians,
            )
        )
    return out


async def in_review(s: aiohttp.ClientSession, bus: Bus, tmp_path: Path) -> str:
    await call(s, "POST", "/api/customers", {"slug": "acme", "name": "ACME"})
    _, obj = await call(s, "POST", "/api/objects", {"customer": "acme", "display_name": "Vase"})
    oid = str(obj["object_id"])
    await train(bus, oid, real_artifacts(tmp_path / "job"))

    async def ready() -> bool:
        _, o = await call(s, "GET", f"/api/objects/{oid}")
        return bool(o["stage"] == "in_review")

    await eventually(ready, "training events")
    return oid


async def test_saved_settings_are_versioned_in_the_timeline_and_published(
    settings: Settings, bus: Bus, tmp_path: Path
) -> None:
    async with running_services(settings, ["catalog", "publisher"]) as rt:
        s = await signed_in(rt, settings, "maria")
        async with s:
            oid = await in_review(s, bus, tmp_path)
            st, body = await call(s, "GET", f"/api/objects/{oid}/viewer")
            assert st == 200 and body["latest"] is None

            # bad settings are refused with the reason, and nothing is recorded
            for bad, why in (
                ({"rotation": [0, 0]}, "rotation"),
                ({"limits": {"min_elevation": 120}}, "min_elevation"),
                ({"camera": {"zoom": 2}}, "zoom"),
            ):
                st, body = await call(s, "POST", f"/api/objects/{oid}/viewer", {"settings": bad})
                assert st == 400 and why in body["error"], body
            st, body = await call(s, "POST", f"/api/objects/{oid}/viewer", ["not", "an", "object"])
            assert st == 400

            first = {"rotation": [4.5, 0, -2], "limits": {"min_elevation": 0, "max_elevation": 60}}
            st, body = await call(
                s, "POST", f"/api/objects/{oid}/viewer", {"settings": first, "comment": "level"}
            )
            assert st == 201 and body["version"] == 1
            second = {
                **first,
                "camera": {"azimuth": 90, "elevation": 10, "distance": 1.2},
                "background": "#ffffff",
            }
            st, body = await call(s, "POST", f"/api/objects/{oid}/viewer", {"settings": second})
            assert st == 201 and body["version"] == 2

            st, body = await call(s, "GET", f"/api/objects/{oid}/viewer")
            assert [v["version"] for v in body["versions"]] == [1, 2]
            assert (
                body["latest"]["settings"]["camera"]["azimuth"] == 90 and body["latest"]["actor"] == "maria"
            )
            _, tl = await call(s, "GET", f"/api/objects/{oid}/timeline")
            saved = [e for e in tl if e["kind"] == "viewer"]
            assert [e["summary"] for e in saved] == [
                "viewer settings v1 saved: level",
                "viewer settings v2 saved",
            ]
            assert all(e["actor"] == "maria" for e in saved)

            st, body = await call(s, "POST", f"/api/objects/{oid}/review", APPROVE)
            assert st == 200, body
            st, body = await call(s, "POST", f"/api/objects/{oid}/publish")
            assert st == 200, body
            # customers get files only through the token gateway; read what was published
            key = body["live_url"].split("/published/", 1)[1]
            config = json.loads((settings.data_dir / "published" / key).read_bytes())
            assert config["rotation"] == [4.5, 0, -2]
            assert config["limits"] == {"min_elevation": 0, "max_elevation": 60}
            assert config["camera"] == {"azimuth": 90, "elevation": 10, "distance": 1.2}
            assert config["background"] == "#ffffff"
            ups = {f["format"]: f["up"] for f in config["files"]}
            assert ups == {"ply": "z", "spz": "-z"}  # the trainer's +Z-up data as each file stores it
            assert config["bounds"]["radius"] > 0


async def test_reviewer_levels_sets_the_view_and_saves_in_the_browser(
    settings: Settings, bus: Bus, tmp_path: Path, page: Any
) -> None:
    async with running_services(settings, ["catalog"]) as rt:
        s = await signed_in(rt, settings, "setup")
        async with s:
            oid = await in_review(s, bus, tmp_path)
        await signed_in(rt, settings, "maria")  # creates the user
        await page.goto(f"{rt.http_url}/login?next=/objects/{oid}")
        await page.fill('input[name="username"]', "maria")
        await page.fill('input[name="password"]', PASSWORD)
        await page.click('button[type="submit"]')
        await page.wait_for_url(f"**/objects/{oid}")

        # both copies show, before publishing, in the viewer
        views = page.locator(".review3d foto3d-viewer")
        assert await views.count() == 2
        await page.wait_for_function(
            "() => [...document.querySelectorAll('.review3d foto3d-viewer')].every(v => v.state === 'ready')",
            timeout=120_000,
        )
        captions = await page.locator(".review3d figcaption").all_text_contents()
        assert any("ply" in c and "8,000 gaussians" in c for c in captions), captions
        assert any("spz" in c for c in captions), captions

        # level: the slider turns the object in both viewers at once
        await page.locator('input[name="rot_x"]').fill("10")
        await page.wait_for_function(
            "() => [...document.querySelectorAll('.review3d foto3d-viewer')]"
            ".every(v => JSON.stringify(v.config.rotation) === '[10,0,0]')"
        )
        # orbit the full view a little, take it as the default, save
        full = page.locator('.review3d foto3d-viewer[data-role="full"]')
        bb = await full.bounding_box()
        await page.mouse.move(bb["x"] + bb["width"] / 2, bb["y"] + bb["height"] / 2)
        await page.mouse.down()
        await page.mouse.move(bb["x"] + bb["width"] / 2 + 120, bb["y"] + bb["height"] / 2, steps=6)
        await page.mouse.up()
        await page.click("button.set-view")
        await page.fill('.review-adjust input[name="comment"]', "levelled")
        await page.click("button.save-viewer")
        await page.wait_for_selector(".review3d ol li")
        assert "v1 by maria: levelled" in (await page.text_content(".review3d ol") or "")

        s = await signed_in(rt, settings, "setup")
        async with s:
            _, body = await call(s, "GET", f"/api/objects/{oid}/viewer")
        saved = body["latest"]["settings"]
        assert saved["rotation"] == [10, 0, 0]
        assert abs(saved["camera"]["azimuth"] - 30) > 5, saved  # the dragged view, not the default
        assert "viewer settings v1 saved: levelled" in (await page.text_content(".timeline") or "")
