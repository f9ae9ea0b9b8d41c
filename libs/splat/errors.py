"""Errors of the splat library: one type, with a message a person can act on."""

from __future__ import annotations


class SplatFormatError(ValueError):
    """A splat file cannot be read or written as asked (bad header, truncated, invalid values...)."""
