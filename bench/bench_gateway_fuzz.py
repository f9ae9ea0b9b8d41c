"""The token gateway fuzzed deeply from its own OpenAPI document, with staff's alerting watching.

The suite's run (tests/token_gateway/test_fuzz_openapi.py) is a dozen cases per operation; this
one is as many as asked (``--max-examples``, per operation and phase), against the gateway with
the log server and the notifier beside it, mailing a real SMTP server:

1. schemathesis over the document as served: every phase (examples, coverage, fuzzing,
   stateful), every check;
2. one parameter at a time loosened to any string, the others pinned to real values, checked
   for server errors only (what a stranger sends rather than what a generated client would).

Then it reports what staff would have seen: ERROR records in the log store, mails, the
gateway's health, and whether every request the gateway answered is in the access log.

    .venv/bin/python bench/bench_gateway_fuzz.py                      # 1,000 per operation
    .venv/bin/python bench/bench_gateway_fuzz.py --max-examples 200 --loose-examples 50 --seed 7
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import re
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import msgspec

from foto3d.app.registry import by_name
from foto3d.app.runtime import Runtime
from foto3d.libs.config import Settings
from foto3d.libs.nats_server import NatsServer
from foto3d.proto.gateway import ACCESS_LOG_SOURCE_KIND
from foto3d.proto.logs import LOG_QUERY, Level, LogQuery
from testkit.gateway_fuzz import FuzzRun, max_parameters, one_loose, run_schemathesis
from testkit.identities import auth_includes, use_session_identities
from testkit.servers import SmtpServer, free_port
from testkit.waiting import eventually
from tests.token_gateway.conftest import HIGH_LIMITS
from tests.token_gateway.helpers import Gateway, fuzz_inputs, get

PAGE = 500  # log records per query reply: access records are short, and a reply must fit a NATS message
NOTIFIER = """
[notifier]
group_wait = 0.25
repeat_interval = 3600
rate_limit_per_hour = 0
"""


class ErrorCount(logging.Handler):
    """ERROR records logged in this process (the services run here), whatever their logger."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _row(name: str, run: FuzzRun) -> None:
    failures = "0" if run.passed else "SOME"
    print(
        f"{name:<34} {_generated(run):>7} {failures:>8} {run.seconds:>7.1f} {run.cpu_seconds:>6.1f}",
        flush=True,
    )


def _generated(run: FuzzRun) -> int:
    m = re.search(r"(\d+) generated", run.output)
    return int(m.group(1)) if m else 0


async def _count(gw: Gateway, q: LogQuery) -> int:
    """Records matching ``q`` in the log store, page by page."""
    n, before = 0, None
    while True:
        page = await gw.bus.call(LOG_QUERY, msgspec.structs.replace(q, limit=PAGE, before=before))
        n += len(page.records)
        if page.next_before is None or not page.records:
            return n
        before = page.next_before


async def main(args: argparse.Namespace) -> int:
    seed = args.seed if args.seed is not None else random.randrange(2**31)
    logged_errors = ErrorCount()
    logging.basicConfig(level=logging.ERROR)  # strangers' bad requests are WARNINGs: not printed
    logging.getLogger().addHandler(logged_errors)
    with tempfile.TemporaryDirectory(prefix="f3d-bench-fuzz-") as tmp:
        root = Path(tmp)
        use_session_identities()  # authorization on, as a site runs
        nats = NatsServer(store_dir=root / "nats", port=free_port(), includes=auth_includes()).start()
        smtp = SmtpServer().start()
        data = root / "data"
        data.mkdir()
        (data / "foto3d.toml").write_text(NOTIFIER)
        os.environ["FOTO3D_SMTP_URL"] = smtp.url
        os.environ["FOTO3D_ALERT_TO"] = "ops@example.com"
        settings = Settings.load(data_dir=data, nats=nats.client_url, http_port=0)
        # links and passes outlive the run; one address sends everything, so no bucket or ban
        settings.raw["token_gateway"] = {"port": 0, "link_ttl_s": 3600, "max_link_ttl_s": 3600, **HIGH_LIMITS}
        names = ["log_collector", "notifier", "token_gateway"]
        rt = Runtime(settings, [nats.client_url], [by_name(n) for n in names], http=False)
        runs: list[tuple[str, FuzzRun]] = []
        try:
            await rt.start()
            gw = Gateway(rt=rt, bus=rt.buses["token_gateway"], published=data / "published")
            inputs = await fuzz_inputs(gw)
            async with aiohttp.ClientSession() as s:
                _, doc, _ = await get(s, f"{gw.url}/v1/openapi.json")
            work = root / "fuzz"
            print(
                f"seed {seed}, --max-examples {args.max_examples} (per operation and phase), "
                f"--loose-examples {args.loose_examples}, 1 worker"
            )
            print(f"{'run':<34} {'cases':>7} {'failures':>8} {'wall s':>7} {'CPU s':>6}", flush=True)
            run = await run_schemathesis(
                doc, inputs, work / "doc", seed=seed, max_examples=args.max_examples, timeout_s=3600
            )
            runs.append(("document, all phases and checks", run))
            _row(*runs[-1])
            for k in range(max_parameters(doc) if args.loose_examples else 0):
                run = await run_schemathesis(
                    one_loose(doc, inputs.examples, k),
                    inputs,
                    work / f"loose-{k}",
                    seed=seed + k,
                    max_examples=args.loose_examples,
                    phases=("fuzzing",),
                    checks="not_a_server_error",
                    mode="positive",
                    timeout_s=3600,
                )
                runs.append((f"parameter #{k} any string", run))
                _row(*runs[-1])
            parts = gw.svc.parts
            assert parts is not None
            access = parts.access

            async def flushed() -> bool:
                return (
                    not access.batches.pending
                    and await _count(gw, LogQuery(source_kind=ACCESS_LOG_SOURCE_KIND)) >= access.sent
                )

            await eventually(flushed, what="the access log in the log store", timeout=120)
            answered = access.sent + access.dropped
            logged = await _count(gw, LogQuery(source_kind=ACCESS_LOG_SOURCE_KIND))
            errors = await _count(gw, LogQuery(min_level=int(Level.ERROR)))
            await asyncio.sleep(2)  # the notifier's group wait, many times over: a mail would be out
            mails = len(smtp.inbox.messages)
            health = gw.svc.health().state
        finally:
            await rt.stop()
            smtp.stop()
            nats.stop()
    failed = any(not run.passed for _, run in runs)
    print(f"requests the gateway answered: {answered:,}; access records stored: {logged:,}")
    print(
        f"ERROR records: {errors} in the log store, {len(logged_errors.records)} logged in-process; "
        f"mails to staff: {mails}; gateway health: {health}"
    )
    for name, run in runs:
        if not run.passed:
            print(f"\n--- {name} ---\n{run.output[-8000:]}", file=sys.stderr)
    bad = errors or logged_errors.records or mails or logged < answered or health != "ok"
    return 1 if failed or bad else 0


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--max-examples", type=int, default=1000, help="cases per operation and phase")
    p.add_argument(
        "--loose-examples",
        type=int,
        default=200,
        help="cases per operation for each loosened parameter (0: skip those runs)",
    )
    p.add_argument("--seed", type=int, default=None, help="replay a run (default: a fresh seed, printed)")
    return p.parse_args()


if __name__ == "__main__":
    started = time.monotonic()
    code = asyncio.run(main(parse()))
    print(f"{time.monotonic() - started:.0f} s in all")
    sys.exit(code)
