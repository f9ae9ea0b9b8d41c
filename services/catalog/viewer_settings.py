"""Reading an object's saved viewer settings (``object.viewer/1`` events) from its timeline.

Its own module because both the review pages and the publish action need it."""

from __future__ import annotations

from typing import Any

import msgspec

from foto3d.proto.viewer import ViewerSettings
from foto3d.services.catalog.store import CatalogStore

VIEWER_KIND = "viewer"  # the timeline kind of object.viewer/1


async def saved_versions(store: CatalogStore, object_id: str) -> list[dict[str, Any]]:
    """Every saved settings version of an object, oldest first."""
    out = []
    for r in await store.timeline(object_id):
        if r.kind != VIEWER_KIND:
            continue
        d = r.detail
        out.append(
            {
                "version": d.get("version"),
                "settings": d.get("settings", {}),
                "actor": r.actor,
                "ts": r.ts,
                "comment": d.get("comment", ""),
                "job_id": d.get("job_id", ""),
            }
        )
    return out


async def latest_settings(store: CatalogStore, object_id: str) -> ViewerSettings | None:
    """What the next publish uses (None when nobody saved any)."""
    versions = await saved_versions(store, object_id)
    if not versions:
        return None
    return msgspec.convert(versions[-1]["settings"], ViewerSettings)
