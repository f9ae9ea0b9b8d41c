"""``f3d.api.catalog.customer-viewer``: the viewer settings a customer changes itself (the portal).

Only the background, auto-rotate and the poster: the latest saved settings are taken as they
are and just those fields changed, so the framing staff approved (camera, limits, levelling,
hotspots) stays theirs. The result is an ordinary new ``object.viewer/1`` version, recorded as
done by the portal account, and like any saved version it reaches the live model with the
object's next publish.
"""

from __future__ import annotations

from typing import Any

import msgspec

from foto3d.proto.objects import CustomerViewerReply, CustomerViewerRequest
from foto3d.proto.viewer import UiParts, ViewerSettings
from foto3d.services.catalog.actions import ActionError
from foto3d.services.catalog.parts import CatalogParts
from foto3d.services.catalog.review import SAVE_LOCK, record_version
from foto3d.services.catalog.viewer_settings import latest_settings, saved_versions

COMMENT = "changed by the customer in the portal"


def _reply(object_id: str, version: int, changed: bool, s: ViewerSettings) -> CustomerViewerReply:
    return CustomerViewerReply(
        object_id=object_id,
        version=version,
        changed=changed,
        background=s.background or "",
        auto_rotate=bool(s.auto_rotate),
        # the viewer shows a poster unless told not to
        poster=s.ui is None or s.ui.poster is not False,
    )


def changes(current: ViewerSettings, req: CustomerViewerRequest) -> dict[str, Any]:
    """The fields of ``current`` that ``req`` changes (none where it asks for what is there)."""
    out: dict[str, Any] = {}
    if req.background is not None and (req.background or None) != current.background:
        out["background"] = req.background or None
    # A staff speed (degrees per second) counts as on: "on" keeps it rather than resetting it.
    if req.auto_rotate is not None and req.auto_rotate != bool(current.auto_rotate):
        out["auto_rotate"] = req.auto_rotate
    shown = current.ui is None or current.ui.poster is not False
    if req.poster is not None and req.poster != shown:
        out["ui"] = msgspec.structs.replace(current.ui or UiParts(), poster=req.poster)
    return out


async def change(parts: CatalogParts, req: CustomerViewerRequest) -> CustomerViewerReply:
    row = await parts.catalog.obj(req.object_id)
    if row.customer != req.customer:
        # the same answer as for an object that does not exist: no hint it is another's
        raise ActionError(f"no object {req.object_id!r} in the catalog", 404)
    async with SAVE_LOCK:
        current = await latest_settings(parts.store, req.object_id) or ViewerSettings()
        new = changes(current, req)
        if not new:
            version = len(await saved_versions(parts.store, req.object_id))
            return _reply(req.object_id, version, False, current)
        settings = msgspec.structs.replace(current, **new)
        version = await record_version(parts, req.object_id, settings, COMMENT, req.actor)
    return _reply(req.object_id, version, True, settings)
