"""Human-readable output of checkpoints and history (``--json`` bypasses all of this)."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from ckptstore import Checkpoint, CommitInfo

_KNOWN = {
    "checkpoint_id", "created_at", "session_id", "phase", "phases_completed", "tasks",
    "active_task_id", "dependencies", "variables", "recent_outputs", "agent_id",
    "agent_tier", "content_hash", "parent_checkpoint_id", "estimated_tokens",
}  # fmt: skip
_TASK_MARK = {"completed": "x", "in_progress": "~", "pending": " ", "blocked": "!", "failed": "!"}
_WIDTH = 100


def shorten(value: Any, width: int = _WIDTH) -> str:
    """One line of JSON for a value, cut with a marker when longer than ``width``."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = text.replace("\n", "\\n")
    if len(text) <= width:
        return text
    return f"{text[: width - 20]}… (+{len(text) - width + 20} chars)"


def human_size(n: float) -> str:
    """Bytes as B/KiB/MiB/GiB."""
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _agent(agent_id: Any, tier: Any) -> str:
    if agent_id is None and tier is None:
        return "-"
    return f"{agent_id or '?'}" + (f" (tier {tier})" if tier is not None else "")


def _cap(items: list[Any], limit: int | None, what: str) -> tuple[list[Any], list[str]]:
    if limit is None or len(items) <= limit:
        return items, []
    return items[:limit], [f"  … {len(items) - limit} more {what}"]


def _row(*parts: Any) -> str:
    return "  " + " ".join(str(p) for p in parts if p not in (None, "")).rstrip()


def _tasks(data: dict[str, Any], max_items: int | None) -> list[str]:
    tasks = data.get("tasks")
    if not isinstance(tasks, list):
        return []
    counts = Counter(str(t.get("status")) for t in tasks)
    summary = ", ".join(f"{n} {status}" for status, n in counts.most_common())
    active = data.get("active_task_id")
    head = f"\ntasks ({len(tasks)}{': ' + summary if summary else ''})"
    lines = [head + (f"    active: {active}" if active is not None else "")]
    shown, more = _cap(tasks, max_items, "tasks")
    for task in shown:
        mark = f"[{_TASK_MARK.get(str(task.get('status')), '?')}]"
        owner = f" @{task['owner']}" if task.get("owner") else ""
        subject = shorten(task.get("subject", ""), 70)
        lines.append(_row(mark, f"{task.get('id', '?')!s:>5} ", subject + owner))
    return lines + more


def _dependencies(data: dict[str, Any]) -> list[str]:
    deps = data.get("dependencies")
    if not isinstance(deps, list) or not deps:
        return []
    lines = [f"\ndependencies ({len(deps)})"]
    for dep in deps:
        ok = "✓" if dep.get("status") == "available" else "✗"
        kind = f"({dep.get('type', '?')})"
        lines.append(
            _row(ok, dep.get("name", "?"), kind, dep.get("status", "?"), dep.get("endpoint"))
        )
    return lines


def _outputs(data: dict[str, Any], max_items: int | None) -> list[str]:
    outputs = data.get("recent_outputs")
    if not isinstance(outputs, list) or not outputs:
        return []
    lines = [f"\nrecent outputs ({len(outputs)})"]
    shown, more = _cap(outputs, max_items, "outputs")
    for out in shown:
        if isinstance(out, dict):
            ok = "✓" if out.get("success") else "✗"
            fields = (out.get(k) for k in ("type", "action", "id", "timestamp"))
            lines.append(_row(ok, *fields))
        else:
            lines.append(_row(shorten(out, 80)))
    return lines + more


def _mapping(title: str, values: Any, max_items: int | None) -> list[str]:
    if not isinstance(values, dict) or not values:
        return []
    shown, more = _cap(list(values.items()), max_items, title)
    return [
        f"\n{title} ({len(values)})",
        *(
            f"  {key} = {shorten(json.dumps(value, ensure_ascii=False), 80)}"
            for key, value in shown
        ),
        *more,
    ]


def render_checkpoint(ckpt: Checkpoint, *, max_items: int | None = None) -> str:
    """The ``ckpt load`` view: header, phase, tasks, dependencies, variables, outputs.

    ``max_items`` caps each section's list, with a line saying how many were left out.
    """
    data, info = ckpt.data, ckpt.commit
    agent = _agent(data.get("agent_id"), data.get("agent_tier"))
    lines = [
        f"checkpoint  {info.checkpoint_id}",
        f"created     {info.created_at}",
        f"session     {info.session}    agent {agent}",
        f"parent      {info.parent_checkpoint_id or '(none)'}",
    ]
    if info.notes:
        lines.append(f"notes       {shorten(info.notes)}")
    phase = data.get("phase")
    if isinstance(phase, dict):
        number = phase.get("number")
        label = " · ".join(str(x) for x in (phase.get("name"), phase.get("status")) if x)
        lines.append(f"phase       {number if number is not None else '-'}  {label}")
    if data.get("phases_completed"):
        lines.append(f"completed   phases {shorten(data['phases_completed'])}")
    lines += _tasks(data, max_items)
    lines += _dependencies(data)
    lines += _mapping("variables", data.get("variables"), max_items)
    lines += _outputs(data, max_items)
    extra = {k: v for k, v in data.items() if k not in _KNOWN}
    lines += _mapping("other fields", extra, max_items)
    lines.append(f"\n~{info.estimated_tokens} tokens    content {info.tree[:12]}")
    return "\n".join(lines)


def render_log(entries: list[CommitInfo], *, oneline: bool = False) -> str:
    """The ``ckpt log`` view: one header line per checkpoint, notes indented below."""
    if oneline:
        return "\n".join(
            f"{i.checkpoint_id} [{i.session}] {(i.notes.splitlines() or [''])[0]}".rstrip()
            for i in entries
        )
    lines = []
    for info in entries:
        when = info.created_at.replace("T", " ")[:19]
        agent = f"  {_agent(info.agent_id, info.agent_tier)}" if info.agent_id else ""
        tokens = f"~{info.estimated_tokens} tokens"
        lines.append(f"{info.checkpoint_id}  {when}  [{info.session}]{agent}  {tokens}")
        lines.extend(f"    {line}" for line in info.notes.splitlines())
        if info.history_pruned:
            lines.append(f"    ~ history pruned: {info.history_pruned} earlier checkpoint(s) ~")
    return "\n".join(lines)
