"""Child processes that do not outlive their parent.

``die_with_parent(sig)`` returns a ``preexec_fn`` that asks Linux to send
``sig`` to the child when the process that started it dies (even by SIGKILL),
via ``prctl(PR_SET_PDEATHSIG)``. Elsewhere it returns None and nothing changes.
Used for trainer pipeline steps (a killed trainer must not leave a training
run behind) and for trainers started by the local scaler.
"""

from __future__ import annotations

import ctypes
import signal
import sys
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGKILL) -> Callable[[], None] | None:
    if not sys.platform.startswith("linux"):
        return None

    def _preexec() -> None:  # pragma: no cover - runs in the child
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(sig))
        except Exception:
            pass

    return _preexec
