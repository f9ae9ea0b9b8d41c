"""Review in 3D: the trained splat on the object page before publishing, saved viewer settings
(versioned, attributed, in the timeline) and their use by the next publish."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest

from foto3d.libs.bus.connection import Bus
from foto3d.libs.config import Settings
from foto3d.libs.splat import write as write_splat
from foto3d.libs.splat.synthetic import synthetic_object
from foto3d.proto.jobs import UNREDUCED_KIND, Artifact
from testkit.running import running_services
from testkit.servers import MotoServer
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


async def in_review(
    s: aiohttp.ClientSession,
    bus: Bus,
    tmp_path: Path,
    artifacts: list[Artifact] | None = None,
    metrics: dict[str, float] | None = None,
    job_id: str | None = None,
) -> str:
    await call(s, "POST", "/api/customers", {"slug": "acme", "name": "ACME"})
    _, obj = await call(s, "POST", "/api/objects", {"customer": "acme", "display_name": "Vase"})
    oid = str(obj["object_id"])
    await train(bus, oid, artifacts or real_artifacts(tmp_path / "job"), job_id=job_id, metrics=metrics)

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
        opening = float(await full.evaluate("v => v.currentView().azimuth"))
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
        turned = (saved["camera"]["azimuth"] - opening + 180) % 360 - 180
        assert abs(turned) > 5, (opening, saved)  # the dragged view, not the opening one
        assert "viewer settings v1 saved: levelled" in (await page.text_content(".timeline") or "")


async def test_review_shows_the_unreduced_export_beside_the_delivery_copy_from_s3(
    settings: Settings, bus: Bus, tmp_path: Path, moto: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trainer keeps the export as trained (here in S3) and measures what reduction cost; the
    reviewer sees both files with sizes and that figure, served through the dashboard, checked
    against the recorded SHA-256 and cached, so S3 needs no CORS rule and no browser credentials."""
    monkeypatch.setenv("FOTO3D_S3_ENDPOINT_URL", moto.url)
    s3 = moto.client()
    s3.create_bucket(Bucket="trained")
    unreduced = tmp_path / "unreduced.ply"
    write_splat(synthetic_object(16000, sh_degree=1, seed=5), unreduced)
    body = unreduced.read_bytes()
    s3.put_object(Bucket="trained", Key="artifacts/j/unreduced.ply", Body=body)
    s3.put_object(Bucket="trained", Key="artifacts/j/edited.ply", Body=body + b"x")
    full = Artifact(
        kind=UNREDUCED_KIND,
        format="ply",
        uri="s3://trained/artifacts/j/unreduced.ply",
        bytes=len(body),
        sha256=hashlib.sha256(body).hexdigest(),
        gaussians=16000,
        up="z",
    )
    reduced = real_artifacts(tmp_path / "job")
    job = "job-unreduced1"
    async with running_services(settings, ["catalog"]) as rt:
        s = await signed_in(rt, settings, "maria")
        async with s:
            oid = await in_review(
                s, bus, tmp_path, [full, *reduced], {"reduced_psnr": 41.234, "reduced_ssim": 0.9912}, job
            )
            async with s.get(f"{rt.http_url}/objects/{oid}") as r:
                page = await r.text()
            spz = next(a for a in reduced if a.format == "spz")
            assert "<b>full, as trained</b> · ply · 16,000 gaussians" in page, page
            ratio = f"{len(body) / spz.bytes:.1f}× smaller"
            assert "<b>delivery</b> · spz · 8,000 gaussians" in page
            assert f"{ratio} · 41.2 dB / SSIM 0.991 against the full one" in page
            assert f'src="/review/{oid}/{job}/files/unreduced"' in page

            url = f"{rt.http_url}/review/{oid}/{job}/files/unreduced"
            async with s.get(url) as r:
                assert r.status == 200 and await r.read() == body
            # served from the dashboard's checked copy: S3 losing the object changes nothing now
            s3.delete_object(Bucket="trained", Key="artifacts/j/unreduced.ply")
            async with s.get(url) as r:
                assert r.status == 200 and await r.read() == body
            async with s.get(f"{rt.http_url}/review/{oid}/{job}/files/sog") as r:
                assert r.status == 404

        # a file changed in the store since training is refused, saying so; nothing is cached
        recorded = hashlib.sha256(body + b"y").hexdigest()  # what training wrote; the store holds other bytes
        edited = msgspec.structs.replace(full, uri="s3://trained/artifacts/j/edited.ply", sha256=recorded)
        s = await signed_in(rt, settings, "maria")
        async with s:
            _, obj = await call(s, "POST", "/api/objects", {"customer": "acme", "display_name": "Jug"})
            oid2 = str(obj["object_id"])
            await train(bus, oid2, [edited], job_id="job-edited1")
            url = f"{rt.http_url}/review/{oid2}/job-edited1/files/unreduced"

            async def listed() -> bool:
                async with s.get(url) as r:
                    return r.status != 404

            await eventually(listed, "the second job")
            async with s.get(url) as r:
                assert r.status == 502 and "changed since training" in await r.text()
        cache = settings.data_dir / "catalog" / "review-cache"
        assert sorted(p.name for p in cache.iterdir()) == [full.sha256]
