"""Summary items for what changed since an earlier checkpoint (``ckpt summary --since``).

The changes come from :mod:`ckptstore.diff` (``Store.diff`` walks the two trees;
:func:`~ckptstore.diff.diff_states` compares two loaded states). Secret variables'
old and new values are hidden like the current ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any, Final

from ckptstore.diff import Change
from ckptstore.secrets import SecretPolicy, redact_changes
from ckptstore.summary.items import (
    Request,
    fields,
    label,
    output_failed,
    output_line,
    task_line,
    value_text,
)
from ckptstore.summary.render import Group, Item, Section

__all__ = ["changes_section"]

_CHANGE_NOUN: Final = {
    "phase": "phase changes", "tasks": "task changes", "dependencies": "dependency changes",
    "variables": "variable changes", "recent_outputs": "output changes", "meta": "other changes",
}  # fmt: skip


def _change_priority(change: Change, req: Request) -> int:
    section, op = change.section, change.op
    if section == "phase":
        return 1
    if section == "dependencies":
        if change.field == "last_checked":
            return 12  # re-checked every commit: noise unless the budget is generous
        return 3 if change.field in ("status", None) else 7
    if section == "tasks":
        if op == "moved":
            return 12
        if change.field == "status":
            return 4 if change.new in ("failed", "in_progress", "blocked") else 5
        return 6 if change.field is None else 8
    if section == "variables":
        if change.key in req.keys:
            return 2
        wanted = req.profile is not None and req.profile.wants_variable(change.key or "")
        return 5 if wanted else 7
    if section == "recent_outputs":
        if op in ("removed", "moved"):
            return 12
        return 4 if output_failed(change.new) else 9
    return 6


def _change_line(change: Change, cap: int) -> str:
    small = max(cap // 3, 8)
    if change.section == "tasks":
        who = f"task #{label(change.key, 6)}"
    elif change.section == "dependencies":
        who = f"dependency {label(change.key, 8)}"
    elif change.section in ("recent_outputs", "phase") or change.key is None:
        who = "output" if change.section == "recent_outputs" else change.section
    else:
        who = label(change.key, 12)
    if change.key is None and change.section in ("tasks", "dependencies", "variables"):
        who = change.section
    subject = f"{who}.{label(change.field, 8)}" if change.field is not None else who
    if change.op == "changed":
        return f"{subject}: {value_text(change.old, small)} → {value_text(change.new, small)}"
    if change.op == "moved":
        return f"{subject} moved: position {change.old_index} → {change.new_index}"
    whole = (change.field is None and change.key is not None) or change.section == "recent_outputs"
    if change.op == "added":
        if whole and change.section == "tasks":
            return f"{subject} added: {task_line(change.new, cap - 8)}"
        if change.section == "recent_outputs":
            return f"output added: {output_line(change.new, cap - 6)}"
        return f"{subject} added: {value_text(change.new, cap - 8)}"
    if change.section == "recent_outputs":
        return f"output dropped: {output_line(change.old, cap - 6)}"
    return f"{subject} removed (was {value_text(change.old, small)})"


def _change_item(change: Change, cap: int) -> tuple[str, Any]:
    return _change_line(change, cap), _change_data(change, cap)


def _change_data(change: Change, cap: int) -> dict[str, Any]:
    out = change.to_dict()
    for side in ("old", "new"):
        if side in out:
            out[side] = fields(out[side], cap)
    return out


def changes_section(
    changes: Sequence[Change],
    req: Request,
    since_id: str | None,
    secrets: SecretPolicy | None,
    current: Any,
) -> Section:
    """The "Changes since" section: one group per diff section, secrets hidden."""
    if secrets is not None:
        changes = redact_changes(changes, secrets, current if isinstance(current, Mapping) else {})
    groups: dict[str, list[Item]] = {name: [] for name in _CHANGE_NOUN}
    for change in changes:
        section = change.section if change.section in groups else "meta"
        make = partial(_change_item, change, req.level.cap)
        groups[section].append(Item(_change_priority(change, req), make))
    title = f"Changes since {label(since_id or 'the earlier checkpoint', 24)}: {len(changes)}"
    listed = [Group(f"changes.{name}", noun, groups[name]) for name, noun in _CHANGE_NOUN.items()]
    return Section("changes", title, listed, {"total": len(changes)})
