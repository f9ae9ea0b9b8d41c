"""What a splat file format declares about itself, so that nothing else has to know it.

Each module in this package ends with one :class:`SplatFormat`; :mod:`.registry` collects them.
Reading and writing by name, sniffing a file's format, the up axis a file's data uses, the HTTP
content type a publisher sends: all of them come from these declarations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from foto3d.libs.splat.coords import turn_axis
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
    - ``storage_turn``: the rotation the codec applies to the data on write (and undoes on
      read), for formats stored in another frame than the one we decode them into (``.spz``:
      Niantic's RUB against the PLY frame); None when a file is stored as decoded.

    Two frames, then: ``up`` and :func:`..io.up_axis` speak of the data as decoded; what the
    pipeline records per file (``Artifact.up``, ``PublishedFile.up``, ``viewer.json``'s
    ``files[].up``) is the up axis *as stored*, which is what a renderer that reads the file
    unchanged sees. :meth:`stored_up` and :meth:`decoded_up` convert between the two.
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
    storage_turn: tuple[tuple[float, ...], ...] | None = None  # 3x3, by rows

    def stored_up(self, decoded_up: str) -> str:
        """The up axis in the file as stored, for data whose up axis was ``decoded_up`` when written."""
        return decoded_up if self.storage_turn is None else turn_axis(self.storage_turn, decoded_up)

    def decoded_up(self, stored_up: str) -> str:
        """The up axis of the data as our reader decodes it, for a file stored ``stored_up``."""
        return (
            stored_up if self.storage_turn is None else turn_axis(np.transpose(self.storage_turn), stored_up)
        )
