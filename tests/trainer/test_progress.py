"""nerfstudio 1.1.5's progress output, as printed, read into step/total/ETA."""

from __future__ import annotations

import pytest

from foto3d.services.trainer.progress import ProgressParser, Throttle, parse_duration, strip_ansi

HEADER = "Step (% Done)       Train Iter (time)    ETA (time)           Train Rays / Sec     "
RULE = "-" * 84


def row(step: int, pct: str, it: str, eta: str, rays: str = "81.64 K") -> str:
    first = f"{step} ({pct}%)"
    return f"{first:<20}{it:<20} {eta:<20} {rays:<20} "


def test_durations_in_nerfstudio_format() -> None:
    assert parse_duration("25.874 ms") == pytest.approx(0.025874)
    assert parse_duration("3 s, 120.000 ms") == pytest.approx(3.12)
    assert parse_duration("12 m, 3 s") == 723
    assert parse_duration("1 h, 2 m, 3 s") == 3723
    assert parse_duration("2 d, 1 h, 0 m, 5 s") == 2 * 86400 + 3605
    assert parse_duration("81.64 K") is None


def test_rows_after_the_header_give_step_total_and_eta() -> None:
    p = ProgressParser(total=30000)
    assert p.feed("[04:12:01] Saving config to: outputs/x/config.yml   experiment_config.py:136") is None
    assert p.feed(HEADER) is None
    assert p.feed(RULE) is None
    got = p.feed(row(2900, "9.67", "25.874 ms", "12 m, 3 s"))
    assert got is not None
    assert (got.step, got.total, got.eta_s) == (2900, 30000, 723)
    assert got.iter_s is not None and abs(got.iter_s - 0.025874) < 1e-9
    later = p.feed(row(29990, "99.97", "24.100 ms", "241.000 ms"))
    assert later is not None and later.eta_s is not None and abs(later.eta_s - 0.241) < 1e-9


def test_redrawn_table_with_escape_codes_is_read_once_in_order() -> None:
    # nerfstudio's default writer redraws its last rows: cursor-up, erase, then the history again.
    p = ProgressParser(total=1000)
    p.feed(HEADER)
    first = p.feed(row(10, "1.00", "30.1 ms", "30 s, 10.000 ms"))
    redraw = "\r\x1b[3A\x1b[1K\r" + row(10, "1.00", "30.1 ms", "30 s, 10.000 ms") + " \x1b[0m"
    newer = "\x1b[6;30;42m" + row(20, "2.00", "29.0 ms", "28 s, 420.000 ms") + " \x1b[0m"
    assert first is not None and first.step == 10
    assert p.feed(redraw) is None  # an older row again
    got = p.feed(newer)
    assert got is not None and got.step == 20 and got.eta_s is not None and abs(got.eta_s - 28.42) < 1e-9
    assert strip_ansi("\x1b[1mbold\x1b[0m") == "bold"


def test_total_from_percentage_and_eta_from_pace_without_header() -> None:
    now = [100.0]
    p = ProgressParser(total=0, clock=lambda: now[0])
    a = p.feed(row(100, "10.00", "1 ms", "?"))
    assert a is not None and a.total == 1000 and a.eta_s is None
    now[0] += 10.0
    b = p.feed(row(200, "20.00", "1 ms", "?"))
    assert b is not None and b.eta_s == 80.0  # 100 steps per 10 s, 800 to go


def test_throttle_passes_stage_changes_and_one_value_per_interval() -> None:
    t = Throttle(1.0)
    assert t.ready("train", now=10.0)
    assert not t.ready("train", now=10.5)
    assert t.ready("export", now=10.6)
    assert t.ready("export", now=11.7)
