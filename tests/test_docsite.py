"""The documentation sites: both build in strict mode (links and anchors checked), a code sample
that no longer matches the CLI or the OpenAPI document fails the build, the gateway serves the
customer docs publicly and the dashboard serves the handbook only to signed-in staff."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from foto3d.app import docsite
from foto3d.libs.bus.connection import Bus
from foto3d.libs.config import Settings
from foto3d.libs.web.docsite import DOCS_DIR_ENV
from testkit.running import running_services
from tests.catalog.helpers import signed_in


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    out = tmp_path_factory.mktemp("docs")
    docsite.build(out)
    yield out


def test_both_sites_build_with_the_generated_pages(built: Path) -> None:
    customer, internal = built / "customer", built / "internal"
    assert (customer / "index.html").is_file() and (internal / "index.html").is_file()
    api = (customer / "api.html").read_text()
    assert "/v1/models/{object_id}" in api and "/v1/usage" in api  # from the OpenAPI document
    assert '"auto_rotate"' in (customer / "viewer-settings.schema.json").read_text()
    assert (internal / "architecture.html").is_file() and (internal / "runbooks").is_dir()
    # the sites stay apart: nothing internal in the customer site, nor in its search index
    assert not (customer / "architecture.html").exists()
    assert "runbook" not in (customer / "search" / "search_index.json").read_text().lower()


def _docs_copy(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    shutil.copytree(docsite.DOCS, docs)
    return docs


@pytest.mark.parametrize(
    ("sample", "why"),
    [
        ("```console\nfoto3d tokens issue acme --origin-list https://a.example\n```", "--origin-list"),
        ("```console\nfoto3d objects annotate acme-vase-001\n```", "annotate"),
        ("```http\nGET /v1/models/acme-vase-001/files\n```", "no such path"),
        ("```bash\ncurl https://GATEWAY/v1/customers\n```", "no such path"),
    ],
)
def test_a_sample_that_no_longer_matches_fails_the_build(tmp_path: Path, sample: str, why: str) -> None:
    docs = _docs_copy(tmp_path)
    page = docs / "customer" / "embedding.md"
    page.write_text(page.read_text() + "\n" + sample + "\n")
    with pytest.raises(docsite.DocsError) as err:
        docsite.build(tmp_path / "out", docs)
    assert "customer/embedding.md" in str(err.value) and why in str(err.value)


def test_a_broken_link_or_anchor_fails_the_build(tmp_path: Path) -> None:
    docs = _docs_copy(tmp_path)
    page = docs / "customer" / "index.md"
    page.write_text(page.read_text() + "\nSee [the settings](viewer-settings.md#no-such-part).\n")
    with pytest.raises(docsite.DocsError) as err:
        docsite.build(tmp_path / "out", docs)
    assert "no-such-part" in str(err.value)
    page.write_text(page.read_text().replace("#no-such-part", "").replace("viewer-settings.md", "gone.md"))
    with pytest.raises(docsite.DocsError) as err:
        docsite.build(tmp_path / "out", docs)
    assert "gone.md" in str(err.value)


def test_the_current_samples_parse() -> None:
    """What the build checks, on this repository's pages one by one (a failure names them)."""
    doc = docsite.openapi_document()
    problems = [
        p
        for page in sorted(docsite.DOCS.rglob("*.md"))
        for p in docsite.check_samples(page.relative_to(docsite.DOCS), page.read_text(), doc)
    ]
    assert problems == []


async def test_gateway_serves_customer_docs_and_the_dashboard_the_handbook_to_staff(
    built: Path, settings: Settings, bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DOCS_DIR_ENV, str(built))
    settings.raw["token_gateway"] = {"port": 0}
    async with running_services(settings, ["token_gateway", "catalog"], http=True) as rt:
        gw = next(s for s in rt.services if s.name == "token_gateway")
        listener = getattr(gw, "listener", None)
        assert listener is not None
        async with aiohttp.ClientSession() as anon:
            async with anon.get(listener.url + "/docs/") as r:
                assert r.status == 200 and "Embedding the viewer" in await r.text()
            async with anon.get(listener.url + "/docs/troubleshooting.html") as r:
                assert r.status == 200 and "blank viewer" in (await r.text()).lower()
            async with anon.get(listener.url + "/docs/../internal/index.html") as r:
                assert r.status == 404
            async with anon.get(listener.url + "/docs/nothing.html") as r:
                assert r.status == 404 and (await r.json())["error"] == "not_found"
            async with anon.get(listener.url + "/docs/%2E%2E/internal/index.html") as r:
                assert r.status == 404
            # The handbook is not on the customer listener, and the dashboard wants a sign-in.
            async with anon.get(listener.url + "/handbook/") as r:
                assert r.status == 404
            async with anon.get(rt.http_url + "/handbook/", allow_redirects=False) as r:
                assert r.status in (302, 401)
        s = await signed_in(rt, settings)
        async with s:
            async with s.get("/handbook/") as r:
                assert r.status == 200 and "foto3d handbook" in await r.text()
                assert r.headers["Cache-Control"].startswith("private")
            async with s.get("/handbook/runbooks/full-disk.html") as r:
                assert r.status == 200
            async with s.get("/handbook/nothing.html") as r:
                assert r.status == 404
