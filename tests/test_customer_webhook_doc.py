"""The receiver check the customer docs show agrees with the signature the catalog sends."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from foto3d.proto.webhooks import signature

DOC = Path(__file__).resolve().parents[1] / "docs" / "customer" / "webhooks.md"


def _documented_check() -> Any:
    (code,) = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    scope: dict[str, Any] = {}
    exec(compile(code, str(DOC), "exec"), scope)
    return scope["verified"]


def test_the_documented_check_accepts_our_signature_and_refuses_the_rest() -> None:
    verified = _documented_check()
    body = b'{"id":"wd_1","type":"model.published","created":1.0,"data":{}}'
    now = int(time.time())
    assert verified("whsec_a", signature("whsec_a", now, body), body)
    assert not verified("whsec_b", signature("whsec_a", now, body), body)  # another secret
    assert not verified("whsec_a", signature("whsec_a", now, body), body + b" ")  # another body
    assert not verified("whsec_a", signature("whsec_a", now - 3600, body), body)  # replayed late
    assert not verified("whsec_a", "v1=00", body)  # no time
