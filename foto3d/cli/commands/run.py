"""`foto3d run`: run any command and ship every line it prints as a log record.

For programs that cannot attach the log SDK themselves (a legacy training
script, ``ns-train``): stdout and stderr are echoed to the terminal and shipped
line by line, with levels from :mod:`foto3d.libs.logsdk.lines`; the last record
gives the exit status, and ``foto3d run`` exits with the command's own status.
When the command fails, that record also carries its last stderr lines (as the
record's ``exc``), so an alert mail or a rig's panel says why in the command's own
words, not only that it failed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from typing import IO

from foto3d.cli.common import fail, settings_from, system_options
from foto3d.libs.discovery import resolve_nats_urls
from foto3d.libs.logsdk.lines import LineClassifier, Stream
from foto3d.libs.logsdk.shipper import LogShipper, safe_source_id
from foto3d.proto.logs import RUN_LOGGER, Level

ORDER = 20
# How long `run` waits, after the command ended, for a full disk or NATS to take what it holds.
DEFAULT_HOLD_S = 30.0
# A "line" longer than this without a newline is shipped in pieces; a progress bar
# that only redraws itself with \r keeps just its latest state.
MAX_LINE_BYTES = 64 * 1024
# A failed command's record carries this many of its last stderr lines, each cut to this
# length: enough for "motor stalled at 212 degrees" or a traceback's last frame and error.
STDERR_TAIL_LINES = 5
STDERR_TAIL_CHARS = 300
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)

EPILOG = """\
examples:
  foto3d run --job job-42 --object chair-01 -- python train.py --scene chair
  foto3d run --source rig-cam-3 --kind rig -- ./capture.sh
  FOTO3D_NATS_URL=nats://nats.lan:4222 foto3d run -- ns-train splatfacto --data /data/chair

The command runs in its own process group (so Ctrl-C reaches it exactly once, via
foto3d run) and gets no terminal input. Exit status: the command's own; 128+N
when a signal N ended it; 127 when it cannot be found; 126 when it cannot be run.
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "run",
        parents=[system_options()],
        help="run a command and ship its output lines as log records",
        description=(
            "Run COMMAND, echo its output, and ship every stdout/stderr line as a log record\n"
            "(errors and Python tracebacks at ERROR), then a record with the exit status.\n"
            "While NATS is unreachable the records wait in the on-disk spool."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--job", metavar="ID", help="job id for every record (the command sees it as FOTO3D_JOB_ID)"
    )
    p.add_argument(
        "--object", metavar="ID", help="object id for every record (the command sees it as FOTO3D_OBJECT_ID)"
    )
    p.add_argument(
        "--source",
        metavar="NAME",
        help="source id of the records (default COMMAND-HOST-PID); a fixed name keeps its seq across runs",
    )
    p.add_argument("--kind", default="script", help="source kind: script (default), rig, trainer, ...")
    p.add_argument("--quiet", action="store_true", help="do not echo the command's output to this terminal")
    p.add_argument(
        "--hold",
        type=float,
        default=DEFAULT_HOLD_S,
        metavar="SECONDS",
        help="when the disk is full, how long to wait after the command ends for the disk or NATS to take "
        f"the log records held in memory before counting them lost (default {DEFAULT_HOLD_S:g})",
    )
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARG ...]", help="what to run")
    p.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    cmd = list(args.command)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        return fail("no command given; usage: foto3d run [OPTIONS] -- COMMAND [ARG ...]")
    name = os.path.basename(cmd[0])
    if shutil.which(cmd[0]) is None:
        what = "no such file" if "/" in cmd[0] else "command not found"
        return fail(f"{cmd[0]}: {what}", 127)
    settings = settings_from(args)
    urls = resolve_nats_urls(settings)
    source = args.source or safe_source_id(f"{name}-{socket.gethostname()}-{os.getpid()}")
    try:
        shipper = LogShipper(
            args.kind,
            source,
            nats_urls=urls,
            data_dir=settings.data_dir,
            job_id=args.job,
            object_id=args.object,
            # Default ids contain the pid and are not reused soon: a clock-based seq suffices.
            persist_seq=bool(args.source),
        )
    except ValueError as exc:
        return fail(str(exc))
    env = dict(os.environ)
    env["FOTO3D_NATS_URL"] = ",".join(urls)
    if args.job:
        env["FOTO3D_JOB_ID"] = args.job
    if args.object:
        env["FOTO3D_OBJECT_ID"] = args.object
    try:
        status = asyncio.run(_supervise(cmd, env, shipper, echo=not args.quiet))
    finally:
        try:
            _wait_for_held(shipper, args.hold)
            delivered = shipper.close(10.0)
        except Exception as exc:  # the command's status matters more than our bookkeeping
            print(f"foto3d run: could not hand over the last log records: {exc}", file=sys.stderr)
            delivered = True
    stats = shipper.stats()
    if shipper.lost_at_exit:
        pass  # the shipper said how many, and where it could not write them
    elif not delivered:
        print(
            f"foto3d run: NATS did not take every log record yet; the rest wait in {shipper.spool_dir} "
            "and are sent by `foto3d up`, the next foto3d run or SDK user on this host",
            file=sys.stderr,
        )
    if stats["disk_lost_records"] and not shipper.lost_at_exit:
        print(
            f"foto3d run: {stats['disk_lost_records']} log record(s) were dropped while the disk was full; "
            "a loss record says so in the logs",
            file=sys.stderr,
        )
    return status


