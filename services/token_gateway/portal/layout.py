"""The portal's page frame: its own, self-contained (one inline stylesheet, no script), since the
customer listener serves none of the dashboard's files. Readable from a 420 px phone up:
tables scroll inside their own box, long values (keys, snippets) wrap."""

from __future__ import annotations

from aiohttp import web

from foto3d.libs.web.layout import esc

PORTAL = "/portal"
# Inline styles only; frames only of this origin (the preview); nothing may frame the portal.
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; frame-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

STYLE = """
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1d2330;background:#f3f5f8}
header{display:flex;flex-wrap:wrap;align-items:center;gap:.4em 1.2em;padding:.7em 1.2em;background:#1d2330;color:#fff}
header .brand{font-weight:600;color:#fff;text-decoration:none;margin-right:auto}
header nav{display:flex;flex-wrap:wrap;gap:.2em .9em;align-items:center}
header nav a{color:#cfd6e4;text-decoration:none}
header nav a.active{color:#fff;border-bottom:2px solid #6aa5ff}
header form{margin:0}
header button{background:none;border:1px solid #56607a;color:#cfd6e4;border-radius:6px;padding:.15em .6em;cursor:pointer}
main{max-width:1080px;margin:0 auto;padding:1em 1.2em 3em}
h1{font-size:1.45em;margin:.3em 0 .6em}
h2{font-size:1.1em;margin:0 0 .5em}
.panel{background:#fff;border:1px solid #dde2ea;border-radius:10px;padding:1em 1.1em;margin:0 0 1em;
  box-shadow:0 1px 2px rgba(20,30,50,.04)}
.muted{color:#667085}
.notice{background:#e8f4ea;border:1px solid #b9dcc0;border-radius:8px;padding:.6em .8em}
.error{background:#fdecea;border:1px solid #f1b8b2;border-radius:8px;padding:.6em .8em}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.4em .6em;border-bottom:1px solid #eef1f5;vertical-align:top}
th{font-weight:600;color:#4a5468;font-size:.9em}
code,pre{font:13px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace;background:#f3f5f8;border-radius:6px}
code{padding:.1em .3em;overflow-wrap:anywhere}
pre{padding:.7em;white-space:pre-wrap;overflow-wrap:anywhere;margin:.3em 0}
.badge{display:inline-block;padding:.05em .55em;border-radius:99px;font-size:.85em;background:#eef1f5}
.badge.production{background:#dff3e4;color:#17652b}.badge.demo{background:#e6efff;color:#1f4fa8}
.badge.test{background:#fff4d6;color:#7a5600}.badge.delivered{background:#dff3e4;color:#17652b}
.badge.disabled,.badge.revoked,.badge.expired,.badge.failed{background:#fde2e0;color:#9b1c13}
.badge.unpublished{background:#eef1f5;color:#596275}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(240px,1fr));gap:.8em}
.card{display:block;background:#fff;border:1px solid #dde2ea;border-radius:10px;padding:.8em 1em;color:inherit;text-decoration:none}
.card:hover{border-color:#6aa5ff}
.card .id{font-size:.85em;color:#667085;overflow-wrap:anywhere}
form.stack label{display:block;margin:.5em 0}
form.stack input,form.stack textarea{display:block;width:100%;max-width:420px;padding:.45em;border:1px solid #c8cfda;border-radius:6px;font:inherit}
button.primary{background:#2563eb;color:#fff;border:0;border-radius:6px;padding:.5em 1em;font:inherit;cursor:pointer}
button.danger{background:#fff;color:#b42318;border:1px solid #f1b8b2;border-radius:6px;padding:.3em .7em;cursor:pointer}
.preview{width:100%;aspect-ratio:4/3;max-height:520px;border:1px solid #dde2ea;border-radius:10px;background:#eef0f3}
svg.chart{width:100%;height:auto;display:block}
.legend span{margin-right:1em;white-space:nowrap}
.legend i{display:inline-block;width:.8em;height:.8em;border-radius:2px;margin-right:.3em;vertical-align:-.05em}
.narrow{max-width:440px}
"""


def nav_links(active: str) -> str:
    links = [
        ("Models", f"{PORTAL}/"),
        ("Viewer keys", f"{PORTAL}/keys"),
        ("Analytics", f"{PORTAL}/analytics"),
        ("Webhooks", f"{PORTAL}/webhooks"),
        ("Account", f"{PORTAL}/account"),
    ]
    out = []
    for title, href in links:
        on = active == href or (href != f"{PORTAL}/" and active.startswith(href))
        out.append(f'<a href="{href}"{" class=active" if on else ""}>{esc(title)}</a>')
    return "".join(out)


def page(
    request: web.Request, title: str, body: str, *, customer: str = "", status: int = 200
) -> web.Response:
    """One portal page; ``customer`` empty: a page for people not signed in (no navigation)."""
    if customer:
        head = (
            f'<header><a class="brand" href="{PORTAL}/">{esc(customer)} · 3D portal</a><nav>'
            f"{nav_links(request.path)}"
            f'<form method="post" action="{PORTAL}/logout"><button type="submit">Sign out</button></form>'
            "</nav></header>"
        )
    else:
        head = '<header><span class="brand">foto3d · customer portal</span></header>'
    doc = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="same-origin">
<title>{esc(title)} · foto3d portal</title><style>{STYLE}</style></head>
<body>{head}<main><h1>{esc(title)}</h1>
{body}
</main></body></html>"""
    resp = web.Response(text=doc, content_type="text/html", status=status)
    resp.headers["Content-Security-Policy"] = CSP
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["X-Frame-Options"] = "DENY"
    return resp


def redirect(location: str) -> web.Response:
    """A 303 returned, not raised: the listener's guard answers raised HTTP errors with JSON."""
    resp = web.Response(status=303, headers={"Location": location})
    resp.headers["Cache-Control"] = "no-store"
    return resp
