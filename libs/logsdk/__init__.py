"""The log SDK: ship a script's or a rig's log records to the bus in real time.

Two lines attach it to a script::

    from foto3d.libs import logsdk
    logsdk.attach(source="train-chair")

See docs/log-sdk.md for every option.
"""

from __future__ import annotations

from foto3d.libs.logsdk import lines
from foto3d.libs.logsdk.handler import NatsLogHandler, attach
from foto3d.libs.logsdk.shipper import LogShipper, QueueFullWarning, SpoolFullWarning, safe_source_id

__all__ = [
    "LogShipper",
    "NatsLogHandler",
    "QueueFullWarning",
    "SpoolFullWarning",
    "attach",
    "lines",
    "safe_source_id",
]
