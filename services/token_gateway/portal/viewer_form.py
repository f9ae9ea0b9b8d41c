"""The model page's form for the viewer settings a customer may change itself: background,
auto-rotate and the poster. The catalog keeps them (``f3d.api.catalog.customer-viewer``) as a new
version of the model's viewer settings; the framing stays staff's."""

from __future__ import annotations

from collections.abc import Mapping

from foto3d.libs.web.layout import esc
from foto3d.proto.objects import CustomerViewerReply, CustomerViewerRequest


def request_from(
    form: Mapping[str, object], object_id: str, customer: str, actor: str
) -> CustomerViewerRequest:
    """All three fields, as the form sends them (a checkbox left unticked is absent: off)."""
    return CustomerViewerRequest(
        object_id=object_id,
        customer=customer,  # the session's, never the form's
        background=str(form.get("background", "")).strip(),
        auto_rotate=form.get("auto_rotate") == "on",
        poster=form.get("poster") == "on",
        actor=actor,
    )


def form_html(action: str, current: CustomerViewerReply | None) -> str:
    if current is None:
        return (
            '<div class="panel" id="viewer-settings"><h2>Viewer settings</h2><p class="muted">'
            "Not available just now; try again.</p></div>"
        )
    checked = {True: " checked", False: ""}
    return f"""<div class="panel" id="viewer-settings"><h2>Viewer settings</h2>
<p class="muted">How the viewer looks on your sites. Saved as a new version of this model's settings
(the starting view and framing stay as our team approved them); they reach your live model with its
next publish. {f"Saved version {current.version}." if current.version else ""}</p>
<form method="post" action="{action}" class="stack" id="viewer-form">
<label>Background (a CSS colour; empty: the viewer's default) <input name="background" maxlength="64"
value="{esc(current.background)}" placeholder="#eef0f3"></label>
<label class="check"><input type="checkbox" name="auto_rotate"{checked[current.auto_rotate]}> Turn slowly by itself</label>
<label class="check"><input type="checkbox" name="poster"{checked[current.poster]}> Show a still picture while it loads</label>
<button type="submit" class="primary">Save viewer settings</button></form></div>"""
