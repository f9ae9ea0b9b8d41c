"""A trained job's metrics as a reviewer reads them: words for names, units for values.

The trainer reports flat floats (``bytes_ply 237500.0``, ``reduced 1.0``, ``gaussians_raw``);
printed as they are they read ``bytes ply 2.375e+05`` and ``reduced 1``. Each known metric has a
label and a formatter here; unknown ones keep their name (underscores as spaces) with the number
rounded, so a new metric still shows, legibly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# Metrics the review shows (the rest, e.g. step timings, are on the job's page).
SHOWN_PREFIXES = ("gaussians", "bytes", "psnr", "ssim", "lpips", "quality", "reduced")


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.0f} B"


def _count(v: float) -> str:
    return f"{v:,.0f}"


def _db(v: float) -> str:
    return f"{v:.1f} dB"


def _ratio(v: float) -> str:
    return f"{v:.3f}"


def _yes_no(v: float) -> str:
    return "yes" if v else "no"


_KNOWN: dict[str, tuple[str, Callable[[float], str]]] = {
    "gaussians_raw": ("Gaussians as trained", _count),
    "gaussians_before": ("Gaussians as trained", _count),
    "gaussians": ("Gaussians after reduction", _count),
    "gaussians_after": ("Gaussians after reduction", _count),
    "reduced": ("Reduced", _yes_no),
    "reduced_psnr": ("Reduced copy against the full one: PSNR", _db),
    "reduced_ssim": ("Reduced copy against the full one: SSIM", _ratio),
    "psnr": ("PSNR on held-out photos", _db),
    "ssim": ("SSIM on held-out photos", _ratio),
    "lpips": ("LPIPS on held-out photos (lower is better)", _ratio),
    "bytes_raw_ply": ("Size as trained (.ply)", fmt_bytes),
}


def _format_name(suffix: str) -> str:
    """``compressed_ply`` -> ``compressed .ply``; ``spz`` -> ``.spz``."""
    words = suffix.split("_")
    return " ".join([*words[:-1], "." + words[-1]])


def figure(name: str, value: Any) -> tuple[str, str]:
    """(label, value text) for one metric."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return name.replace("_", " ").capitalize(), str(value)
    v = float(value)
    if name in _KNOWN:
        label, fmt = _KNOWN[name]
        return label, fmt(v)
    if name.startswith("bytes_"):
        return f"Size, {_format_name(name.removeprefix('bytes_'))}", fmt_bytes(v)
    if name.startswith("gaussians"):
        return name.replace("_", " ").capitalize(), _count(v)
    text = _count(v) if v.is_integer() else f"{v:,.4g}"
    return name.replace("_", " ").capitalize(), text


def rows(metrics: dict[str, Any]) -> list[tuple[str, str]]:
    """The review's figures, labelled, in a stable order (counts, sizes, then quality)."""
    order = {
        p: i for i, p in enumerate(("gaussians", "reduced", "bytes", "psnr", "ssim", "lpips", "quality"))
    }

    def key(name: str) -> tuple[int, str]:
        return next((i for p, i in order.items() if name.startswith(p)), len(order)), name

    return [figure(k, metrics[k]) for k in sorted(metrics, key=key) if k.startswith(SHOWN_PREFIXES)]
