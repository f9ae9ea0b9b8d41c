"""The customer API against a running gateway: models, signed links, statuses, credentials."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import aiohttp
import msgspec
import pytest

from foto3d.libs.splat.formats import registry
from foto3d.proto.api import BAD_REQUEST, NOT_FOUND, ServiceError
from foto3d.proto.gateway import (
    TOKENS_ISSUE,
    TOKENS_LIST,
    TOKENS_REVOKE,
    CredentialKind,
    IssueRequest,
    ListRequest,
    ModelReply,
    RevokeRequest,
)
from foto3d.proto.objects import LiveStatus, ObjectRegistered
from foto3d.services.token_gateway.objects import SPLAT_FORMATS
from testkit.waiting import eventually
from tests.token_gateway.helpers import ORIGIN, Gateway, get

OID = "acme-desk-lamp-001"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_model_reply_and_signed_links(gateway: Gateway) -> None:
    contents = await gateway.publish_model(OID)
    token = await gateway.issue("acme")
    async with aiohttp.ClientSession() as s:
        st, body, _ = await get(s, f"{gateway.url}/v1/models/{OID}", headers=bearer(token))
        assert st == 200, body
        reply = ModelReply(**{**body, "files": []})  # the shape the viewer codes against
        assert reply.object_id == OID and reply.name == "Desk lamp" and reply.status == "production"
        assert body["model_version"] == 1 and body["config"]["camera"] == {"fov": 50}
        assert [f["format"] for f in body["files"]] == ["spz", "sog", "ply"]  # smallest first
        assert body["expires_at"].endswith("Z")
        for f in body["files"]:
            st, data, _ = await get(s, f["url"])
            assert st == 200 and data == contents[f"{OID}.{f['format']}"]
            assert len(data) == f["bytes"]
        st, poster, _ = await get(s, body["poster_url"])
        assert st == 200 and poster == contents["thumbnail.png"]
        st, body, _ = await get(s, f"{gateway.url}/v1/models/{OID}?formats=ply,spz", headers=bearer(token))
        assert [f["format"] for f in body["files"]] == ["spz", "ply"]
        st, body, _ = await get(s, f"{gateway.url}/v1/models/{OID}?formats=gltf", headers=bearer(token))
        assert st == 400 and body["error"] == "bad_request"


async def test_no_customer_reply_names_the_dashboard(gateway: Gateway) -> None:
    """The published viewer.json links to staff addresses on the dashboard; customers get the
    gateway's own links in their place (config.files[].url, config.thumbnail), never the
    dashboard's address: not from the API, not from the embed page or its model answer."""
    await gateway.publish_model(OID)
    token = await gateway.issue("acme")
    key = await gateway.issue("acme", CredentialKind.PUBLISHABLE)
    dashboard = gateway.rt.http_url
    async with aiohttp.ClientSession() as s:
        st, body, _ = await get(s, f"{gateway.url}/v1/models/{OID}", headers=bearer(token))
        assert st == 200, body
        config = body["config"]
        links = {f["format"]: f["url"] for f in body["files"]}
        assert {f["format"]: f["url"] for f in config["files"]} == links
        assert config["thumbnail"] == body["poster_url"]
        # fewer formats asked for: the config lists only what the reply serves
        st, fewer, _ = await get(s, f"{gateway.url}/v1/models/{OID}?formats=spz", headers=bearer(token))
        assert [f["format"] for f in fewer["config"]["files"]] == ["spz"]
        st, page, _ = await get(s, f"{gateway.url}/embed/{OID}?key={key}", headers={"Referer": ORIGIN + "/p"})
        assert st == 200
        api = page.decode().split(' api="', 1)[1].split('"', 1)[0]
        st, embedded, _ = await get(s, f"{gateway.url}{api}/v1/models/{OID}")
        assert st == 200, embedded
        replies = {
            "model": msgspec.json.encode(body),
            "model?formats": msgspec.json.encode(fewer),
            "embed page": page,
            "embed model": msgspec.json.encode(embedded),
        }
        for name, data in replies.items():
            text = data.decode()
            assert dashboard not in text and "/customers/" not in text, f"{name}: {text[:400]}"


