"""The documentation sites: customer docs (served by the token gateway at ``/docs/``) and the
internal handbook (on the dashboard at ``/handbook/``, behind staff sign-in).

Both are built with Material for MkDocs (``docs/dependencies.md`` says why) from the Markdown
we already keep: ``docs/customer/`` for customers, the rest of ``docs/`` for staff. Pages that
would go stale by hand are generated at build time: the customer API reference from the
gateway's OpenAPI document, and the viewer settings' JSON Schema from ``proto``.

Before building, every code sample is checked against what it shows: a ``foto3d …`` command
must parse with the CLI's own parser (so a renamed command or option fails), and an HTTP call
to ``/v1/…`` must name a path and method of the OpenAPI document. The MkDocs build itself runs
in strict mode, so a broken link or anchor between pages fails too.

    python -m foto3d.app.docsite            # both sites into build/docs/{customer,internal}
    python -m foto3d.app.docsite --out DIR
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from foto3d.libs.web.docsite import CUSTOMER, INTERNAL, REPO_ROOT
from foto3d.proto.registry import schema_of
from foto3d.proto.viewer import ViewerSettings

DOCS = REPO_ROOT / "docs"
CUSTOMER_DOCS = DOCS / "customer"
HTTP_METHODS = ("get", "post", "put", "patch", "delete")
SHELL_LANGS = {"console", "bash", "sh", "shell"}
FENCE_RE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```", re.M | re.S)
HTTP_LINE_RE = re.compile(r"\b(GET|POST|PUT|PATCH|DELETE)\s+(/v1/[^\s?\"'`]*)")
CURL_URL_RE = re.compile(r"https?://[^/\s\"']+(/v1/[^\s?\"'`]*)")


GITHUB_TOC = """- toc:
    slugify: !!python/object/apply:pymdownx.slugs.slugify
      kwds:
        case: lower
"""


class DocsError(Exception):
    """The sites cannot be built; the message lists every problem found."""


@dataclass(frozen=True)
class Site:
    name: str  # the folder under the output, and the serving section
    title: str
    nav: list[Any] | None  # None: MkDocs orders the pages itself


CUSTOMER_SITE = Site(
    CUSTOMER,
    "foto3d for customers",
    [
        {"Overview": "index.md"},
        {"Embedding the viewer": "embedding.md"},
        {"Viewer settings": ["viewer-settings.md", {"JSON Schema": "viewer-settings-schema.md"}]},
        {"Keys and origins": "keys-and-origins.md"},
        {"Your customer portal": "portal.md"},
        {"Webhooks": "webhooks.md"},
        {"API reference": "api.md"},
        {"Troubleshooting a blank viewer": "troubleshooting.md"},
    ],
)
INTERNAL_SITE = Site(INTERNAL, "foto3d handbook (staff)", None)


# -- generated pages ---------------------------------------------------------------------------


def openapi_document() -> dict[str, Any]:
    # Imported here: the gateway's document is needed only by the build.
    from foto3d.services.token_gateway.openapi import document

    return document("https://gateway.example.com")


def api_page(doc: dict[str, Any]) -> str:
    """The customer API reference, from the OpenAPI document (never written by hand)."""
    out = [
        "# API reference",
        "",
        f"Generated from the gateway's OpenAPI {doc.get('openapi', '')} document, which every gateway "
        "also serves at `GET /v1/openapi.json` ([download this version](openapi.json)).",
        "",
    ]
    for path, item in doc.get("paths", {}).items():
        for method in HTTP_METHODS:
            op = item.get(method)
            if op is None:
                continue
            out += [f"## `{method.upper()} {path}`", ""]
            if op.get("summary"):
                out += [str(op["summary"]), ""]
            if op.get("description"):
                out += [str(op["description"]), ""]
            params = [*item.get("parameters", []), *op.get("parameters", [])]
            if params:
                out += ["| parameter | in | required | description |", "|---|---|---|---|"]
                for p in params:
                    if "$ref" in p:
                        p = _resolve(doc, p["$ref"])
                    desc = str(p.get("description", "")).replace("\n", " ").replace("|", "\\|")
                    out.append(
                        f"| `{p.get('name')}` | {p.get('in')} | {'yes' if p.get('required') else 'no'} | {desc} |"
                    )
                out.append("")
            responses = op.get("responses", {})
            if responses:
                out += ["| status | meaning |", "|---|---|"]
                for code, r in responses.items():
                    if "$ref" in r:
                        r = _resolve(doc, r["$ref"])
                    desc = str(r.get("description", "")).replace("\n", " ").replace("|", "\\|")
                    out.append(f"| {code} | {desc} |")
                out.append("")
    return "\n".join(out) + "\n"


def _resolve(doc: dict[str, Any], ref: str) -> dict[str, Any]:
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return dict(node)


def viewer_schema_page(schema: dict[str, Any]) -> str:
    return (
        "# Viewer settings: JSON Schema\n\n"
        "The settings a viewer config may carry, as JSON Schema (generated from the product's "
        "contract; [download](viewer-settings.schema.json)).\n\n"
        "```json\n" + json.dumps(schema, indent=2, sort_keys=True) + "\n```\n"
    )


# -- code-sample checks ------------------------------------------------------------------------


def _shell_commands(block: str) -> list[str]:
    """The ``foto3d …`` command lines of a shell block (continuations joined, prompts dropped)."""
    joined = re.sub(r"\\\n\s*", " ", block)
    out = []
    for line in joined.splitlines():
        line = line.strip().removeprefix("$ ").strip()
        if line.startswith("foto3d "):
            out.append(line)
    return out


def check_cli_sample(line: str) -> str | None:
    """None when ``line`` (up to a pipe or redirection) parses with the CLI's parser, else why not."""
    from foto3d.cli.main import build_parser

    # A usage synopsis ("foto3d logs [--job ID] …") is checked up to its first optional part;
    # a shell substitution stands for one word; "..." and "…" stand for more of the same.
    line = line.split(" [", 1)[0]
    line = re.sub(r"\$\([^)]*\)", "X", line)
    try:
        argv = [a for a in shlex.split(line, comments=True)[1:] if a not in ("...", "…")]
    except ValueError as exc:
        return f"cannot split: {exc}"
    for i, a in enumerate(argv):
        if a in ("|", "&&", ";", ">", ">>", "2>&1") or a.endswith(";"):
            argv = argv[:i]
            break
    return _parses(build_parser(), argv)


