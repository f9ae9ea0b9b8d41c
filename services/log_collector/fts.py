"""Turn what a person types into a safe FTS5 MATCH expression.

FTS5 has its own query syntax (quotes, ``-``, ``:``, ``AND``/``OR``/``NOT``,
parentheses), so raw user text like ``foo-bar "x`` raises a syntax error. Every
whitespace-separated word becomes a quoted phrase (inner quotes doubled), and
the phrases are ANDed: ``disk full`` finds records containing both words.
A trailing ``*`` keeps its prefix meaning (``timeo*``).
"""

from __future__ import annotations

from foto3d.proto.logs import search_words


def match_expression(text: str) -> str | None:
    """The MATCH expression for ``text``, or None when it has nothing searchable."""
    parts = [
        '"' + core.replace('"', '""') + '"' + ("*" if prefix else "") for core, prefix in search_words(text)
    ]
    return " ".join(parts) if parts else None
