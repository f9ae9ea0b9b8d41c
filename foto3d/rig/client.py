"""The capture tool's API: log, submit a dataset with its reduction options, read status.

Everything goes to the rig's own server, which is always there, so each call returns
at once whether or not a site is reachable; the agent forwards later. Example in
docs/rig.md::

    from foto3d.rig.client import RigClient, Reduction

    rig = RigClient()                        # FOTO3D_RIG_DIR or ~/.local/share/foto3d-rig
    rig.attach_logging()                     # logging.* now reaches the panel and the sites
    rig.submit("acme-chair-001", "/captures/chair", reduction=Reduction(keep=0.3))
    print(rig.status().link)
"""

from __future__ import annotations

import asyncio
import getpass
import os
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from foto3d.libs.bus.connection import connect
from foto3d.libs.logsdk import LogShipper, NatsLogHandler, attach
from foto3d.libs.splat.reduce import RECOMMENDED_KEEP, RECOMMENDED_SH_DEGREE
from foto3d.libs.storage.base import sha256_file
from foto3d.proto.jobs import Priority, TrainOptions
from foto3d.proto.rig import DatasetFile, RigDataset, RigStatus, rig_datasets_subject
from foto3d.rig.settings import RigSettings, default_rig_dir, load
from foto3d.rig.status import read_status

_enc = msgspec.json.Encoder()


class RigError(RuntimeError):
    """The rig cannot take the call; the message says why and what to do."""


@dataclass(frozen=True)
class Reduction:
    """Splat reduction per object. Defaults: the measured recommendation in docs/splat.md
    (keep 50 %, SH degree 1, prune only)."""

    enabled: bool = True
    keep: float = RECOMMENDED_KEEP  # fraction of gaussians kept, 0 < keep <= 1
    # prune + fine-tune rounds with nerfstudio: accepted, not done yet (docs/trainer.md); keep 0
    rounds: int = 0
    sh_degree: int = RECOMMENDED_SH_DEGREE

    def options(self, steps: int | None = None) -> TrainOptions:
        raw: dict[str, Any] = {
            "reduce": self.enabled,
            "reduce_keep": self.keep,
            "reduce_iterations": self.rounds,
            "sh_degree": self.sh_degree,
        }
        if steps is not None:
            raw["steps"] = steps
        try:
            return msgspec.convert(raw, TrainOptions)
        except msgspec.ValidationError as exc:
            raise ValueError(f"reduction options: {exc}") from None


def scan_dataset(folder: Path) -> list[DatasetFile]:
    """Every file under ``folder`` (sorted, hidden files left out) with size and SHA-256."""
    if not folder.is_dir():
        raise RigError(f"dataset folder {folder} does not exist")
    files = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if path.is_file() and not any(part.startswith(".") for part in rel.parts):
            files.append(DatasetFile(path=rel.as_posix(), size=path.stat().st_size, sha256=sha256_file(path)))
    if not files:
        raise RigError(f"dataset folder {folder} holds no files")
    return files


class RigClient:
    def __init__(self, rig_dir: Path | str | None = None, *, leaf_url: str | None = None) -> None:
        self.rig_dir = Path(rig_dir).expanduser() if rig_dir else default_rig_dir()
        self.settings: RigSettings = load(self.rig_dir)
        self.leaf_url = leaf_url or self.settings.leaf_url

    # -- logs ---------------------------------------------------------------------------

    def shipper(self, **kw: Any) -> LogShipper:
        """A log shipper that writes to the rig (source ``rig/<rig id>``)."""
        kw.setdefault("heartbeat", False)  # the agent's heartbeat stands for the rig
        kw.setdefault("spool_dir", self.rig_dir / "log-spool")
        return LogShipper("rig", self.settings.rig_id, nats_urls=[self.leaf_url], **kw)

    def attach_logging(self, **kw: Any) -> NatsLogHandler:
        """Ship the root logger's records (INFO and up) to the rig, like ``logsdk.attach``."""
        kw.setdefault("heartbeat", False)
        kw.setdefault("spool_dir", self.rig_dir / "log-spool")
        return attach(self.settings.rig_id, kind="rig", nats_urls=[self.leaf_url], **kw)

    # -- datasets -----------------------------------------------------------------------

    async def asubmit(
        self,
        object_id: str,
        folder: Path | str,
        *,
        reduction: Reduction | None = None,
        priority: Priority | str = Priority.NORMAL,
        steps: int | None = None,
        request_id: str | None = None,
        timeout: float = 5.0,
    ) -> str:
        """Store a submission on the rig; returns its request id (the idempotency key)."""
        root = Path(folder).expanduser().resolve()
        files = await asyncio.to_thread(scan_dataset, root)
        raw = {
            "request_id": request_id or uuid.uuid4().hex,
            "rig_id": self.settings.rig_id,
            "object_id": object_id,
            "folder": str(root),
            "files": msgspec.to_builtins(files),
            "priority": str(priority),
            "options": msgspec.to_builtins((reduction or Reduction()).options(steps)),
            "submitted_at": time.time(),
            "submitted_by": f"{_user()}@{socket.gethostname()}",
        }
        try:
            ds = msgspec.convert(raw, RigDataset)
        except msgspec.ValidationError as exc:
            raise ValueError(f"submission of {object_id}: {exc}") from None
        try:
            bus = await connect(self.leaf_url, "foto3d-rig-client", retry_initial=False)
        except ConnectionError as exc:
            raise RigError(
                f"the rig's local server is not running ({exc}); start it with `foto3d rig up`"
            ) from None
        try:
            await bus.publish(
                rig_datasets_subject(self.settings.rig_id), ds, msg_id=ds.request_id, deadline=timeout
            )
        finally:
            await bus.close()
        return ds.request_id

    def submit(self, object_id: str, folder: Path | str, **kw: Any) -> str:
        """Blocking form of :meth:`asubmit` for tools without an event loop."""
        return asyncio.run(self.asubmit(object_id, folder, **kw))

    # -- status -------------------------------------------------------------------------

    def status(self) -> RigStatus:
        return read_status(self.rig_dir, self.settings.rig_id)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER", "rig")