def _parses(parser: argparse.ArgumentParser, argv: list[str]) -> str | None:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            parser.parse_args(argv)
        except SystemExit as exc:
            if exc.code not in (0, None):
                lines = err.getvalue().strip().splitlines()
                return lines[-1] if lines else "does not parse"
    return None


def _path_matches(template: str, path: str) -> bool:
    pattern = "^" + re.sub(r"\\\{[^}]+\\\}", r"[^/]+", re.escape(template)) + "$"
    return re.match(pattern, path) is not None


def check_http_sample(method: str, path: str, doc: dict[str, Any]) -> str | None:
    path = path.rstrip(".,);")
    for template, item in doc.get("paths", {}).items():
        if _path_matches(template, path):
            return None if method.lower() in item else f"{method} {path}: the API has no {method} there"
    return f"{method} {path}: no such path in the OpenAPI document"


def check_samples(page: Path, text: str, doc: dict[str, Any]) -> list[str]:
    """Every stale code sample of one page, as ``page: problem`` lines."""
    problems = []
    for m in FENCE_RE.finditer(text):
        lang, block = m.group(1).lower(), m.group(2)
        if lang in SHELL_LANGS or lang == "":
            for line in _shell_commands(block):
                why = check_cli_sample(line)
                if why:
                    problems.append(f"{page}: `{line}`: {why}")
        for method, path in HTTP_LINE_RE.findall(block):
            why = check_http_sample(method, path, doc)
            if why:
                problems.append(f"{page}: {why}")
        if lang in SHELL_LANGS or lang == "":
            for path in CURL_URL_RE.findall(block):
                why = check_http_sample("GET" if "-X" not in block else "POST", path, doc)
                if why:
                    problems.append(f"{page}: {why}")
    return problems


# -- staging and building ----------------------------------------------------------------------


