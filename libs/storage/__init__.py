"""Blob storage for artifacts and published models: a local folder by default, S3 when configured.

``base`` defines the interface and URIs (``file:///...``, ``s3://bucket/key``);
``local`` and ``s3`` implement it. All methods are async; the S3 store runs
boto3's blocking calls in a thread.
"""

from foto3d.libs.storage.base import BlobInfo, BlobStore, StorageError, open_store

__all__ = ["BlobInfo", "BlobStore", "StorageError", "open_store"]
