"""What the viewer's canvas shows, read back in the page as an (H, W, 3) uint8 array (tests and
benchmarks alike)."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import numpy.typing as npt

_READBACK = """() => {
  const el = document.querySelector('foto3d-viewer');
  const src = el.shadowRoot.querySelector('canvas');
  el.renderNow();  // the drawing buffer is only valid in the task that drew it
  const c = document.createElement('canvas');
  c.width = src.width; c.height = src.height;
  const ctx = c.getContext('2d');
  ctx.drawImage(src, 0, 0);
  const data = ctx.getImageData(0, 0, c.width, c.height).data;
  let s = '';
  for (let i = 0; i < data.length; i += 0x8000) s += String.fromCharCode.apply(null, data.subarray(i, i + 0x8000));
  return [c.width, c.height, btoa(s)];
}"""


async def canvas_rgb(page: Any) -> npt.NDArray[np.uint8]:
    w, h, b64 = await page.evaluate(_READBACK)
    rgba = np.frombuffer(base64.b64decode(b64), np.uint8).reshape(h, w, 4)
    return rgba[:, :, :3].copy()
