"""The threaded gzip writer: one ordinary gzip member, whatever the cuts between parts and chunks."""

from __future__ import annotations

import gzip
import io
import os
import zlib

import numpy as np
import pytest

from foto3d.libs.splat.formats import pgzip


@pytest.mark.parametrize(
    "sizes",
    [
        [],
        [0],
        [10],
        [pgzip.CHUNK],
        [pgzip.CHUNK - 1, 1, 2 * pgzip.CHUNK + 5],
        [3, pgzip.CHUNK + 7, 0, 100_000, 3 * pgzip.CHUNK],
    ],
)
@pytest.mark.parametrize("level", [6, 12])
def test_parts_round_trip_through_gzip_and_zlib(sizes: list[int], level: int) -> None:
    # compressible but not trivial: repeated blocks with noise, so matches cross the chunk cuts
    parts = [(os.urandom(64) * (n // 64 + 1))[:n] for n in sizes]
    out = io.BytesIO()
    done: list[int] = []
    pgzip.write_gzip(out, parts, level=level, threads=3, progress=done.append)
    data = b"".join(parts)
    assert gzip.decompress(out.getvalue()) == data
    assert zlib.decompress(out.getvalue(), 31) == data  # one member: zlib's gzip mode stops after one
    assert sum(done) == len(data)


def test_size_matches_a_one_thread_write() -> None:
    data = b"".join(i.to_bytes(4, "little") * 3 for i in range(1_000_000))  # 12 MB, compressible
    out = io.BytesIO()
    pgzip.write_gzip(out, [memoryview(data)], level=6, threads=2)
    single = gzip.compress(data, compresslevel=6)
    assert gzip.decompress(out.getvalue()) == data
    assert abs(len(out.getvalue()) - len(single)) <= 0.002 * len(single)


def test_the_libdeflate_levels_are_smaller_than_zlibs_best() -> None:
    # splat-like columns: small integers with noise, which zlib's greedy matcher handles worst
    rng = np.random.default_rng(3)
    data = (rng.normal(128, 12, 2_000_000).clip(0, 255).astype(np.uint8)).tobytes()
    out = io.BytesIO()
    pgzip.write_gzip(out, [data], level=12)
    assert gzip.decompress(out.getvalue()) == data
    assert len(out.getvalue()) < 0.99 * len(gzip.compress(data, compresslevel=9))


@pytest.mark.parametrize("level", [-1, 13])
def test_a_level_outside_the_range_is_refused(level: int) -> None:
    with pytest.raises(ValueError, match=r"outside 0\.\.12"):
        pgzip.write_gzip(io.BytesIO(), [b"x"], level=level)


def test_the_clis_spz_levels_mirror_the_writers() -> None:
    from foto3d.cli import splat_output
    from foto3d.libs.splat.formats import spz

    assert splat_output.SPZ_GZIP_LEVEL == spz.GZIP_LEVEL
    assert splat_output.SPZ_SMALLEST_GZIP_LEVEL == spz.SMALLEST_GZIP_LEVEL == pgzip.MAX_LEVEL
