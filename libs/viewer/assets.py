"""The built ``<foto3d-viewer>`` bundle, as the gateway and the dashboard serve it.

``make viewer`` (a prerequisite of ``make up`` and ``make test``) builds
``libs/viewer/web/dist/foto3d-viewer-<version>.<hash>.js`` and a ``manifest.json`` beside it with
the file's name, size and Subresource Integrity hash. The name changes whenever the content does,
so the file is served ``immutable`` for a year and the embed snippet pins it with ``integrity``.

Spark's WebAssembly travels as a file of its own beside the bundle (``spark-<version>.<hash>.wasm``,
named in the manifest with its own hash): the bundle fetches it relative to its own URL with that
hash as the fetch's ``integrity``, so the snippet's one ``integrity`` still covers what runs, and
the page preloads it so that it downloads alongside the bundle.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import quote, unquote

import msgspec
from aiohttp import web

from foto3d.libs.viewer.formats import VIEWER_ORDER

WEB_DIR = Path(__file__).resolve().parent / "web"
DIST_DIR = WEB_DIR / "dist"
IMMUTABLE = "public, max-age=31536000, immutable"
EMBED_DEFAULT_FORMATS = ",".join(VIEWER_ORDER)


class ViewerBundleMissing(RuntimeError):
    """The bundle has not been built (run ``make viewer``)."""


@dataclass(frozen=True, slots=True)
class ViewerWasm:
    """Spark's WebAssembly, which the bundle fetches from beside itself."""

    file: str  # spark-<spark version>.<hash>.wasm
    bytes: int
    sri: str
    path: Path


@dataclass(frozen=True, slots=True)
class ViewerBundle:
    file: str  # foto3d-viewer-<version>.<hash>.js
    version: str
    bytes: int
    sri: str  # sha384-<base64>
    path: Path
    wasm: ViewerWasm


class _ManifestWasm(msgspec.Struct, frozen=True):
    file: str
    bytes: int
    sri: str


class _Manifest(msgspec.Struct, frozen=True):
    file: str
    version: str
    bytes: int
    sri: str
    wasm: _ManifestWasm


def load_bundle(dist: Path = DIST_DIR) -> ViewerBundle:
    """The built bundle, checked against its manifest (a stale or edited file is refused)."""
    manifest_path = dist / "manifest.json"
    try:
        m = msgspec.json.decode(manifest_path.read_bytes(), type=_Manifest)
    except FileNotFoundError:
        raise ViewerBundleMissing(f"no viewer bundle in {dist}: run `make viewer`") from None
    except msgspec.ValidationError as exc:
        raise ViewerBundleMissing(f"{manifest_path} is not a viewer manifest: {exc}") from exc
    path = _checked_file(dist, m.file, m.bytes, m.sri)
    wasm = ViewerWasm(
        file=m.wasm.file,
        bytes=m.wasm.bytes,
        sri=m.wasm.sri,
        path=_checked_file(dist, m.wasm.file, m.wasm.bytes, m.wasm.sri),
    )
    return ViewerBundle(file=m.file, version=m.version, bytes=m.bytes, sri=m.sri, path=path, wasm=wasm)


def _checked_file(dist: Path, name: str, size: int, sri: str) -> Path:
    path = dist / name
    if "/" in name or not path.is_file():
        raise ViewerBundleMissing(f"the viewer manifest names {name!r}, which is not in {dist}")
    data = path.read_bytes()
    if sri_of(data) != sri or len(data) != size:
        raise ViewerBundleMissing(f"{path} does not match its manifest: rebuild with `make viewer`")
    return path


@cache
def bundle() -> ViewerBundle:
    """The bundle of this installation, read once per process."""
    return load_bundle()