async def test_formats_are_the_registry_names(gateway: Gateway) -> None:
    """Every splat format reaches the customer under the format registry's one spelling, also
    the formats filter; a spelling outside the registry (the file suffix) is refused."""
    contents = await gateway.publish_model(OID, formats=("ply", "compressed-ply", "splat", "spz", "sog"))
    token = await gateway.issue("acme")
    assert set(SPLAT_FORMATS) == set(registry.NAMES)
    async with aiohttp.ClientSession() as s:
        st, body, _ = await get(s, f"{gateway.url}/v1/models/{OID}", headers=bearer(token))
        assert st == 200, body
        assert [f["format"] for f in body["files"]] == ["spz", "sog", "compressed-ply", "splat", "ply"]
        for f in body["files"]:
            st, data, _ = await get(s, f["url"])
            assert st == 200 and data == contents[f"{OID}{registry.get(f['format']).suffixes[0]}"]
        url = f"{gateway.url}/v1/models/{OID}?formats=compressed-ply,spz"
        st, body, _ = await get(s, url, headers=bearer(token))
        assert st == 200 and [f["format"] for f in body["files"]] == ["spz", "compressed-ply"]
        url = f"{gateway.url}/v1/models/{OID}?formats=compressed.ply"
        st, body, _ = await get(s, url, headers=bearer(token))
        assert st == 400 and body["error"] == "bad_request" and "compressed-ply" in body["message"]


async def test_not_found_alike(gateway: Gateway) -> None:
    await gateway.publish_model(OID)
    await gateway.publish_model("other-chair-001")
    await gateway.publish_model("acme-unlisted-002", status=LiveStatus.DISABLED)
    await gateway.event(
        ObjectRegistered(
            event_id="r9",
            object_id="acme-fresh-004",
            ts=1.0,
            customer="acme",
            display_name="Not published yet",
            slug="fresh",
            serial=4,
        )
    )
    await gateway.publish_model("acme-staging-003", status=LiveStatus.TEST)
    token = await gateway.issue("acme")
    scoped = await gateway.issue("acme", models=[OID])
    async with aiohttp.ClientSession() as s:
        answers = []
        for oid, tok in [
            ("acme-missing-009", token),
            ("other-chair-001", token),
            ("acme-unlisted-002", token),
            ("acme-fresh-004", token),
            ("acme-staging-003", token),
            ("acme-staging-003", scoped),
        ]:
            st, body, _ = await get(s, f"{gateway.url}/v1/models/{oid}", headers=bearer(tok))
            answers.append((st, body))
        assert all(a == (404, answers[0][1]) for a in answers), answers
        assert answers[0][1]["error"] == "not_found"
        # a test model is not found from a customer's ordinary site ...
        shop = await gateway.issue("acme", CredentialKind.PUBLISHABLE)
        st, body, _ = await get(
            s, f"{gateway.url}/v1/models/acme-staging-003", params={"key": shop}, headers={"Origin": ORIGIN}
        )
        assert (st, body) == (404, answers[0][1])
        # ... but shows from the staging origin, with a publishable key bound to it
        pk = await gateway.issue("acme", CredentialKind.PUBLISHABLE, origins=["https://staging.example.com"])
        st, body, _ = await get(
            s,
            f"{gateway.url}/v1/models/acme-staging-003",
            params={"key": pk},
            headers={"Origin": "https://staging.example.com"},
        )
        assert st == 200
        # its links work where an embed's viewer fetches them (the gateway's own origin) ...
        link = body["files"][0]["url"]
        assert "scope=test" in link
        assert (await get(s, link))[0] == 200
        # (same-origin GETs carry no Origin header; the Referer is the embed page)
        embed_page = f"{gateway.url}/embed/acme-staging-003"
        assert (await get(s, link, headers={"Referer": embed_page}))[0] == 200
        # ... and the scope cannot be added to a link given out for another model, nor removed
        _, prod, _ = await get(s, f"{gateway.url}/v1/models/{OID}", headers=bearer(token))
        assert (await get(s, prod["files"][0]["url"] + "&scope=test"))[0] == 403
        assert (await get(s, link.replace("&scope=test", "")))[0] == 403


