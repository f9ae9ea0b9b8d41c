"""Turn what a person types into a safe FTS5 MATCH expression.

FTS5 has its own query syntax (quotes, ``-``, ``:``, ``AND``/``OR``/``NOT``,
parentheses), so raw user text like ``foo-bar "x`` raises a syntax error. Every
whitespace-separated word becomes a quoted phrase (inner quotes doubled), and
the phrases are ANDed: ``disk full`` finds records containing both words.
A trailing ``*`` keeps its prefix meaning (``timeo*``).
"""

from __future__ import annotations


def _has_token(word: str) -> bool:
    """FTS5's default tokenizer indexes letters and digits; a word without any matches nothing."""
    return any(ch.isalnum() for ch in word)


def match_expression(text: str) -> str | None:
    """The MATCH expression for ``text``, or None when it has nothing searchable."""
    parts: list[str] = []
    for word in text.split():
        prefix = word.endswith("*")
        core = word.rstrip("*")
        if not _has_token(core):
            continue
        phrase = '"' + core.replace('"', '""') + '"'
        parts.append(phrase + ("*" if prefix else ""))
    return " ".join(parts) if parts else None


def terms(text: str) -> list[str]:
    """Lower-cased searchable words, for matching records in memory (live tail)."""
    return [w.rstrip("*").lower() for w in text.split() if _has_token(w.rstrip("*"))]
