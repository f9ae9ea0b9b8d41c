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

import aiohttp
import pytest

from testkit.gateway_fuzz import FIXED_SEED, max_parameters, one_loose, run_schemathesis
from tests.token_gateway.helpers import Gateway, fuzz_inputs, get

MAX_EXAMPLES = 12  # per operation and phase; the bench runs thousands


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
