"""OpenTelemetry tracing over NATS: one trace per job, from capture to publish.

``propagator`` moves W3C ``traceparent`` in and out of NATS headers, ``produce``
wraps publishing, ``consume`` wraps handling, ``setup`` installs the provider.
"""
