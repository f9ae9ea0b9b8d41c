"""An S3 endpoint that enforces bucket CORS rules the way S3 does, for browser tests.

moto's server answers every origin with ``Access-Control-Allow-Origin``, so a browser on moto
fetches a presigned link whatever the bucket's rule says. s3rver (npm, pinned in
``tools/s3/package.json``) evaluates the bucket's CORSRules on every request: a preflight with
no matching rule is refused with 403, and ``Access-Control-Allow-Origin`` is sent only for an
origin a rule allows (wildcards included), with the rule's ExposeHeaders and MaxAgeSeconds.
It speaks the S3 API boto3 uses here (buckets, objects, Put/Get/DeleteBucketCors) and checks
SigV4 presigned query links. ``tests/token_gateway/test_cors_endpoint.py`` holds it to that.

It knows one account: access key and secret ``S3RVER``.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import boto3
from botocore.config import Config
from mypy_boto3_s3 import S3Client

from testkit.servers import end_process, free_port

TOOLS = Path(__file__).resolve().parent.parent / "tools" / "s3"
S3RVER = TOOLS / "node_modules" / "s3rver" / "bin" / "s3rver.js"
ACCESS_KEY = SECRET_KEY = "S3RVER"


def missing() -> str | None:
    """Why the server cannot run here, or None."""
    if shutil.which("node") is None:
        return "node is not installed (scripts/test-deps.sh installs it)"
    if not S3RVER.exists():
        return "s3rver is not installed: run `npm ci` in tools/s3 (scripts/test-deps.sh does)"
    return None


class CorsS3Server:
    """s3rver on a free loopback port, its data in a folder of its own; stop() removes both."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None

    def start(self, timeout: float = 30.0) -> CorsS3Server:
        self._dir = Path(tempfile.mkdtemp(prefix="s3rver-"))
        node = shutil.which("node") or "node"
        self.proc = proc = subprocess.Popen(
            [node, str(S3RVER), "-d", str(self._dir), "-a", "127.0.0.1", "-p", str(self.port), "-s",
             "--no-vhost-buckets"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                if proc.poll() is not None:
                    self.stop()
                    raise RuntimeError("s3rver exited at start") from None
                time.sleep(0.1)  # a process starting: nothing to await but its port
        self.stop()
        raise RuntimeError(f"s3rver did not listen on port {self.port} within {timeout:.0f} s")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        end_process(proc)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def client(self) -> S3Client:
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )
