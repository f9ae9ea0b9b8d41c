"""Inline SVG charts for the portal: no script, no framework, readable at any width (the SVG
scales to its box). Days are the x axis; a missing day is a gap in the line, zero in the bars."""

from __future__ import annotations

from foto3d.libs.web.layout import esc

W, H = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 46, 10, 12, 26
COLOURS = {"p50": "#2563eb", "p75": "#f59e0b", "p95": "#dc2626", "views": "#2563eb"}


def _x(i: int, n: int) -> float:
    inner = W - LEFT - RIGHT
    return LEFT + (inner * (i + 0.5) / n if n else 0.0)


def _y(v: float, top: float) -> float:
    inner = H - TOP - BOTTOM
    return TOP + inner * (1 - (v / top if top else 0.0))


def _nice_top(v: float) -> float:
    if v <= 0:
        return 1.0
    step = 10 ** (len(str(int(v))) - 1)
    return float((int(v / step) + 1) * step)


def _frame(days: list[str], top: float, unit: str) -> list[str]:
    parts = []
    for frac in (0.0, 0.5, 1.0):
        y = _y(top * frac, top)
        parts.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e7ee"/>')
        parts.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" fill="#667085">'
            f"{top * frac:.0f}{esc(unit)}</text>"
        )
    n = len(days)
    every = max(1, n // 6)
    for i, d in enumerate(days):
        if i % every == 0 or i == n - 1:
            parts.append(
                f'<text x="{_x(i, n):.1f}" y="{H - 8}" text-anchor="middle" font-size="11" fill="#667085">'
                f"{esc(d[5:])}</text>"
            )
    return parts


def bars(days: list[str], values: list[int], title: str) -> str:
    """One bar per day (views)."""
    top = _nice_top(max(values, default=0))
    n = len(days)
    width = max(1.0, (W - LEFT - RIGHT) / max(n, 1) * 0.7)
    parts = _frame(days, top, "")
    for i, (d, v) in enumerate(zip(days, values, strict=True)):
        y = _y(v, top)
        parts.append(
            f'<rect x="{_x(i, n) - width / 2:.1f}" y="{y:.1f}" width="{width:.1f}" height="{H - BOTTOM - y:.1f}" '
            f'fill="{COLOURS["views"]}" rx="2"><title>{esc(d)}: {v} views</title></rect>'
        )
    return (
        f'<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{esc(title)}">'
        + "".join(parts)
        + "</svg>"
    )


def lines(days: list[str], series: dict[str, list[int | None]], title: str) -> str:
    """One line per series (p50, p75, p95 of first frame, in ms)."""
    top = _nice_top(max((v for vs in series.values() for v in vs if v is not None), default=0))
    n = len(days)
    parts = _frame(days, top, " ms" if top < 100000 else "")
    for name, values in series.items():
        colour = COLOURS.get(name, "#555")
        run: list[str] = []
        segments: list[list[str]] = [run]
        for i, v in enumerate(values):
            if v is None:
                run = []
                segments.append(run)
                continue
            run.append(f"{_x(i, n):.1f},{_y(v, top):.1f}")
            parts.append(
                f'<circle cx="{_x(i, n):.1f}" cy="{_y(v, top):.1f}" r="3" fill="{colour}">'
                f"<title>{esc(days[i])} {esc(name)}: {v} ms</title></circle>"
            )
        for seg in segments:
            if len(seg) > 1:
                parts.append(
                    f'<polyline points="{" ".join(seg)}" fill="none" stroke="{colour}" stroke-width="2"/>'
                )
    return (
        f'<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{esc(title)}">'
        + "".join(parts)
        + "</svg>"
    )


def legend(names: list[str]) -> str:
    return (
        '<p class="legend">'
        + "".join(f'<span><i style="background:{COLOURS.get(n, "#555")}"></i>{esc(n)}</span>' for n in names)
        + "</p>"
    )