async def test_publishable_key_origins_and_cors(gateway: Gateway) -> None:
    await gateway.publish_model(OID)
    pk = await gateway.issue("acme", CredentialKind.PUBLISHABLE)
    url = f"{gateway.url}/v1/models/{OID}"
    async with aiohttp.ClientSession() as s:
        st, body, headers = await get(s, url, params={"key": pk}, headers={"Origin": ORIGIN})
        assert st == 200 and headers["Access-Control-Allow-Origin"] == ORIGIN
        file_url = body["files"][0]["url"]
        st, _, headers = await get(s, file_url, headers={"Origin": ORIGIN})
        assert st == 200 and headers["Access-Control-Allow-Origin"] == ORIGIN
        st, _, _ = await get(s, file_url, headers={"Origin": "https://evil.example.net"})
        assert st == 403
        st, body, headers = await get(
            s, url, params={"key": pk}, headers={"Origin": "https://evil.example.net"}
        )
        assert st == 403 and body["error"] == "forbidden" and "Access-Control-Allow-Origin" not in headers
        st, _, _ = await get(s, url, params={"key": pk}, headers={"Referer": ORIGIN + "/products/lamp"})
        assert st == 200
        st, _, _ = await get(s, url, params={"key": pk})  # no origin at all: not from a page
        assert st == 403
        # a publishable key is not a bearer token, and a secret token never rides in a URL
        st, body, _ = await get(s, url, headers=bearer(pk))
        assert st == 401
        sk = await gateway.issue("acme")
        st, body, _ = await get(s, url, params={"key": sk}, headers={"Origin": ORIGIN})
        assert st == 401 and "never in a URL" in body["message"]


async def test_expired_revoked_tampered_credentials(gateway: Gateway) -> None:
    await gateway.publish_model(OID)
    url = f"{gateway.url}/v1/models/{OID}"
    short = await gateway.issue("acme", expires_in_days=1.5 / 86400)  # 1.5 s
    token = await gateway.issue("acme")
    async with aiohttp.ClientSession() as s:
        assert (await get(s, url, headers=bearer(short)))[0] == 200
        assert (await get(s, url, headers=bearer(token[:-1] + ("A" if token[-1] != "A" else "B"))))[0] == 401
        st, body, _ = await get(s, url, headers=bearer(token))
        link = body["files"][0]["url"]
        cid = token.split("_")[1]

        async def expired() -> bool:
            return (await get(s, url, headers=bearer(short)))[0] == 401

        await eventually(expired, "the short credential to expire", timeout=5.0)
        reply = await gateway.bus.call(TOKENS_REVOKE, RevokeRequest(credential_id=cid))
        assert reply.credential.revoked_at
        st, body, _ = await get(s, url, headers=bearer(token))
        assert st == 401 and "revoked" in body["message"]
        st, _, _ = await get(s, link)  # links handed out under a revoked credential stop too
        assert st == 403


async def test_signed_link_edits_and_expiry(gateway: Gateway) -> None:
    await gateway.publish_model(OID)
    await gateway.publish_model("acme-chair-002")
    token = await gateway.issue("acme")
    async with aiohttp.ClientSession() as s:
        _, body, _ = await get(s, f"{gateway.url}/v1/models/{OID}", headers=bearer(token))
        link = body["files"][0]["url"]
        parts = urlsplit(link)
        q = parse_qs(parts.query)
        base = f"{parts.scheme}://{parts.netloc}"
        assert (await get(s, link))[0] == 200
        edits = [
            link.replace(OID, "acme-chair-002"),  # another object, same signature
            link.replace(".spz", ".ply"),  # another file
            link.replace(f"exp={q['exp'][0]}", f"exp={int(q['exp'][0]) + 600}"),  # stretched
            link.replace("sig=", "sig=x"),
            f"{base}{parts.path}?exp={q['exp'][0]}&cid={q['cid'][0]}",  # no signature
        ]
        for edited in edits:
            assert (await get(s, edited))[0] in (403, 404), edited
        # a link signed with the gateway's own key but already expired
        svc = gateway.svc
        assert svc.parts is not None
        past = int(time.time()) - 1
        old = base + svc.parts.signer.sign(parts.path, past, q["cid"][0])
        st, body, _ = await get(s, old)
        assert st == 403 and "expired" in body["message"]
        too_long = base + svc.parts.signer.sign(parts.path, int(time.time()) + 86400, q["cid"][0])
        assert (await get(s, too_long))[0] == 403


