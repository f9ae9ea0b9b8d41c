"""The wire contract: msgspec Structs for every event and API body.

Every type here is a frozen Struct whose ``type`` tag names the event and its
version (``"log.batch/1"``). Decoding validates, so a bad message fails at the
edge with a clear error, never deep inside a service. Breaking changes get a new
tag (``/2``) and both versions are decoded side by side until the old one is gone.
"""

PROTO_VERSION = "1"
