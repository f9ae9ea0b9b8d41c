"""What every backend does: start a trainer, list ours, stop one."""

from __future__ import annotations

import abc

from foto3d.services.scaler.policy import LaunchRequest, Machine


class BackendError(RuntimeError):
    """A backend call failed; the message says which and why."""


class Backend(abc.ABC):
    name: str

    def unavailable(self) -> str | None:
        """Why no trainer can start here, or None when it can."""
        return None

    @abc.abstractmethod
    async def launch(self, req: LaunchRequest) -> Machine:
        """Start one trainer; idempotent per ``req.token``."""

    @abc.abstractmethod
    async def machines(self) -> list[Machine]:
        """Our trainers that are starting or running."""

    @abc.abstractmethod
    async def stop(self, machine_id: str) -> None:
        """Stop a trainer (a clean stop where the backend can; the job, if any, is handed back)."""

    async def close(self) -> None:
        """Release clients; trainers keep running unless the backend owns them as children."""
        return None

    def describe(self) -> str:
        return self.name
