"""Percentiles that add up: counts per logarithmic bucket of milliseconds.

Bucket ``i`` (i ≥ 1) holds the values in (γ^(i-1), γ^i] with γ = 1.1; bucket 0 holds 0 ms.
A percentile is read back as the middle of its bucket (2·γ^i / (γ + 1)), which is within
(γ − 1)/(γ + 1) ≈ 4.8 % of the true value: the trade DDSketch makes. Sketches of two
days, domains or gateway instances add bucket by bucket, so a percentile over many rows is
exactly as good as over one, and a row never holds more than ~140 numbers, whatever the traffic.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from foto3d.proto.analytics import MAX_SKETCH_INDEX

GAMMA = 1.1
_LOG_GAMMA = math.log(GAMMA)
#: The relative error of any percentile read back.
RELATIVE_ERROR = (GAMMA - 1) / (GAMMA + 1)


def index(ms: int) -> int:
    if ms <= 0:
        return 0
    # the small epsilon keeps an exact power of γ in its own bucket despite rounding
    return min(MAX_SKETCH_INDEX, max(1, math.ceil(math.log(ms) / _LOG_GAMMA - 1e-9)))


def value(i: int) -> int:
    """The value a bucket stands for (its middle, in the sense of relative error)."""
    if i <= 0:
        return 0
    return round(2 * GAMMA**i / (GAMMA + 1))


def add(into: dict[int, int], ms: int, n: int = 1) -> None:
    i = index(ms)
    into[i] = into.get(i, 0) + n


def merge(into: dict[int, int], other: Mapping[int, int]) -> None:
    for i, n in other.items():
        into[i] = into.get(i, 0) + n


def quantiles(sketch: Mapping[int, int], qs: Iterable[float]) -> list[int | None]:
    """The nearest-rank ``q`` quantile of each ``q`` (0 < q ≤ 1); None for an empty sketch."""
    total = sum(sketch.values())
    wanted = list(qs)
    if total == 0:
        return [None for _ in wanted]
    ordered = sorted(sketch.items())
    out: list[int | None] = []
    for q in wanted:
        rank = max(1, math.ceil(q * total))
        seen = 0
        for i, n in ordered:
            seen += n
            if seen >= rank:
                out.append(value(i))
                break
    return out
