"""`foto3d jobs`, `foto3d job ID`, `foto3d cancel ID`, `foto3d requeue ID`."""

from __future__ import annotations

import argparse
import sys
import time

import msgspec

from foto3d.cli.common import Unanswered, add_actor_option, fail, run_on_bus, settings_from, system_options
from foto3d.cli.job_results import job_results, result_lines
from foto3d.libs.bus.connection import Bus
from foto3d.libs.discovery import resolve_http_url
from foto3d.libs.heartbeat import waiting_note
from foto3d.proto.api import Api
from foto3d.proto.jobs import (
    CANCEL,
    GET,
    LIST,
    REQUEUE,
    JobActionReply,
    JobRef,
    JobsQuery,
    JobState,
    JobSummary,
)

ORDER = 21


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    states = ", ".join(s.value for s in JobState)
    p = sub.add_parser(
        "jobs",
        parents=[system_options()],
        help="list training jobs",
        description=f"List training jobs, newest first. States: {states}.",
    )
    p.add_argument(
        "--state",
        action="append",
        default=[],
        metavar="STATE",
        help="only jobs in this state (repeat or comma-separate for several)",
    )
    p.add_argument("--object", metavar="ID", help="only jobs of this object id")
    p.add_argument("--limit", type=int, default=50, metavar="N", help="at most N jobs (default 50)")
    p.add_argument("--json", action="store_true", help="print JSON (one object with jobs and counts)")
    p.set_defaults(func=cmd_jobs)

    p = sub.add_parser(
        "job",
        parents=[system_options()],
        help="show one job: state, progress, timeline and logs link",
        description="Show one job: its state, progress, the timeline of its events and a link to its logs.",
    )
    p.add_argument("job_id", metavar="ID", help="job id (as printed by `foto3d submit`)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_job)

    p = sub.add_parser(
        "cancel",
        parents=[system_options()],
        help="cancel a queued or running job",
        description="Cancel a job: queued work is withdrawn, a running trainer stops it.",
    )
    p.add_argument("job_id", metavar="ID", help="job id")
    p.add_argument("--reason", default="", help="why (shown in the job's timeline)")
    add_actor_option(p, "recorded in the job's timeline")
    p.set_defaults(func=cmd_cancel)

    p = sub.add_parser(
        "requeue",
        parents=[system_options()],
        help="give a dead, failed or cancelled job a fresh attempt",
        description="Queue a dead, failed or cancelled job again, with a fresh budget of retries.",
    )
    p.add_argument("job_id", metavar="ID", help="job id")
    add_actor_option(p, "recorded in the job's timeline")
    p.set_defaults(func=cmd_requeue)


QUEUE_TIMEOUT_S = 10.0
QUEUE_UNANSWERED = Unanswered(
    not_running="no queue service is running",
    no_answer=f"the queue did not answer within {QUEUE_TIMEOUT_S:.0f} s",
    code=1,
)


def _ago(ts: float | None) -> str:
    if not ts:
        return ""
    s = max(0.0, time.time() - ts)
    if s < 60:
        return f"{s:.0f}s ago"
    if s < 3600:
        return f"{s / 60:.0f}m ago"
    if s < 86400:
        return f"{s / 3600:.1f}h ago"
    return f"{s / 86400:.1f}d ago"


def _progress(j: JobSummary) -> str:
    if j.state == JobState.RUNNING and j.total:
        eta = f" eta {j.eta_s:.0f}s" if j.eta_s is not None else ""
        return f"{j.stage or ''} {100 * j.step / j.total:.0f}%{eta}".strip()
    if j.state == JobState.QUEUED and j.retry_at:
        return f"retry in {max(0.0, j.retry_at - time.time()):.0f}s"
    return j.stage or "" if j.state == JobState.RUNNING else ""


def cmd_jobs(args: argparse.Namespace) -> int:
    states: list[str] = [s.strip() for v in args.state for s in v.split(",") if s.strip()]
    try:
        query = msgspec.convert({"states": states, "object_id": args.object, "limit": args.limit}, JobsQuery)
    except msgspec.ValidationError as exc:
        if "$.limit" in str(exc):
            return fail(f"--limit must be a positive number, got {args.limit}")
        valid = ", ".join(s.value for s in JobState)
        return fail(f"bad filter ({exc}); states are: {valid}")

    async def run(bus: Bus) -> int:
        result = await bus.call(LIST, query, timeout=QUEUE_TIMEOUT_S)
        if args.json:
            sys.stdout.write(msgspec.json.encode(result).decode() + "\n")
            return 0
        if not result.jobs:
            print("no jobs match")
            return 0
        rows = [("JOB", "OBJECT", "STATE", "PRIO", "TRY", "CREATED", "PROGRESS / ERROR")]
        for j in result.jobs:
            note = _progress(j) or (j.error or "")
            rows.append(
                (
                    j.job_id,
                    j.object_id,
                    j.state.value,
                    j.priority.value,
                    f"{j.attempt}/{j.max_attempts}",
                    _ago(j.created),
                    note[:60],
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
        for r in rows:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1])
        counts = ", ".join(f"{k} {v}" for k, v in sorted(result.counts.items()))
        print(f"\n{counts}" + (f" · leader {result.leader}" if result.leader else " · no leader"))
        return 0

    return run_on_bus(args, run, QUEUE_UNANSWERED)


def cmd_job(args: argparse.Namespace) -> int:
    base = resolve_http_url(settings_from(args))

    async def run(bus: Bus) -> int:
        d = await bus.call(GET, JobRef(job_id=args.job_id), timeout=QUEUE_TIMEOUT_S)
        logs = f"{base}/logs?job={d.job.job_id}"
        results = await job_results(bus, d.job.object_id, d.job.job_id)
        if args.json:
            out = {**msgspec.to_builtins(d), "logs_url": logs, "results": msgspec.to_builtins(results)}
            sys.stdout.write(msgspec.json.encode(out).decode() + "\n")
            return 0
        j = d.job
        print(f"job       {j.job_id}")
        print(f"object    {j.object_id}")
        print(f"dataset   {j.dataset}")
        print(f"state     {j.state.value}  (attempt {j.attempt} of {j.max_attempts}, {j.priority.value})")
        if j.state is JobState.QUEUED and (note := await waiting_note(bus.js, j.created)):
            print(f"          {note}")
        if j.trainer:
            print(f"trainer   {j.trainer}")
        if prog := _progress(j):
            print(f"progress  {prog}")
        if j.error:
            print(f"error     {j.error}")
        for line in result_lines(results) if results else []:
            print(line)
        print(f"logs      {logs}")
        print("\ntimeline")
        for t in d.timeline:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t.ts))
            print(f"  {when}  #{t.attempt}  {t.type.removeprefix('job.'):<10} {t.text}")
        return 0

    return run_on_bus(args, run, QUEUE_UNANSWERED)


def _action(args: argparse.Namespace, command: Api[JobRef, JobActionReply], done: str) -> int:
    ref = JobRef(job_id=args.job_id, reason=getattr(args, "reason", ""), actor=args.actor)

    async def run(bus: Bus) -> int:
        reply = await bus.call(command, ref, timeout=QUEUE_TIMEOUT_S)
        print(f"{reply.job_id} {done}")
        return 0

    return run_on_bus(args, run, QUEUE_UNANSWERED)


def cmd_cancel(args: argparse.Namespace) -> int:
    return _action(args, CANCEL, "cancelled")


def cmd_requeue(args: argparse.Namespace) -> int:
    return _action(args, REQUEUE, "queued again")
