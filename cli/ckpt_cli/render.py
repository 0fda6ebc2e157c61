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


def render_checkpoint(ckpt: Checkpoint, *, max_items: int | None = None) -> str:
    """The ``ckpt load`` view: header, phase, tasks, dependencies, variables, outputs.

    ``max_items`` caps each section's list, with a line saying how many were left out.
    """
    data, info = ckpt.data, ckpt.commit
    lines = [
        f"checkpoint  {info.checkpoint_id}",
        f"created     {info.created_at}",
        f"session     {info.session}    agent {_agent(data.get('agent_id'), data.get('agent_tier'))}",
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
    tasks = data.get("tasks")
    if isinstance(tasks, list):
        counts = Counter(str(t.get("status")) for t in tasks if isinstance(t, dict))
        summary = ", ".join(f"{n} {status}" for status, n in counts.most_common())
        active = data.get("active_task_id")
        lines.append(
            f"\ntasks ({len(tasks)}{': ' + summary if summary else ''})"
            + (f"    active: {active}" if active is not None else "")
        )
        shown, more = _cap(tasks, max_items, "tasks")
        for task in shown:
            mark = _TASK_MARK.get(str(task.get("status")), "?")
            owner = f"  @{task['owner']}" if task.get("owner") else ""
            lines.append(
                f"  [{mark}] {task.get('id', '?')!s:>5}  {shorten(task.get('subject', ''), 70)}{owner}"
            )
        lines.extend(more)
    deps = data.get("dependencies")
    if isinstance(deps, list) and deps:
        lines.append(f"\ndependencies ({len(deps)})")
        for dep in deps:
            ok = "✓" if dep.get("status") == "available" else "✗"
            lines.append(
                f"  {ok} {dep.get('name', '?')} ({dep.get('type', '?')}) {dep.get('status', '?')}  {dep.get('endpoint') or ''}".rstrip()
            )
    variables = data.get("variables")
    if isinstance(variables, dict) and variables:
        lines.append(f"\nvariables ({len(variables)})")
        shown, more = _cap(list(variables.items()), max_items, "variables")
        lines.extend(f"  {key} = {shorten(value, 80)}" for key, value in shown)
        lines.extend(more)
    outputs = data.get("recent_outputs")
    if isinstance(outputs, list) and outputs:
        lines.append(f"\nrecent outputs ({len(outputs)})")
        shown, more = _cap(outputs, max_items, "outputs")
        for out in shown:
            if isinstance(out, dict):
                ok = "✓" if out.get("success") else "✗"
                lines.append(
                    f"  {ok} {out.get('type', '?')} {out.get('action', '')} {out.get('id', '')}  {out.get('timestamp', '')}".rstrip()
                )
            else:
                lines.append(f"  {shorten(out, 80)}")
        lines.extend(more)
    extra = {k: v for k, v in data.items() if k not in _KNOWN}
    if extra:
        lines.append("\nother fields")
        lines.extend(f"  {key} = {shorten(value, 80)}" for key, value in extra.items())
    lines.append(f"\n~{info.estimated_tokens} tokens    content {info.tree[:12]}")
    return "\n".join(lines)


def render_log(entries: list[CommitInfo]) -> str:
    """The ``ckpt log`` view: one header line per checkpoint, notes indented below."""
    lines = []
    for info in entries:
        when = info.created_at.replace("T", " ")[:19]
        agent = f"  {_agent(info.agent_id, info.agent_tier)}" if info.agent_id else ""
        lines.append(
            f"{info.checkpoint_id}  {when}  [{info.session}]{agent}  ~{info.estimated_tokens} tokens"
        )
        lines.extend(f"    {line}" for line in info.notes.splitlines())
    return "\n".join(lines)
