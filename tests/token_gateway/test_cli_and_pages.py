"""`foto3d tokens …` and the staff pages against a running gateway."""

from __future__ import annotations

import asyncio
import re

import aiohttp
import pytest

from foto3d.cli.main import main
from foto3d.libs.bus.connection import Bus
from foto3d.libs.config import Settings
from testkit.running import running_services
from testkit.waiting import eventually
from tests.token_gateway.helpers import ORIGIN, Gateway, get
from tests.token_gateway.test_models import OID, bearer


async def test_tokens_commands(settings: Settings, bus: Bus, capsys: pytest.CaptureFixture[str]) -> None:
    assert settings.nats_urls
    system = ["--nats", settings.nats_urls[0], "--data", str(settings.data_dir)]

    async def cli(*argv: str) -> tuple[int, str, str]:
        code = await asyncio.to_thread(main, [*argv[:2], *system, *argv[2:]])
        out, err = capsys.readouterr()
        return code, out, err

    code, _, err = await cli("tokens", "list")  # nothing running yet
    assert code == 2 and "token gateway does not answer" in err
    settings.raw["token_gateway"] = {"port": 0}
    async with running_services(settings, ["token_gateway"], http=False) as rt:
        gw = Gateway(rt=rt, bus=bus, published=settings.data_dir / "published")
        await gw.publish_model(OID)
        code, out, _ = await cli("tokens", "issue", "acme", "--label", "shop backend", "--as", "ops")
        assert code == 0, out
        token = re.search(r"sk_[0-9a-f]{16}_\S{43}", out)
        assert token and "shown only once" in out
        code, out, err = await cli("tokens", "issue", "acme", "--publishable")
        assert code == 2 and "needs at least one allowed origin" in err
        code, out, err = await cli(
            "tokens", "issue", "acme", "--publishable", "--origin", "https://x.com/path"
        )
        assert code == 2 and "no path" in err
        code, out, _ = await cli(
            "tokens", "issue", "acme", "--publishable", "--origin", ORIGIN, "--model", OID
        )
        assert code == 0 and "pk_" in out
        code, out, _ = await cli("tokens", "list", "--customer", "acme")
        assert code == 0 and "shop backend" in out and token.group(0) not in out
        async with aiohttp.ClientSession() as s:
            assert (await get(s, f"{gw.url}/v1/models/{OID}", headers=bearer(token.group(0))))[0] == 200
            cid = token.group(0).split("_")[1]
            code, out, _ = await cli("tokens", "revoke", cid, "--reason", "rotated")
            assert code == 0 and "revoked" in out
            assert (await get(s, f"{gw.url}/v1/models/{OID}", headers=bearer(token.group(0))))[0] == 401
        code, out, _ = await cli("tokens", "list")
        assert cid not in out
        code, out, _ = await cli("tokens", "list", "--all")
        assert cid in out and "revoked" in out
        code, out, _ = await cli("tokens", "usage", "--customer", "acme", "--json")
        assert code == 0 and '"rows"' in out
        code, _, err = await cli("tokens", "revoke", "0000000000000000")
        assert code == 2 and "no credential" in err


async def test_staff_pages(settings: Settings, bus: Bus) -> None:
    settings.raw["token_gateway"] = {"port": 0}
    settings.raw["auth"] = {"proxy_header": "X-Forwarded-User"}
    staff = {"X-Forwarded-User": "rita"}
    async with running_services(settings, ["token_gateway"]) as rt:
        gw = Gateway(rt=rt, bus=bus, published=settings.data_dir / "published")
        await gw.publish_model(OID)
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{rt.http_url}/customers/access", allow_redirects=False) as r:
                assert r.status == 302  # staff only
            async with s.post(
                f"{rt.http_url}/customers/access/issue",
                headers=staff,
                data={"customer": "acme", "kind": "secret", "label": "web", "expires_in_days": "30"},
            ) as r:
                page = await r.text()
                assert r.status == 200 and r.headers["Cache-Control"] == "no-store"
            token = re.search(r"sk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}", page)
            assert token, page
            st, _, _ = await get(s, f"{gw.url}/v1/models/{OID}", headers=bearer(token.group(0)))
            assert st == 200
            async with s.get(f"{rt.http_url}/customers/access", headers=staff) as r:
                listing = await r.text()
                assert "web" in listing and token.group(0) not in listing and "rita" in listing
            cid = token.group(0).split("_")[1]
            async with s.post(
                f"{rt.http_url}/customers/access/revoke", headers=staff, data={"credential_id": cid}
            ) as r:
                assert r.status == 200 and "revoked" in await r.text()
            assert gw.svc.parts is not None
            await gw.svc.parts.access._flush_usage()

            async def usage_page() -> str:
                async with s.get(f"{rt.http_url}/customers/usage?customer=acme", headers=staff) as r:
                    return await r.text()

            async def usage_shown() -> str | None:
                text = await usage_page()
                return text if OID in text else None

            text = await eventually(usage_shown, "the usage page lists the model")
            assert OID in text and "<td class='num'>1</td>" in text
            # the customer listener serves none of the staff pages, and the dashboard none of the API
            assert (await get(s, f"{gw.url}/customers/access", headers=staff))[0] == 404
            assert (await get(s, f"{rt.http_url}/v1/models/{OID}", headers=bearer(token.group(0))))[0] == 404
