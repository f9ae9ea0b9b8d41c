"""Check a submission before it becomes a job: naming standard, dataset reachable, options.

Ranges of the options are enforced by the msgspec contract when a request is
decoded; ``foto3d.proto.jobs.readable_decode_error`` turns msgspec's wording into a
message a person at a capture rig understands.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path
from urllib.parse import unquote, urlparse

import msgspec

from foto3d.libs.storage.s3 import default_endpoint
from foto3d.proto.jobs import SubmissionError, SubmitRequest, TrainOptions
from foto3d.services.queue.settings import QueueSettings

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".heic", ".dng", ".exr"})


def dedupe_key(object_id: str, dataset: str, options: TrainOptions) -> str:
    """Same object, same dataset, same options = the same training."""
    opts = msgspec.json.encode(msgspec.to_builtins(options, order="sorted"))
    raw = b"\0".join([object_id.encode(), normalise_dataset(dataset).encode(), opts])
    return hashlib.sha256(raw).hexdigest()[:32]


def normalise_dataset(uri: str) -> str:
    uri = uri.strip()
    if uri.startswith("file://"):
        return "file://" + os.path.normpath(unquote(urlparse(uri).path))
    if "://" not in uri:
        return "file://" + os.path.normpath(os.path.abspath(os.path.expanduser(uri)))
    return uri.rstrip("/")


async def validate_submission(req: SubmitRequest, cfg: QueueSettings) -> None:
    """Raise :class:`SubmissionError` if ``req`` cannot be trained (its object id was checked by
    the naming standard when it was decoded: ``SubmitRequest.object_id`` is a ``rules.ObjectId``)."""
    uri = req.dataset.strip()
    scheme = urlparse(uri).scheme if "://" in uri else "file"
    if scheme == "file":
        if cfg.check_local:
            path = Path(normalise_dataset(uri).removeprefix("file://"))
            await asyncio.to_thread(check_local_dataset, path)
    elif scheme == "s3":
        await asyncio.to_thread(check_s3_dataset, uri, cfg)
    else:
        raise SubmissionError(
            f"dataset {uri!r}: unsupported scheme {scheme!r} (use a local path, file:// or s3://)"
        )


def check_local_dataset(path: Path) -> None:
    if not path.exists():
        raise SubmissionError(f"dataset {path} does not exist")
    if not os.access(path, os.R_OK):
        raise SubmissionError(f"dataset {path} is not readable by the queue service")
    if path.is_file():
        raise SubmissionError(f"dataset {path} is a file; give the dataset folder")
    if (path / "transforms.json").is_file() or (path / "images").is_dir():
        return
    try:
        with os.scandir(path) as it:
            if any(e.is_file() and Path(e.name).suffix.lower() in IMAGE_SUFFIXES for e in it):
                return
    except OSError as exc:
        raise SubmissionError(f"dataset {path} cannot be listed: {exc.strerror}") from exc
    raise SubmissionError(
        f"dataset {path} has no transforms.json, no images/ folder and no images "
        f"({', '.join(sorted(IMAGE_SUFFIXES))})"
    )


def check_s3_dataset(uri: str, cfg: QueueSettings) -> None:
    """HEAD the dataset's prefix when S3 credentials are configured; else apply the policy."""
    import boto3
    import botocore.exceptions

    parsed = urlparse(uri)
    bucket, prefix = parsed.netloc, parsed.path.lstrip("/")
    if not bucket:
        raise SubmissionError(f"dataset {uri!r}: no bucket in the S3 URI")
    session = boto3.session.Session()
    if session.get_credentials() is None:
        if cfg.s3_unchecked == "reject":
            raise SubmissionError(
                f"dataset {uri}: cannot check it, S3 is not configured here "
                '(no AWS credentials); set [queue] s3_unchecked = "accept" to accept it unchecked'
            )
        return
    client = session.client("s3", endpoint_url=default_endpoint())
    try:
        if prefix and not prefix.endswith("/"):
            try:
                client.head_object(Bucket=bucket, Key=prefix)
                return
            except botocore.exceptions.ClientError:
                prefix += "/"
        listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
    except botocore.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "?")
        raise SubmissionError(f"dataset {uri}: S3 refused the check ({code})") from exc
    except botocore.exceptions.BotoCoreError as exc:
        raise SubmissionError(f"dataset {uri}: S3 is not reachable ({exc})") from exc
    if not listed.get("KeyCount"):
        raise SubmissionError(f"dataset {uri} does not exist (no objects under that prefix)")
