"""moto's S3 server for the rig's upload tests (the publisher tests' fixtures, shared)."""

from tests.publisher.conftest import aws_env, moto

__all__ = ["aws_env", "moto"]
