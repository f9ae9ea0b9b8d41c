"""Serving the built documentation sites (``foto3d.app.docsite`` builds them).

The customer docs are served by the token gateway at ``/docs/`` (public, like the viewer's
files) and the staff handbook by the dashboard at ``/handbook/`` (behind sign-in, as every
dashboard route). Both read the same build output: ``FOTO3D_DOCS_DIR``, else ``build/docs``
of the source tree, so the docs a host serves are the ones built with its version.
"""

from __future__ import annotations

import mimetypes
import os
from pathlib import Path, PurePosixPath

from aiohttp import web

CUSTOMER = "customer"
INTERNAL = "internal"
DOCS_DIR_ENV = "FOTO3D_DOCS_DIR"


def _repo_root() -> Path:
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").is_file():
            return parent
    return here.parents[2]


REPO_ROOT = _repo_root()


def default_root() -> Path:
    return Path(os.environ.get(DOCS_DIR_ENV) or REPO_ROOT / "build" / "docs")


def site_file(section: str, tail: str, root: Path | None = None) -> Path | None:
    """The built file for ``/<prefix>/<tail>`` of ``section``, or None (missing, or outside the site)."""
    site = (root or default_root()) / section
    rel = PurePosixPath(tail or "index.html")
    if rel.is_absolute() or ".." in rel.parts:
        return None
    path = site / rel
    if path.is_dir():
        path = path / "index.html"
    return path if path.is_file() else None


def serve(
    request: web.Request, section: str, prefix: str, cache: str = "public, max-age=300"
) -> web.StreamResponse:
    """Answer ``prefix/<tail>`` from the built ``section``; ``prefix`` alone goes to ``prefix/``."""
    tail = request.match_info.get("tail", "")
    if request.path == prefix:
        # Answered, not raised: the gateway's middleware turns raised HTTP errors into its JSON.
        return web.Response(status=302, headers={"Location": prefix + "/"})
    path = site_file(section, tail)
    if path is None:
        if not (default_root() / section).is_dir():
            raise web.HTTPNotFound(text="The documentation is not built on this host (make docs).")
        raise web.HTTPNotFound(text="No such page.")
    ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return web.FileResponse(path, headers={"Content-Type": ctype, "Cache-Control": cache})
