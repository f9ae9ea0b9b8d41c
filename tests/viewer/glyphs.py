"""Finding text that a browser draws as a missing-glyph box ("tofu").

A character none of the page's fonts has is drawn as the fallback font's ``.notdef`` glyph, the
same empty box for every such character. So each character of the page's text (shadow roots
included, hidden elements too: an icon must not depend on fonts wherever it shows) is drawn on a
canvas in its element's font and compared with the drawing of characters no font has (private
use code points): a character drawn exactly like them is a box.
"""

from __future__ import annotations

from typing import Any

_FIND_BOXES = r"""() => {
  const seen = new Map();  // char -> font
  const walk = (root) => {
    const tw = document.createTreeWalker(root, NodeFilter.SHOW_ELEMENT | NodeFilter.SHOW_TEXT);
    for (let n = tw.currentNode; n; n = tw.nextNode()) {
      if (n.nodeType === Node.ELEMENT_NODE) {
        if (n.shadowRoot) walk(n.shadowRoot);
        continue;
      }
      const el = n.parentElement;
      if (!el || ['STYLE', 'SCRIPT'].includes(el.tagName)) continue;
      const s = getComputedStyle(el);
      const font = `${s.fontStyle} ${s.fontWeight} 40px ${s.fontFamily}`;
      for (const ch of n.textContent) if (ch.codePointAt(0) > 0x7e) seen.set(ch + '\u0000' + font, [ch, font]);
    }
  };
  walk(document);
  const c = document.createElement('canvas');
  c.width = 64; c.height = 64;
  const ctx = c.getContext('2d', { willReadFrequently: true });
  const draw = (ch, font) => {
    ctx.clearRect(0, 0, 64, 64);
    ctx.font = font;
    ctx.fillStyle = '#000';
    ctx.textBaseline = 'middle';
    ctx.fillText(ch, 8, 32);
    return ctx.getImageData(0, 0, 64, 64).data.join(',');
  };
  const boxes = [];
  for (const [ch, font] of seen.values()) {
    if (/\s/.test(ch)) continue;
    const missing = ['\uE000', '\u{10FFFD}'].map((m) => draw(m, font));
    if (missing.includes(draw(ch, font))) boxes.push(`U+${ch.codePointAt(0).toString(16).toUpperCase().padStart(4, '0')}`);
  }
  return boxes;
}"""


async def missing_glyphs(page: Any) -> list[str]:
    """Code points (``U+26F6``) of the page's text that are drawn as a missing-glyph box."""
    return list(await page.evaluate(_FIND_BOXES))
