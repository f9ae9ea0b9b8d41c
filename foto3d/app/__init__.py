"""The composition root: which services exist, and how `up` and `serve` run them.

This is the one place that imports services; services never import each other.
"""
