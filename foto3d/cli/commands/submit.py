"""`foto3d submit`: ask the queue to train a dataset."""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from typing import Any

import msgspec
import nats.errors

from foto3d.cli.common import add_actor_option, connect_cli, fail, run_async, settings_from, system_options
from foto3d.cli.registration import registration_problem
from foto3d.libs.heartbeat import waiting_note
from foto3d.proto import subjects
from foto3d.proto.api import ServiceError
from foto3d.proto.jobs import (
    DEFAULT_KEEP,
    DEFAULT_SH_DEGREE,
    SUBMIT,
    Priority,
    SubmitReply,
    SubmitRequest,
    job_id_for,
    readable_decode_error,
)

ORDER = 20


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "submit",
        parents=[system_options()],
        help="submit a dataset for training",
        description=(
            "Submit a dataset for training. The queue checks the object id against the naming "
            "standard, that the dataset exists, and the options' ranges, and answers with the job id. "
            "The same object + dataset + options submitted again while an earlier job is queued, "
            "running or succeeded returns that job (marked duplicate) instead of a new one. "
            "The catalog is asked first: an unregistered object or unknown customer is refused with "
            "the command that registers it. "
            "Exit status (the one list of them): 0 accepted; 1 no queue service is running or it did "
            "not answer in time; 2 refused (the reason is printed) or NATS not reachable."
        ),
    )
    p.add_argument("--object", required=True, metavar="ID", help="object id, e.g. acme-chair-001")
    p.add_argument(
        "--dataset",
        required=True,
        metavar="URI",
        help="dataset folder (path or file://, as the trainers see it) or s3://bucket/prefix",
    )
    p.add_argument(
        "--priority",
        choices=[p.value for p in Priority],
        default="normal",
        help="vip work is taken before normal work (default normal)",
    )
    p.add_argument("--steps", type=int, metavar="N", help="training iterations (100..1000000; default 30000)")
    p.add_argument(
        "--reduce-keep",
        type=float,
        metavar="F",
        help=f"fraction of gaussians kept (0..1; default {DEFAULT_KEEP:g})",
    )
    p.add_argument(
        "--reduce-iterations",
        type=int,
        metavar="N",
        help="prune + fine-tune rounds (0..10): accepted but not done yet, the trainer only prunes "
        "and its log says so (docs/trainer.md); tune --reduce-keep instead",
    )
    p.add_argument("--no-reduce", action="store_true", help="skip splat reduction")
    p.add_argument(
        "--sh-degree",
        type=int,
        metavar="N",
        help=f"spherical-harmonics degree (0..3; default {DEFAULT_SH_DEGREE})",
    )
    p.add_argument("--force", action="store_true", help="train again even if the same training exists")
    p.add_argument(
        "--durable",
        action="store_true",
        help="publish to the SUBMISSIONS stream instead of asking the queue directly (works while no "
        "queue instance runs; the job id is printed at once, problems go to the dead-letter stream)",
    )
    p.add_argument("--request-id", metavar="ID", help="idempotency key; the same key never makes two jobs")
    p.add_argument("--json", action="store_true", help="print the reply as JSON")
    p.add_argument("--timeout", type=float, default=15.0, metavar="S", help="seconds to wait for the queue")
    add_actor_option(p, "recorded as the job's submitter")
    p.set_defaults(func=cmd_submit)


def _dataset(uri: str) -> str:
    # The queue and the trainers run elsewhere: send an absolute path.
    return uri if "://" in uri else os.path.abspath(os.path.expanduser(uri))


def build_request(args: argparse.Namespace) -> SubmitRequest:
    """The request from the options; raises ValueError with a readable message."""
    options: dict[str, Any] = {}
    for name in ("steps", "reduce_keep", "reduce_iterations", "sh_degree"):
        value = getattr(args, name)
        if value is not None:
            options[name] = value
    if args.no_reduce:
        options["reduce"] = False
    raw = {
        "object_id": args.object,
        "dataset": _dataset(args.dataset),
        "priority": args.priority,
        "options": options,
        "submitted_by": args.actor,
        "request_id": args.request_id or uuid.uuid4().hex,
        "force": args.force,
    }
    try:
        return msgspec.convert(raw, SubmitRequest)
    except msgspec.ValidationError as exc:
        raise ValueError(readable_decode_error(exc)) from exc


def cmd_submit(args: argparse.Namespace) -> int:
    if args.timeout <= 0:
        return fail(f"--timeout must be a positive number of seconds, got {args.timeout:g}")
    try:
        req = build_request(args)
    except ValueError as exc:
        return fail(str(exc))
    settings = settings_from(args)

    async def main() -> int:
        bus = await connect_cli(settings)
        try:
            if problem := await registration_problem(bus, req.object_id, args.timeout):
                return fail(problem)
            if args.durable:
                assert req.request_id is not None
                await bus.publish(subjects.JOB_SUBMIT, req, msg_id=req.request_id, deadline=args.timeout)
                reply = SubmitReply(job_id=job_id_for(req.request_id))
            else:
                try:
                    reply = await bus.call(SUBMIT, req, timeout=args.timeout)
                except ServiceError as exc:
                    if args.json:
                        sys.stdout.write(
                            msgspec.json.encode({"ok": False, "error": exc.description}).decode() + "\n"
                        )
                    return fail(exc.description)
                except nats.errors.NoRespondersError:
                    return fail("no queue service is running (use --durable to leave it in the stream)", 1)
                except (TimeoutError, nats.errors.TimeoutError):
                    return fail(f"the queue did not answer within {args.timeout:g} s", 1)
            # A job nobody can take must not look fine: say so now, not only in an alert later.
            note = None if args.durable or reply.duplicate else await waiting_note(bus.js, time.time())
        finally:
            await bus.close()
        if args.json:
            out = {"ok": True, **msgspec.to_builtins(reply), **({"waiting": note} if note else {})}
            sys.stdout.write(msgspec.json.encode(out).decode() + "\n")
        else:
            if args.durable:
                print(f"{reply.job_id} submitted to the SUBMISSIONS stream (request {req.request_id})")
            elif reply.duplicate:
                state = reply.state.value if reply.state else "?"
                print(f"{reply.job_id} already exists ({state}); not submitted again (--force to retrain)")
            else:
                print(f"{reply.job_id} queued ({req.priority.value})")
                if note:
                    print(f"  {note}")
        return 0

    return run_async(main)