def stage_customer(dest: Path, source: Path, doc: dict[str, Any]) -> None:
    shutil.copytree(source, dest, dirs_exist_ok=True)
    (dest / "api.md").write_text(api_page(doc), encoding="utf-8")
    (dest / "openapi.json").write_text(json.dumps(doc, indent=2), encoding="utf-8")
    schema = schema_of(ViewerSettings)
    (dest / "viewer-settings-schema.md").write_text(viewer_schema_page(schema), encoding="utf-8")
    (dest / "viewer-settings.schema.json").write_text(json.dumps(schema, indent=2), encoding="utf-8")


def stage_internal(dest: Path, source: Path) -> None:
    shutil.copytree(source, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns("customer"))
    schemas = sorted(p.name for p in (dest / "schemas").glob("*.json"))
    (dest / "schemas" / "index.md").write_text(
        "# JSON Schemas\n\nOne per message and API body of the contract (`proto`).\n\n"
        + "\n".join(f"- [{name}]({name})" for name in schemas)
        + "\n",
        encoding="utf-8",
    )
    if not (dest / "index.md").exists():
        pages = sorted(p.relative_to(dest).as_posix() for p in dest.glob("*.md"))
        links = "\n".join(f"- [{p.removesuffix('.md').replace('-', ' ')}]({p})" for p in pages)
        (dest / "index.md").write_text(
            "# foto3d handbook\n\nArchitecture, configuration, runbooks, the rig, failover: the "
            "documentation kept in the repository, for staff.\n\n" + links + "\n",
            encoding="utf-8",
        )


def mkdocs_config(site: Site, docs_dir: Path, out: Path) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "site_name": site.title,
        "docs_dir": str(docs_dir),
        "site_dir": str(out),
        "use_directory_urls": False,  # plain files: any static server (the gateway's) serves them
        "theme": {
            "name": "material",
            "features": ["navigation.sections", "search.highlight", "content.code.copy"],
        },
        "markdown_extensions": ["tables", "admonition", "attr_list", "toc", "pymdownx.superfences"],
        "plugins": ["search"],
        # Strict mode turns every one of these into a failed build.
        "validation": {
            "nav": {"omitted_files": "warn", "not_found": "warn", "absolute_links": "warn"},
            "links": {
                "not_found": "warn",
                "anchors": "warn",
                "absolute_links": "warn",
                "unrecognized_links": "warn",
            },
        },
    }
    if site.nav is not None:
        cfg["nav"] = site.nav
    return cfg


def build_site(site: Site, docs_dir: Path, out: Path, work: Path) -> None:
    config = work / f"mkdocs.{site.name}.yml"
    text = yaml.safe_dump(mkdocs_config(site, docs_dir, out))
    # Heading ids as GitHub makes them (where these pages are also read), so links written
    # against GitHub's anchors (`#queue--the-queue-service`) resolve here too.
    text = text.replace("\n- toc\n", "\n" + GITHUB_TOC)
    config.write_text(text, encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--clean", "-f", str(config)],
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        check=False,
    )
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if "WARNING" in ln or "ERROR" in ln]
        raise DocsError(f"the {site.name} site does not build:\n" + "\n".join(lines or [proc.stderr[-2000:]]))


def build(out: Path, docs: Path = DOCS) -> list[Path]:
    """Check every sample, then build both sites into ``out/customer`` and ``out/internal``."""
    doc = openapi_document()
    problems: list[str] = []
    for page in sorted(docs.rglob("*.md")):
        problems += check_samples(page.relative_to(docs), page.read_text(encoding="utf-8"), doc)
    if problems:
        raise DocsError("code samples that no longer match the CLI or the API:\n" + "\n".join(problems))
    built = []
    with tempfile.TemporaryDirectory(prefix="foto3d-docs-") as tmp:
        work = Path(tmp)
        stage_customer(work / "customer", docs / "customer", doc)
        stage_internal(work / "internal", docs)
        for site in (CUSTOMER_SITE, INTERNAL_SITE):
            build_site(site, work / site.name, out / site.name, work)
            built.append(out / site.name)
    return built


def main(argv: list[str] | None = None) -> int:
    from foto3d.libs.web.docsite import default_root

    ap = argparse.ArgumentParser(description="Build the customer docs and the staff handbook.")
    ap.add_argument("--out", type=Path, default=default_root(), help="output folder (default build/docs)")
    args = ap.parse_args(argv)
    try:
        for path in build(args.out):
            print(f"built {path}")
    except DocsError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
