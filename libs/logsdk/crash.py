"""Make a dying process say why: uncaught exceptions, SIGTERM, non-zero ``sys.exit``.

Each becomes a CRITICAL record that is flushed (or spooled) before the process
goes. What cannot be seen from inside: SIGKILL (the OOM killer), ``os._exit``,
a crash of the interpreter itself, and ``raise SystemExit(n)`` written out
instead of ``sys.exit(n)``; ``foto3d run`` sees every one of those from outside.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import traceback
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any, NoReturn

from foto3d.proto.logs import Level

if TYPE_CHECKING:
    from foto3d.libs.logsdk.shipper import LogShipper

CRASH_LOGGER = "foto3d.crash"
CRASH_FLUSH_TIMEOUT = 5.0


def install_crash_hooks(shipper: LogShipper) -> None:
    _hook_excepthook(shipper)
    _hook_thread_excepthook(shipper)
    _hook_sys_exit(shipper)
    _hook_sigterm(shipper)


def _hook_excepthook(shipper: LogShipper) -> None:
    previous = sys.excepthook

    def excepthook(tp: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        try:
            if issubclass(tp, KeyboardInterrupt):
                msg = "interrupted (KeyboardInterrupt); the process exits"
            else:
                msg = f"uncaught exception, the process exits: {tp.__name__}: {value}"
            text = "".join(traceback.format_exception(tp, value, tb))
            shipper.emit(int(Level.CRITICAL), msg, logger=CRASH_LOGGER, exc=text)
            shipper.flush(CRASH_FLUSH_TIMEOUT, wait_for_reconnect=False)
        finally:
            previous(tp, value, tb)

    sys.excepthook = excepthook


def _hook_thread_excepthook(shipper: LogShipper) -> None:
    previous = threading.excepthook

    def thread_excepthook(args: threading.ExceptHookArgs) -> None:
        try:
            if args.exc_type is not SystemExit:
                name = args.thread.name if args.thread is not None else "?"
                msg = f"uncaught exception in thread {name}: {args.exc_type.__name__}: {args.exc_value}"
                text = "".join(traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback))
                shipper.emit(int(Level.CRITICAL), msg, logger=CRASH_LOGGER, exc=text)
                shipper.flush(CRASH_FLUSH_TIMEOUT, wait_for_reconnect=False)
        finally:
            previous(args)

    threading.excepthook = thread_excepthook


def _hook_sys_exit(shipper: LogShipper) -> None:
    """``atexit`` cannot see the exit status, so record it where ``sys.exit`` is called."""
    previous = sys.exit

    def exit(status: Any = None, /) -> NoReturn:
        if status not in (None, 0) and threading.current_thread() is threading.main_thread():
            shown = status if isinstance(status, int) else f"1 ({status})"
            shipper.emit(int(Level.CRITICAL), f"the process exits with status {shown}", logger=CRASH_LOGGER)
        previous(status)

    sys.exit = exit


def _hook_sigterm(shipper: LogShipper) -> None:
    """Only where the app has no SIGTERM handler of its own, and only from the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        shipper.emit(int(Level.CRITICAL), "terminated by signal SIGTERM", logger=CRASH_LOGGER)
        shipper.close(CRASH_FLUSH_TIMEOUT)
        # Die of the same signal, so the parent sees the usual status (128+15).
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    signal.signal(signal.SIGTERM, on_sigterm)
