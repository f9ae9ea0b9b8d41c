"""What a splat file format declares about itself, so that nothing else has to know it.

Each module in this package ends with one :class:`SplatFormat`; :mod:`.registry` collects them.
Reading and writing by name, sniffing a file's format, the up axis a file's data uses, the HTTP
content type a publisher sends: all of them come from these declarations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from foto3d.libs.splat.model import Splat


@dataclass(frozen=True)
class SplatFormat:
    """One file format.

    - ``name``: the one spelling used everywhere (CLI, job options, artifacts, reports).
    - ``suffixes``: file name endings, lower case, most specific first (``.compressed.ply``).
    - ``up``: the up axis of the data as decoded into memory, by the convention of the
      format's producers and viewers; None when the file must say (see ``recorded_up``).
    - ``content_type``: what to send over HTTP.
    - ``sniff(head, path)``: True when the file's first bytes (and header, if it needs to read
      more) are this format; None for headerless formats, which only their suffix identifies.
    - ``recorded_up(path)``: the up axis the file itself records, or None.
    """

    name: str
    suffixes: tuple[str, ...]
    up: str | None
    content_type: str
    description: str
    read: Callable[[Path], Splat]
    write: Callable[..., None]
    sniff: Callable[[bytes, Path], bool] | None = None
    recorded_up: Callable[[Path], str | None] | None = None
