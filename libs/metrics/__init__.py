"""Prometheus metrics: one registry per process, filled by the services through their context."""

from foto3d.libs.metrics.hub import Metrics

__all__ = ["Metrics"]
