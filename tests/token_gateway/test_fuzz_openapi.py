"""schemathesis against the real gateway, driven by the gateway's own OpenAPI document.

Every phase (examples, coverage, fuzzing, stateful), every check, on a real nats-server with a
published model, a secret token, a publishable key with its origin, an embed pass and a signed
link, so every operation is reached past 401/403. Two runs: a fixed seed (a regression is
replayed exactly) and a fresh one (new ground each time; the seed is in the failure message).
The deeper run is ``bench/bench_gateway_fuzz.py``.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from yarl import URL

from foto3d.libs.viewer import assets
from foto3d.proto.gateway import CredentialKind
from foto3d.services.token_gateway import embed
from foto3d.services.token_gateway.links import expiry
from testkit.gateway_fuzz import FIXED_SEED, FuzzInputs, max_parameters, one_loose, run_schemathesis
from tests.token_gateway.helpers import ORIGIN, Gateway, get
from tests.token_gateway.test_models import OID, bearer

MAX_EXAMPLES = 12  # per operation and phase; the bench runs thousands


async def fuzz_inputs(gw: Gateway) -> FuzzInputs:
    """A published model and every credential, link and pass the document's operations take."""
    await gw.publish_model(OID)
    token = await gw.issue("acme")
    key = await gw.issue("acme", kind=CredentialKind.PUBLISHABLE)
    async with aiohttp.ClientSession() as s:
        st, body, _ = await get(s, f"{gw.url}/v1/models/{OID}", headers=bearer(token))
        assert st == 200, body
    link = URL(body["poster_url"])
    parts = gw.svc.parts
    assert parts is not None
    key_id = key.split("_")[1]
    embed_pass = embed.issue(parts.signer, OID, ORIGIN, key_id, expiry(parts.cfg.link_ttl_s))
    _, _, version, name = link.path.rsplit("/", 3)
    examples: dict[str, dict[str, Any]] = {
        "getModel": {"object_id": OID, "formats": ["ply", "spz"]},
        "getFile": {
            "object_id": OID,
            "version": int(version.removeprefix("v")),
            "name": name,
            **{k: link.query[k] for k in ("exp", "cid", "sig")},
        },
        "getUsage": {"since": "2026-01-01", "until": "2099-12-31", "object_id": OID},
        "embedPage": {"object_id": OID},
        "embedModel": {"pass": embed_pass, "object_id": OID, "formats": ["sog"]},
        "viewerBundle": {"file": assets.bundle().file},
    }
    return FuzzInputs(
        base_url=gw.url, secret_token=token, publishable_key=key, origin=ORIGIN, examples=examples
    )


SEEDS = pytest.mark.parametrize(
    "seed", [FIXED_SEED, random.randrange(2**31)], ids=["fixed-seed", "fresh-seed"]
)


@pytest.mark.timeout(400)
@SEEDS
async def test_schemathesis_finds_nothing(
    open_gateway: Gateway, tmp_path: Path, seed: int, caplog: pytest.LogCaptureFixture
) -> None:
    gw = open_gateway
    caplog.set_level(logging.WARNING)
    inputs = await fuzz_inputs(gw)
    async with aiohttp.ClientSession() as s:
        _, doc, _ = await get(s, f"{gw.url}/v1/openapi.json")
    run = await run_schemathesis(doc, inputs, tmp_path / "fuzz", seed=seed, max_examples=MAX_EXAMPLES)
    assert run.passed, (
        f"schemathesis failed with --seed {seed} (replay: the same seed):\n{run.output[-12000:]}"
    )
    # nothing it sent was a fault of the gateway's, nor logged as one
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    async with aiohttp.ClientSession() as s:
        st, health, _ = await get(s, f"{gw.url}/healthz")
        assert st == 200 and health["status"] == "ok"


@pytest.mark.timeout(400)
@SEEDS
async def test_any_string_in_any_parameter_is_never_a_server_error(
    open_gateway: Gateway, tmp_path: Path, seed: int, caplog: pytest.LogCaptureFixture
) -> None:
    """One parameter at a time is any string, in an otherwise good request: never a 5xx."""
    gw = open_gateway
    caplog.set_level(logging.WARNING)
    inputs = await fuzz_inputs(gw)
    async with aiohttp.ClientSession() as s:
        _, doc, _ = await get(s, f"{gw.url}/v1/openapi.json")
    for k in range(max_parameters(doc)):
        run = await run_schemathesis(
            one_loose(doc, inputs.examples, k),
            inputs,
            tmp_path / f"fuzz-{k}",
            seed=seed + k,
            max_examples=MAX_EXAMPLES * 2,
            phases=("fuzzing",),
            checks="not_a_server_error",
            mode="positive",
        )
        assert run.passed, (
            f"schemathesis failed with --seed {seed + k} (parameter #{k}):\n{run.output[-12000:]}"
        )
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