def _wait_for_held(shipper: LogShipper, hold_s: float) -> None:
    """Records that neither the disk nor NATS took die with this process: give them a while."""
    if hold_s <= 0 or shipper.wait_held(min(3.0, hold_s)):
        return  # all sent or on disk
    held = shipper.stats()["held_batches"]
    if not held:
        return  # in flight, not at risk: close() sends or spools it
    print(
        f"foto3d run: the disk is full; holding {held} batch(es) of log records in memory for up to "
        f"{hold_s:g}s until the disk or NATS takes them",
        file=sys.stderr,
    )
    shipper.wait_held(hold_s)


async def _supervise(cmd: list[str], env: dict[str, str], shipper: LogShipper, *, echo: bool) -> int:
    started = time.monotonic()
    shipper.emit(int(Level.INFO), f"starting: {shlex.join(cmd)}", logger=RUN_LOGGER)
    try:
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            stdin=subprocess.DEVNULL if sys.stdin.isatty() else None,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            process_group=0,
        )
    except (FileNotFoundError, PermissionError) as exc:
        status = 127 if isinstance(exc, FileNotFoundError) else 126
        shipper.emit(
            int(Level.ERROR), f"cannot run {cmd[0]}: {exc.strerror} (exit status {status})", logger=RUN_LOGGER
        )
        print(f"foto3d: error: {cmd[0]}: {exc.strerror}", file=sys.stderr)
        return status
    loop = asyncio.get_running_loop()
    if threading.current_thread() is threading.main_thread():
        for sig in FORWARDED_SIGNALS:
            loop.add_signal_handler(sig, _forward, proc, sig, shipper)
    classifier = LineClassifier()
    assert proc.stdout is not None and proc.stderr is not None
    out = sys.stdout.buffer if echo else None
    err = sys.stderr.buffer if echo else None
    tail = StderrTail()
    await asyncio.gather(
        _ship_stream(proc.stdout, "stdout", out, classifier, shipper),
        _ship_stream(proc.stderr, "stderr", err, classifier, shipper, tail),
    )
    rc = await proc.wait()
    took = time.monotonic() - started
    if rc < 0:
        status = 128 - rc
        try:
            signame = signal.Signals(-rc).name
        except ValueError:
            signame = f"signal {-rc}"
        shipper.emit(
            int(Level.ERROR),
            f"command killed by {signame} (exit status {status}) after {took:.1f}s: {cmd[0]}",
            logger=RUN_LOGGER,
            exc=tail.text(),
        )
        return status
    level = Level.INFO if rc == 0 else Level.ERROR
    shipper.emit(
        int(level),
        f"command exited with status {rc} after {took:.1f}s: {cmd[0]}",
        logger=RUN_LOGGER,
        exc=tail.text() if rc else None,
    )
    return rc


class StderrTail:
    """The command's last few stderr lines, each cut short: what a failure report quotes."""

    def __init__(self) -> None:
        self.lines: deque[str] = deque(maxlen=STDERR_TAIL_LINES)

    def feed(self, text: str) -> None:
        # split("\n"), not splitlines(): a progress bar's \r redraws one line, keep its last state
        for line in text.split("\n"):
            line = line.rsplit("\r", 1)[-1].rstrip()
            if line.strip():
                cut = len(line) - STDERR_TAIL_CHARS
                self.lines.append(line if cut <= 0 else line[:STDERR_TAIL_CHARS] + f" …[{cut} more chars]")

    def text(self) -> str | None:
        return "\n".join(self.lines) or None


def _forward(proc: asyncio.subprocess.Process, sig: signal.Signals, shipper: LogShipper) -> None:
    if proc.returncode is None:
        shipper.emit(int(Level.WARNING), f"forwarding {sig.name} to the command", logger=RUN_LOGGER)
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass


async def _ship_stream(
    reader: asyncio.StreamReader,
    stream: Stream,
    echo: IO[bytes] | None,
    classifier: LineClassifier,
    shipper: LogShipper,
    tail: StderrTail | None = None,
) -> None:
    def ship(raw: bytes) -> None:
        text = raw.decode("utf-8", "replace")
        if tail is not None:
            tail.feed(text)
        for rec in classifier.feed(text, stream):
            shipper.emit(rec.level, rec.message, logger=stream, exc=rec.exc, ts=rec.ts)

    buf = b""
    while True:
        chunk = await reader.read(65536)
        if not chunk:
            break
        if echo is not None:
            try:
                echo.write(chunk)
                echo.flush()
            except OSError:
                echo = None  # our terminal or pipe went away; keep shipping
        buf += chunk
        while (i := buf.find(b"\n")) >= 0:
            ship(buf[: i + 1])
            buf = buf[i + 1 :]
        if len(buf) > MAX_LINE_BYTES:
            cr = buf.rfind(b"\r")
            if cr > 0:
                buf = buf[cr:]  # a progress bar: only its latest state matters
            else:
                ship(buf)
                buf = b""
    if buf:
        ship(buf)
    for rec in classifier.flush(stream):
        shipper.emit(rec.level, rec.message, logger=stream, exc=rec.exc, ts=rec.ts)
