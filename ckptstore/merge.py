"""Partial states: ``ckpt commit --state FILE --merge`` changes only what FILE names.

A partial state has the checkpoint format's shape, but every field is optional and
says how to change the current checkpoint, section by section:

======================  ===================================================================
field                   rule
======================  ===================================================================
``phase``               an object updates the current phase field by field (a new phase
                        object if there is none); ``null`` clears the phase
``phases_completed``    replaces the list
``tasks``               each task object must carry an ``id``; it updates, field by field,
                        every task with that id (``7`` matches ``"7"``), or is appended
                        when no task has it. Tasks it does not name are left alone
``dependencies``        the same, keyed by ``name``
``variables``           each key is set to its value (``null`` is a value; remove a
                        variable with ``--unset-var``)
``recent_outputs``      appended
any other field         replaced (``active_task_id``, ``agent_id``, ``agent_tier``, fields
                        the format does not name)
======================  ===================================================================

Store-owned fields (``checkpoint_id``, ``created_at``...) are ignored, as in a full
state. A partial that breaks these rules is rejected before anything is written,
naming the field.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from ckptstore.edits import task_key
from ckptstore.errors import InvalidCheckpoint
from ckptstore.objects import copy_value
from ckptstore.validation import validate_state

__all__ = ["merge_partial", "validate_partial"]

_KEYED: Final[dict[str, tuple[str, Callable[[Any], str | None]]]] = {
    "tasks": ("id", task_key),
    "dependencies": ("name", lambda v: v if isinstance(v, str) else None),
}


def validate_partial(partial: Any, *, source: str = "") -> dict[str, Any]:
    """Check a partial state; return its canonical form (store-owned fields dropped).

    Raises:
        InvalidCheckpoint: naming the first field that breaks the format or the rules.
    """
    canon = validate_state(partial, source=source)
    for section, (key, norm) in _KEYED.items():
        for index, item in enumerate(canon.get(section, ())):
            if norm(item.get(key)) is None:
                raise InvalidCheckpoint(
                    f"$.{section}[{index}].{key}",
                    f"is missing; a partial state names each of its {section} by {key}",
                    source=source,
                )
    return canon


def merge_partial(state: dict[str, Any], partial: Mapping[str, Any]) -> None:
    """Merge a partial state (from :func:`validate_partial`) into ``state`` in place."""
    for name, value in partial.items():
        if name == "phase" and isinstance(value, dict):
            current = state.get("phase")
            merged = dict(current) if isinstance(current, dict) else {}
            merged.update(copy_value(value))
            state["phase"] = merged
        elif name in _KEYED:
            _upsert(state, name, value)
        elif name == "variables":
            current = state.get("variables")
            merged = dict(current) if isinstance(current, dict) else {}
            merged.update(copy_value(value))
            state["variables"] = merged
        elif name == "recent_outputs":
            current = state.get(name)
            state[name] = [*(current if isinstance(current, list) else ()), *copy_value(value)]
        else:
            state[name] = copy_value(value)


def _upsert(state: dict[str, Any], section: str, items: list[Any]) -> None:
    key, norm = _KEYED[section]
    current = state.get(section)
    merged = (
        [dict(i) if isinstance(i, dict) else i for i in current]
        if isinstance(current, list)
        else []
    )
    for item in items:
        wanted = norm(item[key])
        matches = [m for m in merged if isinstance(m, dict) and norm(m.get(key)) == wanted]
        for match in matches:
            match.update(copy_value({k: v for k, v in item.items() if k != key}))
        if not matches:
            merged.append(copy_value(item))
    state[section] = merged
