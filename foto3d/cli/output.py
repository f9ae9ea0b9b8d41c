"""How the CLI prints: times in UTC, aligned tables and JSON, the same in every command."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import msgspec


def utc_time(ts: float | None, *, seconds: bool = False, missing: str = "") -> str:
    """``ts`` (Unix seconds) as ``YYYY-MM-DD HH:MM[:SS]`` in UTC; ``missing`` when there is none."""
    if not ts:
        return missing
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def print_table(rows: list[list[str]], header: list[str]) -> None:
    """Columns padded to their widest cell, the header in capitals."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    print("  ".join(h.upper().ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def print_json(data: Any) -> None:
    """Any reply (Structs included) as indented JSON, non-ASCII kept as it is."""
    print(json.dumps(msgspec.to_builtins(data), indent=2, ensure_ascii=False))
