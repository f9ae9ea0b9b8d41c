"""What ``foto3d splat info`` reports about a splat file, as a plain JSON-ready dict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from foto3d.libs.splat.model import Splat
from foto3d.libs.splat.validate import check


def _stats(a: np.ndarray) -> dict[str, float]:
    if a.size == 0:
        return {}
    p = np.percentile(a, [1, 50, 99])
    return {
        "min": float(a.min()),
        "p1": float(p[0]),
        "median": float(p[1]),
        "mean": float(a.mean()),
        "p99": float(p[2]),
        "max": float(a.max()),
    }


def describe(splat: Splat, path: Path, fmt: str) -> dict[str, Any]:
    """Counts, bounds, opacity/scale statistics and storage cost of ``splat`` read from ``path``."""
    size = path.stat().st_size
    n = splat.count
    out: dict[str, Any] = {
        "file": str(path),
        "format": fmt,
        "file_bytes": size,
        "count": n,
        "sh_degree": splat.sh_degree,
        "bytes_per_gaussian": (size / n) if n else None,
    }
    if n:
        m = splat.means
        out["bounds"] = {"min": m.min(axis=0).tolist(), "max": m.max(axis=0).tolist()}
        lo, hi = np.percentile(m, [1, 99], axis=0)
        out["robust_bounds"] = {"min": lo.tolist(), "max": hi.tolist(), "percentiles": [1, 99]}
        alpha = splat.activated_opacities()
        out["opacity"] = _stats(alpha)
        out["opacity"]["below_0.05"] = float((alpha < 0.05).mean())
        lin = splat.activated_scales()
        out["scale"] = _stats(lin.max(axis=1))
        out["scale"]["note"] = "largest linear standard deviation per gaussian"
    problems = check(splat).problems()
    out["problems"] = problems
    return out


def _fmt3(v: list[float]) -> str:
    return "(" + ", ".join(f"{x:.3f}" for x in v) + ")"


def render_text(info: dict[str, Any]) -> str:
    """The human-readable form of :func:`describe`'s result."""
    lines = [
        f"file          {info['file']}",
        f"format        {info['format']}",
        f"size          {info['file_bytes']:,} bytes"
        + (f" ({info['bytes_per_gaussian']:.1f} bytes/gaussian)" if info["bytes_per_gaussian"] else ""),
        f"gaussians     {info['count']:,}",
        f"SH degree     {info['sh_degree']}",
    ]
    if info["count"]:
        b, rb = info["bounds"], info["robust_bounds"]
        lines.append(f"bounds        {_fmt3(b['min'])} .. {_fmt3(b['max'])}")
        lines.append(f"robust bounds {_fmt3(rb['min'])} .. {_fmt3(rb['max'])}  (1st-99th percentile)")
        o, s = info["opacity"], info["scale"]
        lines.append(
            f"opacity       min {o['min']:.3f}  median {o['median']:.3f}  mean {o['mean']:.3f}  "
            f"max {o['max']:.3f}  ({o['below_0.05']:.1%} below 0.05)"
        )
        lines.append(
            f"scale (max)   min {s['min']:.3g}  p1 {s['p1']:.3g}  median {s['median']:.3g}  "
            f"p99 {s['p99']:.3g}  max {s['max']:.3g}"
        )
    for p in info["problems"]:
        lines.append(f"warning       {p}")
    return "\n".join(lines)
