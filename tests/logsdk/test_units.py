"""Pieces of the log SDK that need no server: seq counter, spool, line classifier."""

from __future__ import annotations

import os
import time
from pathlib import Path

from foto3d.libs.logsdk.lines import LineClassifier, clean_line
from foto3d.libs.logsdk.seq import SeqCounter
from foto3d.libs.logsdk.spool import Spool
from foto3d.proto.logs import Level

TRACEBACK = """\
Traceback (most recent call last):
  File "/opt/train.py", line 12, in <module>
    main()
  File "/opt/train.py", line 9, in main
    raise ValueError("bad camera poses")
ValueError: bad camera poses
"""


def test_seq_counter_is_persisted_in_blocks_and_never_reused(tmp_path: Path) -> None:
    path = tmp_path / "seq" / "rig+cam-1"
    a = SeqCounter(path, block=10)
    first = [a.next() for _ in range(25)]
    assert first == list(range(25))
    # A restart (or a second process with the same id) starts past every reserved block.
    b = SeqCounter(path, block=10)
    second = [b.next() for _ in range(5)]
    assert min(second) > max(first)
    c = SeqCounter(path, block=10)
    assert c.next() > max(second)
    # a keeps going in its own block range, never meeting b's or c's numbers
    more = [a.next() for _ in range(30)]
    assert not set(more) & set(second)


def test_seq_counter_without_file_increases_across_instances() -> None:
    a = SeqCounter(None)
    x = [a.next() for _ in range(3)]
    b = SeqCounter(None)
    assert b.next() > x[0] and x == sorted(set(x))


def test_spool_orders_by_seq_and_drops_oldest_at_cap(tmp_path: Path) -> None:
    sp = Spool(tmp_path, max_bytes=300)
    for first in (200, 0, 100):  # written out of order, replayed by seq
        assert sp.write("rig", "cam-1", first, first + 99, 100, f"b{first}", b"x" * 100) is None
    assert [e.first_seq for e in sp.entries()] == [0, 100, 200]
    dropped = sp.write("rig", "cam-1", 300, 399, 100, "b300", b"y" * 100)
    assert dropped is not None and dropped.batches == 1 and dropped.records == 100
    assert dropped.seq_ranges == [("rig", "cam-1", 0, 99)]
    entries = sp.entries()
    assert [e.first_seq for e in entries] == [100, 200, 300]
    assert sp.total_bytes() <= 300
    assert sp.read(entries[-1]) == b"y" * 100


def test_spool_ignores_half_written_files(tmp_path: Path) -> None:
    sp = Spool(tmp_path, max_bytes=10_000)
    crashed = sp.dir / "rig+a+00000000000000000000+00000000000000000001+2+x.batch.tmp"
    crashed.write_bytes(b"{")
    os.utime(crashed, (time.time() - 3600, time.time() - 3600))
    live = sp.dir / "rig+b+00000000000000000000+00000000000000000001+2+y.batch.tmp"
    live.write_bytes(b"{")  # another shipper is writing it right now
    assert Spool(tmp_path, max_bytes=10_000).entries() == []
    assert list(sp.dir.iterdir()) == [live]  # a crash's leftover goes, a live write stays


def test_clean_line_takes_last_progress_segment_and_strips_colour() -> None:
    assert clean_line(" 10%|#   |\r 55%|#####  |\r\n") == " 55%|#####  |"
    assert clean_line("\x1b[31mred\x1b[0m\n") == "red"
    assert clean_line("\r\r\n") == ""


def test_classify_levels() -> None:
    c = LineClassifier()
    assert c.classify("Epoch 3 loss 0.1", "stdout") == Level.INFO
    assert c.classify("something on stderr", "stderr") == Level.WARNING
    assert c.classify("RuntimeError: CUDA out of memory. Tried to allocate", "stdout") == Level.ERROR
    assert c.classify("Error: cannot open file", "stdout") == Level.ERROR
    assert c.classify("2026-01-01 ERROR trainer: died", "stdout") == Level.ERROR
    assert c.classify("Killed", "stderr") == Level.ERROR
    assert c.classify("FATAL: no GPU", "stdout") == Level.ERROR
    assert c.classify("UserWarning: deprecated", "stderr") == Level.WARNING
    assert c.classify("warn: slow disk", "stdout") == Level.WARNING
    assert c.classify("INFO:root:starting", "stderr") == Level.INFO
    assert c.classify("DEBUG:root:detail", "stderr") == Level.DEBUG
    assert c.classify(" 45%|####5     | 45/100 [00:02<00:03]", "stderr") == Level.INFO
    assert c.classify("0 errors found", "stdout") == Level.INFO


def test_traceback_becomes_one_error_record() -> None:
    c = LineClassifier()
    out = []
    for line in ["step 1\n", *TRACEBACK.splitlines(keepends=True), "cleanup done\n"]:
        out += c.feed(line, "stderr")
    assert [r.message for r in out] == ["step 1", "ValueError: bad camera poses", "cleanup done"]
    tb = out[1]
    assert tb.level == Level.ERROR and tb.exc is not None
    assert tb.exc.startswith("Traceback (most recent call last):")
    assert 'raise ValueError("bad camera poses")' in tb.exc
    assert tb.exc.endswith("ValueError: bad camera poses")


def test_chained_traceback_and_open_traceback_at_eof() -> None:
    c = LineClassifier()
    chained = TRACEBACK + (
        "\nDuring handling of the above exception, another exception occurred:\n\n"
        "Traceback (most recent call last):\n"
        '  File "/opt/train.py", line 14, in <module>\n'
        "KeyError: 'poses'\n"
    )
    out = [r for line in chained.splitlines(keepends=True) for r in c.feed(line, "stderr")]
    assert [r.message for r in out] == ["ValueError: bad camera poses", "KeyError: 'poses'"]
    assert out[1].exc is not None and out[1].exc.startswith("During handling")
    # Output that ends inside a traceback (killed mid-print) still yields it at flush.
    assert c.feed("Traceback (most recent call last):\n", "stdout") == []
    assert c.feed('  File "x.py", line 1\n', "stdout") == []
    rest = c.flush()
    assert len(rest) == 1 and rest[0].level == Level.ERROR and rest[0].stream == "stdout"
    # Streams are separate: a traceback on stderr does not swallow stdout lines.
    c.feed("Traceback (most recent call last):\n", "stderr")
    assert [r.message for r in c.feed("progress 50%\n", "stdout")] == ["progress 50%"]
