"""Shared code every service builds on: bus, config, storage, tracing, the log SDK."""
