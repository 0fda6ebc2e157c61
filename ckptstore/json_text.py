"""JSON text: the strict reading of a checkpoint file, a ``--state`` or a ``--var`` value.

Python's ``json`` accepts ``NaN`` and ``Infinity``, which no checkpoint may hold and
other JSON readers refuse, and keeps the last of duplicate keys, silently dropping the
others. Both are refused here, with a message naming what was wrong. Shared by the
CLI's inputs and the import of the original skill's files, so the two cannot drift.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["parse_json"]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r} in a JSON object")
        out[key] = value
    return out


def parse_json(text: str) -> Any:
    """Parse strict JSON: no ``NaN`` or ``Infinity``, no duplicate keys.

    Raises:
        ValueError: naming the problem (``json.JSONDecodeError`` for malformed text).
        RecursionError: for text nested deeper than the interpreter can parse.
    """
    return json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_unique_keys)
