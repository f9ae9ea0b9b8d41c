"""`foto3d webhooks …` and `foto3d subscriptions …` against a running catalog."""

from __future__ import annotations

import asyncio

import pytest

from foto3d.cli.main import main
from foto3d.libs.bus.connection import Bus
from foto3d.libs.config import Settings
from foto3d.proto.objects import CUSTOMER_ADD, CustomerAdd
from testkit.running import running_services


async def test_webhook_and_subscription_commands(
    settings: Settings, bus: Bus, capsys: pytest.CaptureFixture[str]
) -> None:
    assert settings.nats_urls
    settings.raw["catalog"] = {"create_admin": False}
    system = ["--nats", settings.nats_urls[0], "--data", str(settings.data_dir)]

    async def cli(*argv: str) -> tuple[int, str, str]:
        code = await asyncio.to_thread(main, [*argv[:2], *system, *argv[2:]])
        out, err = capsys.readouterr()
        return code, out, err

    async with running_services(settings, ["catalog"], http=False):
        await bus.call(CUSTOMER_ADD, CustomerAdd(slug="acme"))
        code, out, _ = await cli("webhooks", "add", "acme", "https://shop.example.com/hooks", "--as", "ops")
        assert code == 0 and "signing secret: whsec_" in out
        endpoint_id = out.split()[0]
        code, out, _ = await cli("webhooks", "list", "--customer", "acme")
        assert code == 0 and endpoint_id in out and "whsec_" not in out
        code, _, err = await cli("webhooks", "add", "nobody", "https://x.example.com/h")
        assert code != 0 and "unknown customer 'nobody'" in err and "Traceback" not in err
        code, _, err = await cli("webhooks", "add", "acme", "ftp://x")
        assert code != 0 and "bad request" in err
        code, out, _ = await cli("webhooks", "deliveries")
        assert code == 0 and "no deliveries" in out

        code, out, _ = await cli(
            "subscriptions",
            "set",
            "crm-1",
            "acme",
            "--start",
            "2026-01-01",
            "--end",
            "2099-01-01",
            "--revision",
            "5",
        )
        assert code == 0 and out.startswith("created: crm-1") and "active" in out
        code, out, _ = await cli(
            "subscriptions",
            "set",
            "crm-1",
            "acme",
            "--start",
            "2026-01-01",
            "--end",
            "2098-01-01",
            "--revision",
            "4",
        )
        assert code == 0 and out.startswith("stale:") and "2099-01-01" in out
        code, _, err = await cli(
            "subscriptions", "set", "crm-1", "acme", "--start", "soon", "--end", "2099-01-01"
        )
        assert code != 0 and "YYYY-MM-DD" in err
        code, out, _ = await cli("subscriptions", "list")
        assert code == 0 and "crm-1" in out and "rev 5" in out
        code, out, _ = await cli("webhooks", "remove", endpoint_id)
        assert code == 0 and "removed" in out
