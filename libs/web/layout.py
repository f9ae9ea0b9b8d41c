"""Render a dashboard page inside the common frame."""

from __future__ import annotations

import html
from pathlib import Path

from aiohttp import web

from foto3d import __version__
from foto3d.libs.service import NavLink

STATIC_DIR = Path(__file__).parent / "static"
NAV_KEY: web.AppKey[list[NavLink]] = web.AppKey("f3d_nav", list)
TITLE = "foto3d"


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def render_page(
    request: web.Request,
    title: str,
    body: str,
    *,
    scripts: list[str] | None = None,
    active: str | None = None,
) -> web.Response:
    nav: list[NavLink] = request.app.get(NAV_KEY, [])
    path = active or request.path
    links = []
    for link in sorted(nav, key=lambda n: (n.order, n.title)):
        is_active = path == link.href or (link.href != "/" and path.startswith(link.href))
        cls = ' class="active"' if is_active else ""
        links.append(f'<a href="{esc(link.href)}"{cls}>{esc(link.title)}</a>')
    script_tags = "".join(
        f'<script src="{esc(s)}" defer></script>' for s in ["/static/f3d.js", *(scripts or [])]
    )
    doc = f"""<!doctype html>
<html lang="en"><head>
<meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)} · {TITLE}</title>
<link rel="stylesheet" href="/static/style.css">
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
{script_tags}
</head><body>
<header class="topbar"><a class="brand" href="/"><img src="/static/favicon.svg" alt="">foto3d</a>
<nav>{"".join(links)}</nav><span class="version">v{esc(__version__)}</span></header>
<main><h1>{esc(title)}</h1>
{body}
</main></body></html>"""
    return web.Response(text=doc, content_type="text/html")
