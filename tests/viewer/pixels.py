"""The viewer's canvas in tests: its pixels (read back by `testkit.viewer_canvas`) and the object's mask."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from testkit.viewer_canvas import canvas_rgb

__all__ = ["canvas_rgb", "object_mask"]


def object_mask(
    img: npt.NDArray[np.uint8], background: tuple[int, int, int], tol: int = 40
) -> npt.NDArray[np.bool_]:
    """Pixels that differ clearly from the background colour."""
    diff = np.abs(img.astype(np.int16) - np.array(background, np.int16)).sum(axis=2)
    return np.asarray(diff > tol)