def sri_of(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode("ascii")


async def handle_bundle(request: web.Request) -> web.StreamResponse:
    """``GET …/{file}``: the bundle or Spark's WebAssembly under its versioned name, cached
    forever (brotli or gzip where the browser accepts it); anything else 404s.

    Mount as ``app.router.add_get("/viewer/{file}", handle_bundle)``.
    """
    try:
        b = bundle()
    except ViewerBundleMissing as exc:
        raise web.HTTPServiceUnavailable(text=str(exc)) from exc
    name = request.match_info.get("file")
    if name == b.file:
        path, content_type = b.path, "text/javascript; charset=utf-8"
    elif name == b.wasm.file:
        # compileStreaming refuses any other type
        path, content_type = b.wasm.path, "application/wasm"
    else:
        raise web.HTTPNotFound(text="no such viewer file")
    return web.FileResponse(
        path,
        headers={
            "Cache-Control": IMMUTABLE,
            "Content-Type": content_type,
            # a module script, and the fetch of its WebAssembly, from another origin need CORS
            "Access-Control-Allow-Origin": "*",
            "X-Content-Type-Options": "nosniff",
        },
    )


def _attr(name: str, value: str | None) -> str:
    return "" if value is None else f' {name}="{html.escape(value, quote=True)}"'


def viewer_tag(
    *,
    object_id: str | None = None,
    api_base: str | None = None,
    key: str | None = None,
    src: str | None = None,
    config: str | None = None,
    poster: str | None = None,
    options: dict[str, str] | None = None,
) -> str:
    """A ``<foto3d-viewer>`` element: either the gateway's model (object_id + api_base + key) or a
    direct ``src`` (with an optional ``config`` URL or inline JSON). ``options`` are further
    attributes (``background``, ``auto-rotate``, ``formats``, ``up``)."""
    attrs = (
        _attr("model", object_id)
        + _attr("api", api_base)
        + _attr("key", key)
        + _attr("src", src)
        + _attr("config", config)
        + _attr("poster", poster)
    )
    for name, value in sorted((options or {}).items()):
        if not name.replace("-", "").isalnum():
            raise ValueError(f"not an attribute name: {name!r}")
        attrs += _attr(name, value)
    return f"<foto3d-viewer{attrs}></foto3d-viewer>"


def script_tag(bundle_url: str, sri: str) -> str:
    """The bundle's module script, and a preload of Spark's WebAssembly beside it (when
    ``bundle_url`` names this installation's bundle) so that the two download together."""
    return (
        f'<script type="module" src="{html.escape(bundle_url, quote=True)}"'
        f' integrity="{html.escape(sri, quote=True)}" crossorigin="anonymous"></script>'
    ) + wasm_preload_tag(bundle_url)


def wasm_preload_tag(bundle_url: str) -> str:
    """``<link rel=preload>`` for the WebAssembly the bundle at ``bundle_url`` fetches.

    Without it the file would be asked for only once the bundle had arrived and run. The link
    matches the bundle's own fetch (CORS, same-origin credentials), so the browser downloads it
    once; the fetch checks its ``integrity`` (Chromium ignores, with a console warning,
    ``integrity`` on a preload of this kind)."""
    try:
        b = bundle()
    except ViewerBundleMissing:
        return ""
    head, _, last = bundle_url.rpartition("/")
    if unquote(last) != b.file:
        return ""
    href = f"{head}/{quote(b.wasm.file)}"
    return (
        f'<link rel="preload" href="{html.escape(href, quote=True)}" as="fetch" type="application/wasm"'
        ' crossorigin="anonymous">'
    )


# Starts the model's download while the bundle is still on its way: without it the page asked
# the API for the model only once the bundle had arrived and run (on a throttled phone, 15 s in,
# the 3 MB bundle then the model, one after the other). It runs where it stands, right after a
# <foto3d-viewer model=… api=…> element, asks the API as the viewer would (the same URL, the
# same first file in a format the viewer reads) and leaves both responses on the element, which
# the viewer takes instead of asking again: the API and the file are each requested once. The
# file's link (presigned or the gateway's) is fetched exactly as the viewer fetches it.
EARLY_FETCH_JS = (
    "(()=>{const v=document.currentScript.previousElementSibling;"
    "if(!v||v.localName!=='foto3d-viewer'||v.getAttribute('src'))return;"
    "const a=v.getAttribute('api'),m=v.getAttribute('model');if(!a||!m)return;"
    "const formats=v.getAttribute('formats')||'" + EMBED_DEFAULT_FORMATS + "',"
    "p=new URLSearchParams({formats}),k=v.getAttribute('key');if(k)p.set('key',k);"
    "const url=`${a.replace(/\\/+$/,'')}/v1/models/${encodeURIComponent(m)}?${p}`,"
    "api=fetch(url,{credentials:'omit'}),wanted=formats.split(',');"
    "const file=api.then(r=>r.ok?r.clone().json():null).then(b=>{"
    "const f=b&&Array.isArray(b.files)&&b.files.find(f=>f&&typeof f.url==='string'&&wanted.includes(f.format));"
    "return f?{url:f.url,response:fetch(f.url,{credentials:'same-origin'})}:null});"
    "api.catch(()=>{});file.catch(()=>{});v.foto3dEarly={url,api,file}})()"
)


def early_fetch_script() -> str:
    """The inline script that starts the model's download at once (put it right after the
    element); the viewer works the same without it, only later."""
    return f"<script>{EARLY_FETCH_JS}</script>"


def embed_snippet(*, object_id: str, api_base: str, key: str, bundle_url: str, sri: str) -> str:
    """What a customer pastes into a page: the pinned module, the element, and the inline script
    that starts the model's download while the module loads."""
    tag = viewer_tag(
        object_id=object_id, api_base=api_base, key=key, options={"formats": EMBED_DEFAULT_FORMATS}
    )
    sized = tag.replace("><", ' style="display:block;width:100%;height:480px"><', 1)
    return f"{script_tag(bundle_url, sri)}\n{sized}{early_fetch_script()}"


def iframe_snippet(*, embed_url: str) -> str:
    """The iframe alternative: the gateway's ``/embed/{object_id}?key=…`` page."""
    return (
        f'<iframe src="{html.escape(embed_url, quote=True)}" width="800" height="600"'
        ' style="border:0" allow="fullscreen" loading="lazy"></iframe>'
    )


def embed_page_html(
    *,
    object_id: str,
    api_base: str,
    key: str,
    bundle_url: str,
    sri: str,
    options: dict[str, str] | None = None,
    poster_url: str | None = None,
) -> str:
    """The whole-page viewer behind ``/embed/{object_id}?key=…`` (for iframes).

    ``poster_url``, when the server knows it, is drawn by the page itself so it appears before
    the bundle has even been parsed."""
    tag = viewer_tag(object_id=object_id, api_base=api_base, key=key, poster=poster_url, options=options)
    title = html.escape(object_id)
    # The bundle refused (a busy shared address) or not loadable: the viewer's own card instead
    # of an empty frame, and the reason for the developer. A module script's error event comes
    # after the document is parsed, so the card is there to show.
    onerror = (
        "document.querySelector('.f3d-card').hidden=false;"
        "console.warn('foto3d embed: the viewer bundle could not be loaded')"
    )
    script = script_tag(bundle_url, sri).replace("></script>", f' onerror="{onerror}"></script>', 1)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="strict-origin-when-cross-origin">
<title>{title}</title>
<style>html,body{{margin:0;height:100%;background:#eef0f3}}foto3d-viewer{{position:fixed;inset:0;height:auto}}
.f3d-card{{position:fixed;inset:0;display:flex;flex-direction:column;align-items:center;justify-content:center;
gap:6px;font:15px system-ui,sans-serif;color:#555;background:#f4f5f7}}.f3d-card[hidden]{{display:none}}</style>
{script}
</head><body>
{tag}{early_fetch_script()}
<div class="f3d-card" role="status" hidden><strong>Not available</strong><span>This model cannot be shown right now.</span></div>
</body></html>
"""


def bundle_url(prefix: str = "/viewer/") -> str:
    return prefix + quote(bundle().file)


def json_attr(value: object) -> str:
    """A config object as the text of a ``config`` attribute (inline JSON)."""
    return json.dumps(value, separators=(",", ":"))
