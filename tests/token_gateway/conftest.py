from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from foto3d.libs.bus.connection import Bus
from foto3d.libs.config import Settings
from testkit.running import running_services
from tests.token_gateway.helpers import Gateway


@pytest.fixture
async def gateway(settings: Settings, bus: Bus) -> AsyncIterator[Gateway]:
    settings.raw["token_gateway"] = {
        "port": 0,
        "test_origins": ["https://staging.example.com"],
        "ban_after_failures": 10,
    }
    async with running_services(settings, ["token_gateway"], http=True) as rt:
        yield Gateway(rt=rt, bus=bus, published=settings.data_dir / "published")
