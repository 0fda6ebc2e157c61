"""Human-readable diffs: grouped by section, colored on a terminal, plain in pipes."""

from __future__ import annotations

import json
import os
import sys
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from ckpt_cli.render import shorten
from ckptstore.diff import SECTIONS, Change
from ckptstore.history import KeyChange

_TITLES = {
    "phase": "phase",
    "tasks": "tasks",
    "dependencies": "dependencies",
    "variables": "variables",
    "recent_outputs": "recent outputs",
    "meta": "meta",
}
_MARK = {"added": "+", "removed": "-", "changed": "~", "moved": ">"}
_STYLE = {"added": "green", "removed": "red", "changed": "yellow", "moved": "cyan"}
_WIDTH = 60


def use_color(stream: Any = None) -> bool:
    """Color only on a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    stream = stream or sys.stdout
    return bool(getattr(stream, "isatty", lambda: False)()) and not os.environ.get("NO_COLOR")


def _show(value: Any, full: bool) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if full else shorten(text, _WIDTH)


def _rechecks(items: Sequence[Change]) -> set[int]:
    """Positions of changes that are a dependency re-check and nothing else.

    A dependency whose ``last_checked`` moved while another field changed too (it went
    down, its endpoint moved) is not a mere re-check: all its changes are shown.
    """

    def entry(c: Change) -> tuple[str | None, int | None, int | None]:
        return (c.key, c.old_index, c.new_index)

    busy = {entry(c) for c in items if c.section == "dependencies" and c.field != "last_checked"}
    return {
        i for i, c in enumerate(items)
        if c.section == "dependencies" and c.field == "last_checked" and entry(c) not in busy
    }  # fmt: skip


def _index(change: Change) -> int | None:
    return change.new_index if change.new_index is not None else change.old_index


def _entry_label(change: Change) -> str:
    if change.section == "recent_outputs":
        return f"[{_index(change)}]"
    return change.key if change.key is not None else f"#{_index(change)}"


def _describe(change: Change, value: Any, full: bool) -> str:
    """A whole entry in a few words: a task by subject and status, an output by action."""
    if isinstance(value, dict) and change.field is None:
        if change.section == "tasks":
            return f"{_show(value.get('subject', ''), full)} [{value.get('status', '?')}]"
        if change.section == "dependencies":
            return f"({value.get('type', '?')}) {value.get('status', '?')} {value.get('endpoint') or ''}".rstrip()  # noqa: E501
        if change.section == "recent_outputs":
            ok = "ok" if value.get("success") else "failed"
            parts = (value.get("type"), value.get("action"), value.get("id"), ok)
            return " ".join(str(p) for p in parts if p not in (None, ""))
    return _show(value, full)


def _line(change: Change, full: bool) -> str:
    mark = _MARK[change.op]
    whole = change.key is None and change.field is None and change.old_index is None
    if whole and change.new_index is None:
        what = "section" if change.section != "phase" else "phase"
        if change.op == "changed":
            return f"{mark} {what} changed: {_show(change.old, full)} -> {_show(change.new, full)}"
        value = change.new if change.op == "added" else change.old
        return f"{mark} {what} {change.op}: {_show(value, full)}"
    label = "" if change.section == "phase" else _entry_label(change)
    if change.op == "moved":
        return f"{mark} {label} moved from position {change.old_index} to {change.new_index}"
    target = " ".join(x for x in (label, change.field or "") if x)
    if change.op == "added":
        return f"{mark} {target} {_describe(change, change.new, full)}"
    if change.op == "removed":
        return f"{mark} {target} {_describe(change, change.old, full)}"
    return f"{mark} {target}: {_show(change.old, full)} -> {_show(change.new, full)}"


def _entry_counts(items: Sequence[Change]) -> Counter[str]:
    """Entries per operation: several changed fields of one task count once."""
    seen = {(c.op, c.key, c.field if c.op != "changed" or c.key is None else None,
             c.old_index, c.new_index) for c in items}  # fmt: skip
    return Counter(op for op, *_ in seen)


def render_changes(
    changes: Sequence[Change], *, full: bool = False, show_all: bool = False, color: bool = False
) -> str:
    """Changes grouped by section; dependency re-checks folded into one line unless ``show_all``."""
    if not changes:
        return "no changes"
    grouped: dict[str, list[Change]] = defaultdict(list)
    for change in changes:
        grouped[change.section].append(change)
    lines: list[tuple[str, str | None]] = []
    for section in SECTIONS:
        items = grouped.get(section)
        if not items:
            continue
        counts = _entry_counts(items)
        summary = ", ".join(f"{n} {op}" for op, n in sorted(counts.items()))
        lines.append((f"{_TITLES[section]} ({summary})", "bold"))
        positions = _rechecks(items)
        rechecks = [c for i, c in enumerate(items) if i in positions]
        if rechecks and not show_all:
            items = [c for i, c in enumerate(items) if i not in positions]
        for change in items:
            lines.append(("  " + _line(change, full), _STYLE[change.op]))
        if rechecks and not show_all:
            n = len({c.key for c in rechecks})
            lines.append(
                (f"  · {n} dependencies re-checked (last_checked only; --all shows them)", None)
            )
    if not color:
        return "\n".join(text for text, _ in lines)
    return _colored(lines)


def _colored(lines: list[tuple[str, str | None]]) -> str:
    from rich.console import Console  # only when painting a terminal: keeps start-up lean
    from rich.text import Text

    console = Console(force_terminal=True, highlight=False, soft_wrap=True)
    with console.capture() as capture:
        for text, style in lines:
            console.print(Text(text, style=style or ""))
    return capture.get().rstrip("\n")


def render_stat(changes: Sequence[Change]) -> str:
    """One line per section: how many entries were added, removed, changed."""
    if not changes:
        return "no changes"
    rows = []
    for section in SECTIONS:
        ops = _entry_counts([c for c in changes if c.section == section])
        if ops:
            parts = ", ".join(
                f"{ops[op]} {op}" for op in ("added", "removed", "changed", "moved") if ops[op]
            )
            rows.append(f"{_TITLES[section]:<16}{parts}")
    rows.append(f"{len(changes)} changes")
    return "\n".join(rows)


def render_key_history(found: Sequence[KeyChange], *, oneline: bool = False) -> str:
    """``ckpt log --key``: each checkpoint where the value changed, with the change."""
    if not found:
        return "no checkpoint changed that value"
    lines = []
    for item in found:
        info = item.commit
        when = info.created_at.replace("T", " ")[:19]
        changes = [_line(c, full=False) for c in item.changes]
        if oneline:
            lines.append(f"{info.checkpoint_id} {'; '.join(changes)}")
            continue
        lines.append(f"{info.checkpoint_id}  {when}  [{info.session}]")
        lines.extend(f"    {line}" for line in changes)
    return "\n".join(lines)
