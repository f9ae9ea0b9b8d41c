"""PLY container: header parsing and whole-element reads/writes as numpy structured arrays.

Both the standard 3DGS .ply and PlayCanvas' compressed .ply are PLY files; this module knows the
container (elements, scalar properties, encodings), the format modules know what the fields mean.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from foto3d.libs.splat.errors import SplatFormatError
from foto3d.libs.splat.progress import Progress

_TYPES = {
    "char": "i1",
    "int8": "i1",
    "uchar": "u1",
    "uint8": "u1",
    "short": "i2",
    "int16": "i2",
    "ushort": "u2",
    "uint16": "u2",
    "int": "i4",
    "int32": "i4",
    "uint": "u4",
    "uint32": "u4",
    "float": "f4",
    "float32": "f4",
    "double": "f8",
    "float64": "f8",
}
_NAMES = {"i1": "char", "u1": "uchar", "i2": "short", "u2": "ushort", "i4": "int", "u4": "uint"}
_NAMES.update({"f4": "float", "f8": "double"})
_MAX_HEADER = 1 << 20
_CHUNK_ROWS = 1 << 20


@dataclass
class PlyElement:
    name: str
    count: int
    properties: list[tuple[str, str]] = field(default_factory=list)  # (name, numpy kind like "f4")

    def dtype(self, endian: str) -> np.dtype[np.void]:
        return np.dtype([(n, endian + k) for n, k in self.properties])

    def names(self) -> list[str]:
        return [n for n, _ in self.properties]


@dataclass
class PlyHeader:
    fmt: str  # binary_little_endian | binary_big_endian | ascii
    elements: list[PlyElement]
    header_size: int
    comments: list[str] = field(default_factory=list)

    @property
    def endian(self) -> str:
        return ">" if self.fmt == "binary_big_endian" else "<"

    def element(self, name: str) -> PlyElement | None:
        return next((e for e in self.elements if e.name == name), None)

    def data_size(self) -> int:
        return sum(e.count * e.dtype(self.endian).itemsize for e in self.elements)


def is_ply(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"ply\n"


def read_header(f: BinaryIO, source: str) -> PlyHeader:
    """Parse the header; leaves ``f`` at the first data byte."""
    if f.read(4) != b"ply\n":
        raise SplatFormatError(f"{source}: not a PLY file (it does not start with 'ply')")
    lines: list[str] = []
    size = 4
    while True:
        raw = f.readline(4096)
        size += len(raw)
        if not raw:
            raise SplatFormatError(f"{source}: PLY header has no 'end_header' line (file truncated?)")
        if size > _MAX_HEADER:
            raise SplatFormatError(f"{source}: PLY header is longer than 1 MiB: not a splat file")
        line = raw.decode("ascii", errors="replace").strip()
        if line == "end_header":
            break
        lines.append(line)
    fmt = ""
    comments: list[str] = []
    elements: list[PlyElement] = []
    for line in lines:
        parts = line.split()
        if not parts:
            continue
        key = parts[0]
        if key == "format":
            if len(parts) < 2 or parts[1] not in ("binary_little_endian", "binary_big_endian", "ascii"):
                raise SplatFormatError(f"{source}: unknown PLY format line {line!r}")
            fmt = parts[1]
        elif key in ("comment", "obj_info"):
            comments.append(line[len(key) :].strip())
        elif key == "element":
            if len(parts) != 3 or not parts[2].isdigit():
                raise SplatFormatError(f"{source}: bad PLY element line {line!r}")
            elements.append(PlyElement(parts[1], int(parts[2])))
        elif key == "property":
            if not elements:
                raise SplatFormatError(f"{source}: PLY property before any element: {line!r}")
            if len(parts) >= 2 and parts[1] == "list":
                raise SplatFormatError(
                    f"{source}: element {elements[-1].name!r} has a list property; "
                    "a splat PLY has only scalar properties"
                )
            if len(parts) != 3 or parts[1] not in _TYPES:
                raise SplatFormatError(f"{source}: bad PLY property line {line!r}")
            elements[-1].properties.append((parts[2], _TYPES[parts[1]]))
        else:
            raise SplatFormatError(f"{source}: unexpected PLY header line {line!r}")
    if not fmt:
        raise SplatFormatError(f"{source}: PLY header has no 'format' line")
    return PlyHeader(fmt, elements, size, comments)


def read_elements(path: Path, *, progress_label: str = "reading") -> tuple[PlyHeader, dict[str, np.ndarray]]:
    """Read every element of a PLY into structured arrays (native little-endian layout)."""
    source = str(path)
    file_size = path.stat().st_size
    with open(path, "rb") as f:
        header = read_header(f, source)
        if header.fmt == "ascii":
            return header, _read_ascii(f, header, source)
        need = header.header_size + header.data_size()
        if file_size < need:
            raise SplatFormatError(
                f"{source}: file is truncated: the header announces "
                + ", ".join(f"{e.count} {e.name}" for e in header.elements)
                + f" ({need} bytes) but the file has {file_size} bytes"
            )
        out: dict[str, np.ndarray] = {}
        total = header.data_size()
        with Progress(total, progress_label, unit="B") as bar:
            for el in header.elements:
                dt = el.dtype(header.endian)
                arr = np.empty(el.count, dtype=dt)
                for start in range(0, el.count, _CHUNK_ROWS):
                    stop = min(el.count, start + _CHUNK_ROWS)
                    buf = f.read((stop - start) * dt.itemsize)
                    arr[start:stop] = np.frombuffer(buf, dtype=dt)
                    bar.update(len(buf))
                out[el.name] = arr if header.endian == "<" else arr.astype(el.dtype("<"))
    return header, out


def _read_ascii(f: BinaryIO, header: PlyHeader, source: str) -> dict[str, np.ndarray]:
    text = f.read().decode("ascii", errors="replace").split("\n")
    out: dict[str, np.ndarray] = {}
    pos = 0
    for el in header.elements:
        rows = [ln for ln in text[pos : pos + el.count]]
        pos += el.count
        if len(rows) < el.count:
            raise SplatFormatError(f"{source}: ASCII PLY is truncated in element {el.name!r}")
        try:
            values = np.loadtxt(io.StringIO("\n".join(rows)), dtype=np.float64, ndmin=2)
        except ValueError as exc:
            raise SplatFormatError(f"{source}: bad ASCII PLY row in element {el.name!r}: {exc}") from None
        if el.count and values.shape[1] != len(el.properties):
            raise SplatFormatError(
                f"{source}: ASCII PLY rows of {el.name!r} have {values.shape[1]} values, "
                f"expected {len(el.properties)}"
            )
        arr = np.empty(el.count, dtype=el.dtype("<"))
        for i, (name, _) in enumerate(el.properties):
            arr[name] = values[:, i] if el.count else []
        out[el.name] = arr
    return out


def write_ply(path: Path, elements: list[tuple[str, np.ndarray]], comments: Sequence[str] = ()) -> None:
    """Write structured arrays as a binary little-endian PLY, streaming in chunks."""
    lines = ["ply", "format binary_little_endian 1.0"]
    lines += [f"comment {c}" for c in comments]
    for name, arr in elements:
        lines.append(f"element {name} {len(arr)}")
        assert arr.dtype.names is not None
        for prop in arr.dtype.names:
            kind = arr.dtype.fields[prop][0]  # type: ignore[index]
            lines.append(f"property {_NAMES[kind.str[1:]]} {prop}")
    lines.append("end_header")
    total = sum(a.nbytes for _, a in elements)
    with open(path, "wb") as f, Progress(total, "writing", unit="B") as bar:
        f.write(("\n".join(lines) + "\n").encode("ascii"))
        for _, arr in elements:
            le = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
            for start in range(0, len(le), _CHUNK_ROWS):
                chunk = le[start : start + _CHUNK_ROWS]
                f.write(chunk.tobytes())
                bar.update(chunk.nbytes)
