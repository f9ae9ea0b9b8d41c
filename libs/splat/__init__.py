"""Gaussian splats: the in-memory model, every file format we read and write, checks and repair.

``read(path)`` / ``write(splat, path)`` pick the format from the name; see :mod:`.io`.
"""

from foto3d.libs.splat.errors import SplatFormatError
from foto3d.libs.splat.io import FORMATS, detect_format, format_from_name, read, up_axis, write
from foto3d.libs.splat.model import SH_C0, Splat

__all__ = [
    "FORMATS",
    "SH_C0",
    "Splat",
    "SplatFormatError",
    "detect_format",
    "format_from_name",
    "read",
    "up_axis",
    "write",
]
