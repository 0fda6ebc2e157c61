"""Token estimation: the one estimator behind every token figure ckptstore reports.

The heuristic counts roughly four characters of JSON or English per token, and one
token per character outside ASCII (CJK text and emoji tokenize far more densely). It is
additive over the entries of a checkpoint, so an incremental commit can update the
total from the entries it changed without reading the others.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["estimate_entry", "estimate_text", "estimate_value"]

_CHARS_PER_TOKEN = 4


def estimate_text(text: str) -> int:
    """Estimate the tokens of ``text``."""
    if text.isascii():
        return -(-len(text) // _CHARS_PER_TOKEN)
    ascii_chars = sum(1 for ch in text if ord(ch) < 128)
    return -(-ascii_chars // _CHARS_PER_TOKEN) + (len(text) - ascii_chars)


def estimate_value(value: Any) -> int:
    """Estimate the tokens of a JSON value written compactly."""
    if isinstance(value, str):
        return estimate_text(value) + 1
    return estimate_text(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def estimate_entry(key: str | None, value: Any) -> int:
    """Estimate the tokens of one checkpoint entry (a map key and its value, or a list item)."""
    return estimate_value(value) + (estimate_text(key) + 1 if key is not None else 0)
