"""In S3 mode the gateway keeps the bucket's CORS rule equal to its publishable keys' origins.

Checked through the S3 API (GetBucketCors) against moto's server: moto answers a simple GET
with Access-Control-Allow-Origin whatever the rule says, so a browser on moto cannot tell a
missing rule; the preflight (OPTIONS) is the one request moto checks against the rule.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from botocore.exceptions import ClientError

from foto3d.libs.bus.connection import Bus
from foto3d.libs.config import Settings
from foto3d.proto.gateway import TOKENS_ISSUE, TOKENS_REVOKE, CredentialKind, IssueRequest, RevokeRequest
from foto3d.services.token_gateway.bucket_cors import RULE_ID
from testkit.running import running_services
from testkit.servers import MotoServer
from testkit.waiting import eventually

BUCKET = "models"
SHOP = "https://shop.example.com"
OTHER = "https://other-shop.example.org"


def _rules(moto: MotoServer) -> list[dict[str, Any]]:
    try:
        return [dict(r) for r in moto.client().get_bucket_cors(Bucket=BUCKET)["CORSRules"]]
    except ClientError:
        return []


def _origins(moto: MotoServer) -> list[str]:
    ours = [r for r in _rules(moto) if r.get("ID") == RULE_ID]
    return sorted(ours[0]["AllowedOrigins"]) if ours else []


async def _preflight(moto: MotoServer, origin: str) -> int:
    """What a browser asks before a non-simple cross-origin GET of a model file."""
    url = f"{moto.url}/{BUCKET}/site/models/x.spz"
    headers = {"Origin": origin, "Access-Control-Request-Method": "GET"}
    async with aiohttp.ClientSession() as s, s.options(url, headers=headers) as r:
        return r.status


def _s3_mode(settings: Settings, moto: MotoServer) -> None:
    moto.client().create_bucket(Bucket=BUCKET)
    settings.raw["publisher"] = {
        "bucket": BUCKET,
        "prefix": "site",
        "endpoint_url": moto.url,
        "region": "us-east-1",
    }
    settings.raw["token_gateway"] = {"port": 0}


async def test_the_rule_follows_the_keys_origins(settings: Settings, bus: Bus, moto: MotoServer) -> None:
    _s3_mode(settings, moto)
    assert await _preflight(moto, SHOP) == 200  # moto allows every origin while a bucket has no rule
    async with running_services(settings, ["token_gateway"], http=False):
        shop = await bus.call(
            TOKENS_ISSUE, IssueRequest(customer="acme", kind=CredentialKind.PUBLISHABLE, origins=[SHOP])
        )
        await eventually(
            lambda: _origins(moto) == [SHOP],
            "the shop's origin in the bucket's rule",
            timeout=20,
            interval=0.2,
        )
        other = await bus.call(
            TOKENS_ISSUE,
            IssueRequest(customer="globex", kind=CredentialKind.PUBLISHABLE, origins=[OTHER, SHOP]),
        )
        await eventually(
            lambda: _origins(moto) == sorted([SHOP, OTHER]), "both origins", timeout=20, interval=0.2
        )
        rule = next(r for r in _rules(moto) if r.get("ID") == RULE_ID)
        assert sorted(rule["AllowedMethods"]) == ["GET", "HEAD"]
        assert await _preflight(moto, OTHER) == 200

        # SHOP is still allowed by the first key: revoking the second drops OTHER only.
        await bus.call(TOKENS_REVOKE, RevokeRequest(credential_id=other.credential.credential_id))
        await eventually(
            lambda: _origins(moto) == [SHOP], "the revoked key's origin to leave", timeout=20, interval=0.2
        )
        assert await _preflight(moto, OTHER) == 403
        assert await _preflight(moto, SHOP) == 200

        # A secret token (for servers) adds no origin.
        await bus.call(TOKENS_ISSUE, IssueRequest(customer="acme", kind=CredentialKind.SECRET))
        await bus.call(TOKENS_REVOKE, RevokeRequest(credential_id=shop.credential.credential_id))
        await eventually(
            lambda: _rules(moto) == [], "no rule once no key allows an origin", timeout=20, interval=0.2
        )


async def test_the_operators_own_rules_are_kept(settings: Settings, bus: Bus, moto: MotoServer) -> None:
    _s3_mode(settings, moto)
    admin = {"ID": "ops-uploads", "AllowedOrigins": ["https://ops.example"], "AllowedMethods": ["PUT"]}
    moto.client().put_bucket_cors(Bucket=BUCKET, CORSConfiguration={"CORSRules": [admin]})  # type: ignore[list-item]
    async with running_services(settings, ["token_gateway"], http=False):
        shop = await bus.call(
            TOKENS_ISSUE, IssueRequest(customer="acme", kind=CredentialKind.PUBLISHABLE, origins=[SHOP])
        )
        await eventually(
            lambda: _origins(moto) == [SHOP],
            "the shop's origin in the bucket's rule",
            timeout=20,
            interval=0.2,
        )
        assert sorted(r["ID"] for r in _rules(moto)) == sorted(["ops-uploads", RULE_ID])
        await bus.call(TOKENS_REVOKE, RevokeRequest(credential_id=shop.credential.credential_id))
        await eventually(lambda: _origins(moto) == [], "the viewer rule to go", timeout=20, interval=0.2)
        assert [r["ID"] for r in _rules(moto)] == ["ops-uploads"]
