"""The viewer config: what ``<foto3d-viewer>`` reads beside a splat (``viewer.json``).

Every field is optional for the viewer: without a config it frames the object itself. The
publisher writes a full :class:`ViewerConfig` (defaults computed from the splat plus the
reviewer's saved :class:`ViewerSettings`); a customer or a reviewer overrides only what they
want. The browser checks the same rules (``libs/viewer/web/src/config.js``): a bad or unknown
field is reported in the console and replaced by its default, never a blank page.

Frames: ``files[].up`` is each file's up axis as stored, which is how the renderer reads it
(the trainer's ``Artifact.up``, copied by the publisher). The *upright frame* is
the data turned so that axis is +Y (three.js's up). ``bounds`` and ``hotspots`` are in the
upright frame; ``rotation`` (the reviewer's levelling, degrees about X, Y, Z in that order) turns
the upright object about the origin; ``camera.position``/``target`` are in the final, turned
world. ``camera.azimuth``/``elevation``/``distance`` place the camera around the object's centre
instead (degrees; distance as a multiple of the distance that fits the object in the frame).
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from foto3d.proto.base import MAX_SAFE_INT, Count, Real
from foto3d.proto.jobs import SplatFormatName, UpAxis

CONFIG_VERSION = 2

Vec3 = Annotated[list[Real], msgspec.Meta(min_length=3, max_length=3)]
Degrees = Annotated[float, msgspec.Meta(ge=-360, le=360)]
Elevation = Annotated[float, msgspec.Meta(ge=-89, le=89)]
Positive = Annotated[float, msgspec.Meta(gt=0, le=float(MAX_SAFE_INT))]
Fov = Annotated[float, msgspec.Meta(gt=1, lt=170)]
CssColour = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[#a-zA-Z0-9(),.% ]+$")]


class _Part(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    pass


class Bounds(_Part, frozen=True, kw_only=True):
    """Robust bounds (percentiles of opaque centres; floaters ignored) in the upright frame."""

    min: Vec3
    max: Vec3
    center: Vec3
    radius: Positive


class Camera(_Part, frozen=True, kw_only=True):
    """The starting view. Either ``position`` + ``target`` or azimuth/elevation/distance."""

    position: Vec3 | None = None
    target: Vec3 | None = None
    up: Vec3 | None = None
    fov: Fov | None = None  # vertical, degrees
    near: Positive | None = None
    far: Positive | None = None
    azimuth: Degrees | None = None
    elevation: Elevation | None = None
    distance: Positive | None = None


class Limits(_Part, frozen=True, kw_only=True):
    """How far a visitor may move. Distances are multiples of the framing distance."""

    min_distance: Positive | None = None
    max_distance: Positive | None = None
    min_elevation: Elevation | None = None
    max_elevation: Elevation | None = None
    zoom: bool | None = None


class UiParts(_Part, frozen=True, kw_only=True):
    fullscreen: bool | None = None
    progress: bool | None = None
    poster: bool | None = None
    hotspots: bool | None = None


class Hotspot(_Part, frozen=True, kw_only=True):
    """A labelled point on the object (upright frame), drawn over the picture."""

    position: Vec3
    label: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    description: Annotated[str, msgspec.Meta(max_length=2000)] = ""


class ViewerFile(_Part, frozen=True, kw_only=True):
    format: SplatFormatName
    url: str
    bytes: Count
    sha256: str
    up: UpAxis | None = None
    content_type: str | None = None


AutoRotate = bool | Annotated[float, msgspec.Meta(ge=-60, le=60)]  # degrees per second


class ViewerSettings(_Part, frozen=True, kw_only=True):
    """What a reviewer saves for an object (and what a config may override)."""

    up: UpAxis | None = None
    rotation: Vec3 | None = None
    camera: Camera | None = None
    limits: Limits | None = None
    background: CssColour | None = None
    auto_rotate: AutoRotate | None = None
    ui: UiParts | None = None
    hotspots: list[Hotspot] | None = None


class ViewerConfig(ViewerSettings, frozen=True, kw_only=True):
    """``viewer.json`` as the publisher writes it."""

    version: Count = CONFIG_VERSION
    object_id: str = ""
    name: str = ""
    model_version: Count = 0
    gaussians: Count = 0
    bounds: Bounds | None = None
    files: list[ViewerFile] = msgspec.field(default_factory=list)
    thumbnail: str = ""


SCHEMAS = (ViewerConfig, ViewerSettings)
