"""Fuzzing the token gateway from its own OpenAPI document with schemathesis (tests and bench).

The document the gateway serves is the contract; a copy of it gets one ``example`` per parameter
taken from real things (a published model, a signed file link, an embed pass), so the examples
phase reaches every operation's 200, and the generated phases start from there. Credentials go
in through schemathesis' own OpenAPI auth (one per security scheme), the publishable key's
origin as an ``Origin`` header on every request.

schemathesis runs as its own process (``st run``): its HTTP client must not share the event
loop of the gateway under test, and its report (with the seed to replay a failure) is what a
person reads when the run fails.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ALL_PHASES = ("examples", "coverage", "fuzzing", "stateful")
# A seed the suite always runs, so a regression is replayed exactly; each run adds a fresh one.
FIXED_SEED = 20260527


@dataclass(frozen=True)
class FuzzInputs:
    """Real values for the operations' parameters (operationId -> parameter -> value)."""

    base_url: str
    secret_token: str
    publishable_key: str
    origin: str
    examples: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class FuzzRun:
    seed: int
    returncode: int
    output: str
    seconds: float
    cpu_seconds: float  # of the schemathesis process (its children's rusage)

    @property
    def passed(self) -> bool:
        return self.returncode == 0


def with_examples(doc: dict[str, Any], examples: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A copy of ``doc`` whose parameters carry the given examples."""
    out = copy.deepcopy(doc)
    for item in out["paths"].values():
        for op in item.values():
            given = examples.get(op.get("operationId", ""), {})
            for p in op.get("parameters", []):
                if p["name"] in given:
                    p["example"] = given[p["name"]]
    return out


def one_loose(doc: dict[str, Any], examples: dict[str, dict[str, Any]], k: int) -> dict[str, Any]:
    """A copy of ``doc`` where the ``k``-th parameter of each operation is any string (or list
    of strings) and every other one is pinned to its example.

    The document's patterns steer generation towards what a client generated from it would send;
    here one parameter at a time carries what a stranger would (non-ASCII signatures, digits that
    ``str.isdigit`` admits and ``int`` refuses, huge numbers) inside an otherwise good request, so
    it reaches the deepest check that reads it. Run it with the ``not_a_server_error`` check
    alone: refusing such values is right, and no answer may be a 5xx."""
    out = copy.deepcopy(doc)
    for item in out["paths"].values():
        for op in item.values():
            given = examples.get(op.get("operationId", ""), {})
            for i, p in enumerate(op.get("parameters", [])):
                array = p["schema"].get("type") == "array"
                if i == k:
                    p["schema"] = (
                        {"type": "array", "items": {"type": "string"}} if array else {"type": "string"}
                    )
                elif p["name"] in given:
                    p["schema"] = {"enum": [given[p["name"]]]}
    return out


def max_parameters(doc: dict[str, Any]) -> int:
    return max(len(op.get("parameters", [])) for item in doc["paths"].values() for op in item.values())


def _toml_str(s: str) -> str:
    return json.dumps(s)  # a JSON string is a valid TOML basic string for these ASCII values


def config_toml(inputs: FuzzInputs) -> str:
    return "\n".join(
        [
            f"base-url = {_toml_str(inputs.base_url)}",
            "[headers]",
            f"Origin = {_toml_str(inputs.origin)}",
            "[auth.openapi.bearer]",
            f"bearer = {_toml_str(inputs.secret_token)}",
            "[auth.openapi.publishableKey]",
            f"api_key = {_toml_str(inputs.publishable_key)}",
            "",
        ]
    )


async def run_schemathesis(
    doc: dict[str, Any],
    inputs: FuzzInputs,
    workdir: Path,
    *,
    seed: int,
    max_examples: int,
    phases: tuple[str, ...] = ALL_PHASES,
    checks: str = "all",
    mode: str = "all",
    timeout_s: float = 600.0,
) -> FuzzRun:
    """One ``st run`` over ``doc`` (with ``inputs.examples``) against ``inputs.base_url``."""
    workdir.mkdir(parents=True, exist_ok=True)
    schema = workdir / "openapi.json"
    schema.write_text(json.dumps(with_examples(doc, inputs.examples)))
    config = workdir / "schemathesis.toml"
    config.write_text(config_toml(inputs))
    st = Path(sys.executable).parent / "st"
    args = [
        str(st),
        "--no-color",
        "--config-file",
        str(config),
        "run",
        str(schema),
        "--url",
        inputs.base_url,
        "--checks",
        checks,
        "--mode",
        mode,
        "--phases",
        ",".join(phases),
        "--max-examples",
        str(max_examples),
        "--seed",
        str(seed),
        "--workers",
        "1",
        "--suppress-health-check",
        "too_slow",  # a shared CI machine is slow at times; that is not the API's fault
    ]
    env = {**os.environ, "SCHEMATHESIS_TELEMETRY": "false", "COLUMNS": "120"}
    before = os.times()
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *args, cwd=workdir, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        proc.kill()
        out, _ = await proc.communicate()
        out += f"\n(schemathesis stopped after {timeout_s:g} s)".encode()
    after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return FuzzRun(
        seed=seed,
        returncode=proc.returncode if proc.returncode is not None else -1,
        output=out.decode(errors="replace"),
        seconds=time.monotonic() - started,
        cpu_seconds=cpu,
    )