async def test_disabled_mid_session_within_a_second(gateway: Gateway) -> None:
    await gateway.publish_model(OID)
    token = await gateway.issue("acme")
    url = f"{gateway.url}/v1/models/{OID}"
    async with aiohttp.ClientSession() as s:
        _, body, _ = await get(s, url, headers=bearer(token))
        link = body["files"][0]["url"]
        assert (await get(s, link))[0] == 200
        await gateway.status(OID, LiveStatus.DISABLED)

        async def both_refused() -> bool:
            return (await get(s, url, headers=bearer(token)))[0] == 404 and (await get(s, link))[0] == 404

        start = time.monotonic()
        await eventually(both_refused, "the disabled model to be refused", timeout=1.0)
        assert time.monotonic() - start < 1.0
        await gateway.status(OID, LiveStatus.DEMO)

        async def back() -> bool:
            return (await get(s, link))[0] == 200

        await eventually(back, "the model to come back", timeout=1.0)


async def test_traversal_and_bad_ids(gateway: Gateway) -> None:
    await gateway.publish_model(OID)
    token = await gateway.issue("acme")
    (gateway.published / "secret.txt").write_text("not for customers")
    async with aiohttp.ClientSession() as s:
        _, body, _ = await get(s, f"{gateway.url}/v1/models/{OID}", headers=bearer(token))
        q = urlsplit(body["files"][0]["url"]).query
        for path in [
            "/v1/models/ACME-Desk-001",
            "/v1/models/acme-desk-lamp-001%2F..%2F..",
            "/v1/models/..%2F..%2Fetc%2Fpasswd",
        ]:
            st, _, _ = await get(s, gateway.url + path, headers=bearer(token))
            assert st in (400, 404), path
        for path in [
            f"/v1/files/{OID}/v1/..%2F..%2F..%2Fsecret.txt",
            f"/v1/files/{OID}/v1/%2e%2e",
            f"/v1/files/{OID}/v1/viewer.json/../../../../secret.txt",
            "/v1/files/../../secret.txt",
        ]:
            async with s.get(gateway.url + path + "?" + q) as r:
                assert r.status in (400, 403, 404), path
                assert b"not for customers" not in await r.read()


async def test_oversized_headers_and_body(gateway: Gateway) -> None:
    token = await gateway.issue("acme")
    async with aiohttp.ClientSession() as s:
        st, _, _ = await get(s, f"{gateway.url}/healthz", headers={"X-Junk": "j" * 20_000})
        assert st == 400
        many = {f"X-H{i}": "v" for i in range(100)}
        st, _, _ = await get(s, f"{gateway.url}/healthz", headers=many)
        assert st == 400
        async with s.get(f"{gateway.url}/v1/usage", headers=bearer(token), data=b"x" * 100_000) as r:
            assert r.status in (400, 413)
        st, body, _ = await get(s, f"{gateway.url}/healthz")
        assert st == 200 and body["status"] == "ok"


async def test_api_refusals_are_micro_errors_and_record_nothing(gateway: Gateway) -> None:
    with pytest.raises(ServiceError) as refused:
        await gateway.bus.call(TOKENS_ISSUE, IssueRequest(customer="acme", kind=CredentialKind.PUBLISHABLE))
    assert refused.value.code == BAD_REQUEST and "at least one allowed origin" in refused.value.description
    with pytest.raises(ServiceError) as unknown:
        await gateway.bus.call(TOKENS_REVOKE, RevokeRequest(credential_id="0123456789abcdef"))
    assert unknown.value.code == NOT_FOUND
    listed = await gateway.bus.call(TOKENS_LIST, ListRequest(customer="acme", include_revoked=True))
    assert listed.credentials == []
