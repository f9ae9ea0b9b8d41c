"""Every splat format, by name: the one place that lists them.

A new format is a module in this package that declares a :class:`.base.SplatFormat` named
``FORMAT`` and one line in :data:`_MODULES`; the CLI, the trainer, the publisher and the job
contract (``proto.jobs.SplatFormatName``, checked against this table by a test) follow.
"""

from __future__ import annotations

from pathlib import Path

from foto3d.libs.splat.errors import SplatFormatError
from foto3d.libs.splat.formats import compressed_ply, ply, sog, splat, spz
from foto3d.libs.splat.formats.base import SplatFormat

# Sniffing order matters: a PlayCanvas compressed PLY is also a PLY, so it is tried first.
_MODULES = (compressed_ply, ply, spz, sog, splat)

FORMATS: dict[str, SplatFormat] = {m.FORMAT.name: m.FORMAT for m in _MODULES}

#: Format names, in the order help texts list them.
NAMES: tuple[str, ...] = ("ply", "compressed-ply", "splat", "spz", "sog")

#: ".ply, .compressed.ply, ..." for messages.
SUFFIXES_TEXT = ", ".join(FORMATS[n].suffixes[0] for n in NAMES)


def get(name: str) -> SplatFormat:
    """The format called ``name``; SplatFormatError naming the choices otherwise."""
    try:
        return FORMATS[name]
    except KeyError:
        raise SplatFormatError(f"unknown splat format {name!r} (choose from {', '.join(NAMES)})") from None


def from_name(path: str | Path) -> SplatFormat | None:
    """The format a file name implies (longest matching suffix), or None."""
    name = str(path).lower()
    best: tuple[int, SplatFormat] | None = None
    for fmt in FORMATS.values():
        for suffix in fmt.suffixes:
            if name.endswith(suffix) and (best is None or len(suffix) > best[0]):
                best = (len(suffix), fmt)
    return best[1] if best else None


def sniff(path: Path) -> SplatFormat:
    """The format of an existing file: its magic where it has one, else its name."""
    with open(path, "rb") as f:
        head = f.read(16)
    for fmt in FORMATS.values():
        if fmt.sniff is not None and fmt.sniff(head, path):
            return fmt
    by_name = from_name(path)
    if by_name is None or by_name.sniff is not None:
        # A name whose format has a magic the bytes did not show is no evidence either.
        raise SplatFormatError(f"{path}: unknown splat format (supported: {SUFFIXES_TEXT})")
    return by_name
