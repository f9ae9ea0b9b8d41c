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


# -- what a person would notice: errors, failed requests, sideways scroll, missing glyphs ------

#: Every character outside ASCII in the visible text of the document and its open shadow roots,
#: drawn in the font its element uses, compared with a codepoint no font has (U+10FFFD): one
#: that draws the same pixels is a missing-glyph box. Returns {"missing": [...], "checked": n,
#: "reference_ink": pixels} (no ink in the reference would make the comparison meaningless).
MISSING_GLYPHS = """(extra) => {
  const seen = new Map();
  const visit = (root, host) => {
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_ELEMENT | NodeFilter.SHOW_TEXT);
    for (let n = walker.currentNode; n; n = walker.nextNode()) {
      if (n.nodeType === Node.ELEMENT_NODE) {
        if (n.shadowRoot) visit(n.shadowRoot, `${n.tagName.toLowerCase()} shadow `);
        continue;
      }
      const el = n.parentElement;
      if (!el || !el.checkVisibility({visibilityProperty: true})) continue;
      for (const ch of n.data) if (ch.codePointAt(0) > 0x7e && !/\\s/.test(ch) && !seen.has(ch)) seen.set(ch, [el, host]);
    }
  };
  visit(document.body, "");
  for (const ch of extra || []) seen.set(ch, [document.body, ""]);
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = 48;
  const ctx = canvas.getContext("2d", {willReadFrequently: true});
  const draw = (ch, family) => {
    ctx.clearRect(0, 0, 48, 48);
    ctx.font = `32px ${family}`;
    ctx.fillStyle = "#000";
    ctx.fillText(ch, 4, 36);
    return ctx.getImageData(0, 0, 48, 48).data;
  };
  const same = (a, b) => a.every((v, i) => v === b[i]);
  const missing = [];
  let referenceInk = draw("\\u{10FFFD}", getComputedStyle(document.body).fontFamily)
    .filter((v, i) => i % 4 === 3 && v > 0).length;
  for (const [ch, [el, host]] of seen) {
    const family = getComputedStyle(el).fontFamily;
    const box = draw("\\u{10FFFD}", family);
    referenceInk = Math.max(referenceInk, box.filter((v, i) => i % 4 === 3 && v > 0).length);
    if (same(draw(ch, family), box)) {
      missing.push(`U+${ch.codePointAt(0).toString(16).toUpperCase().padStart(4, "0")} in ${host}<${el.tagName.toLowerCase()}>`);
    }
  }
  return {missing, checked: seen.size, reference_ink: referenceInk};
}"""

#: Width beyond the viewport (0 when nothing scrolls sideways).
SIDEWAYS = "() => Math.max(document.documentElement.scrollWidth, document.body.scrollWidth) - innerWidth"


class PageWatch:
    """Console errors and failed requests of a page (its frames included), by step, so a test can
    fail on any of them and name the step; ``expect`` lets one step allow what it provokes."""

    def __init__(self, page: Any) -> None:
        self.step = "start"
        self.problems: list[tuple[str, str]] = []
        self._allowed: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self._add(f"page error: {exc}"))
        page.on("requestfailed", lambda r: self._add(f"request failed: {r.method} {r.url} ({r.failure})"))
        page.on("response", self._response)
        self.open: dict[Any, str] = {}
        page.on("request", lambda r: self.open.__setitem__(r, f"{r.method} {r.url}"))
        page.on("requestfinished", lambda r: self.open.pop(r, None))
        page.on("requestfailed", lambda r: self.open.pop(r, None))

    def at(self, step: str, allow: tuple[str, ...] = ()) -> None:
        self.step = step
        self._allowed = list(allow)

    def _add(self, text: str) -> None:
        if not any(a in text for a in self._allowed):
            self.problems.append((self.step, text))

    def _console(self, msg: Any) -> None:
        if msg.type == "error":
            self._add(f"console error: {msg.text}")

    def _response(self, resp: Any) -> None:
        if resp.status >= 400:
            self._add(f"HTTP {resp.status}: {resp.request.method} {resp.url}")
