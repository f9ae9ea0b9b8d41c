"""Headless Chromium for page tests: Python Playwright driving Debian's chromium.

Playwright's own browser download cannot run here, so we point it at the system
binary. Tests that use the ``page`` fixture are skipped with a clear reason when
no Chromium is installed (``scripts/test-deps.sh`` installs it).
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_CANDIDATES = ("chromium", "chromium-headless-shell", "chromium-browser", "google-chrome")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture
async def page(tmp_path: Path) -> AsyncIterator[Any]:
    """A fresh Playwright page in headless Chromium; console errors fail the test."""
    exe = chromium_path()
    if exe is None:
        pytest.skip("no chromium on PATH (scripts/test-deps.sh installs it)")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.skip("playwright is not installed")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS)
        context = await browser.new_context(viewport={"width": 1280, "height": 860})
        pg = await context.new_page()
        errors: list[str] = []
        pg.on("pageerror", lambda exc: errors.append(str(exc)))
        yield pg
        await context.close()
        await browser.close()
        assert not errors, f"JavaScript errors on the page: {errors}"
