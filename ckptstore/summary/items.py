"""Summary items: a checkpoint turned into prioritised lines, section by section.

Each entry (a task, a dependency, a variable, an output, an unknown field) becomes one
:class:`~ckptstore.summary.render.Item`: a line of text cut to the level's per-line
allowance, its JSON form (values too long are replaced by ``{"preview", "cut_chars"}``),
and a priority. Lower priorities are shown first: pinned keys (2), failing dependencies
(3), in-progress and failed tasks and failed outputs (4), the task type's variables (5),
key variables (7), available dependencies (8), pending tasks (9), outputs (10), long
variables (11), other fields (12) and completed tasks (13).
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Final, Literal, NamedTuple

from ckptstore.secrets import REDACTED
from ckptstore.summary.render import Group, Item, Section
from ckptstore.tokens import clip_text

__all__ = [
    "HEAD_CAP",
    "STORE_OWNED",
    "TASK_GROUPS",
    "Builder",
    "LevelSpec",
    "Request",
    "TaskProfile",
    "clipped",
    "fields",
    "label",
    "output_failed",
    "output_line",
    "task_line",
    "value_text",
]

HEAD_CAP: Final = 24  # tokens per header line
STORE_OWNED: Final = frozenset(
    {"checkpoint_id", "created_at", "session_id", "content_hash", "parent_checkpoint_id",
     "estimated_tokens"}
)  # fmt: skip
_KNOWN: Final = STORE_OWNED | {
    "phase", "phases_completed", "tasks", "active_task_id", "dependencies", "variables",
    "recent_outputs", "agent_id", "agent_tier",
}  # fmt: skip


class LevelSpec(NamedTuple):
    """What a level shows: its default budget, sections and per-line allowance."""

    budget: int
    tasks: tuple[str, ...]  # task groups listed one by one (the rest only counted)
    task_counts: bool
    details: bool  # dependency type/endpoint, phase notes
    variables: Literal["pinned", "key", "all"]
    outputs: bool
    meta: bool
    cap: int  # tokens per line


TASK_GROUPS: Final = ("in_progress", "failed", "blocked", "pending", "other", "completed")
_TASK_NOUN: Final = {
    "in_progress": "in-progress tasks", "failed": "failed tasks", "blocked": "blocked tasks",
    "pending": "pending tasks", "other": "tasks in other states", "completed": "completed tasks",
}  # fmt: skip
_TASK_PRIORITY: Final = {
    "in_progress": 4, "failed": 4, "blocked": 6, "pending": 9, "other": 9, "completed": 13,
}  # fmt: skip
_TASK_MARK: Final = {
    "in_progress": "~", "failed": "!", "blocked": "#", "pending": " ", "completed": "x",
}  # fmt: skip


class TaskProfile(NamedTuple):
    """What a kind of sub-agent needs: dependency types and variable-name patterns."""

    name: str
    dependency_types: tuple[str, ...] = ()
    variables: tuple[str, ...] = ()
    description: str = ""

    def wants_variable(self, name: str) -> bool:
        """Whether variable ``name`` matches one of the patterns (case-insensitive)."""
        upper = name.upper()
        return any(fnmatch.fnmatchcase(upper, p.upper()) for p in self.variables)

    def wants_dependency(self, dep_type: Any) -> bool:
        """Whether a dependency of type ``dep_type`` is one this task type uses."""
        return isinstance(dep_type, str) and dep_type.lower() in {
            t.lower() for t in self.dependency_types
        }


# --- rendering values on one line --------------------------------------------------


# Every character str.splitlines() breaks on: a summary line stays one line.
_BREAKS: Final = str.maketrans(
    {
        c: json.dumps(c)[1:-1] if ord(c) < 32 else f"\\u{ord(c):04x}"
        for c in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"
    }
)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": ")).translate(_BREAKS)


def preview(value: Any, cap: int) -> tuple[str, int]:
    """A JSON value on one line, cut to ``cap`` tokens; also how many characters were cut."""
    text = _json(value)
    cut = clip_text(text, cap)
    return cut, len(text) - len(cut)


def label(value: Any, cap: int) -> str:
    """A user string shown bare (a task subject, a phase name), cut with a marker."""
    text = value.translate(_BREAKS) if isinstance(value, str) else _json(value)
    cut = clip_text(text, cap)
    return cut if cut == text else f"{cut}… (+{len(text) - len(cut)} chars)"


def value_text(value: Any, cap: int) -> str:
    """A JSON value on one line, cut to ``cap`` tokens with a marker saying how much."""
    if value == REDACTED:
        return REDACTED
    text, lost = preview(value, cap)
    return f"{text}… (+{lost} chars)" if lost else text


def clipped(value: Any, cap: int) -> Any:
    """A JSON value for json output: itself when it fits ``cap``, else a cut preview."""
    if value == REDACTED:
        return value
    text, lost = preview(value, cap)
    return value if not lost else {"preview": text, "cut_chars": lost}


def fields(value: Any, cap: int) -> Any:
    """An entry for json output: an object's fields each :func:`clipped`, else the value."""
    if isinstance(value, dict):
        return {key: clipped(item, cap) for key, item in value.items()}
    return clipped(value, cap)


# --- the items of a checkpoint ----------------------------------------------------


def _task_group(task: Any) -> str:
    status = task.get("status") if isinstance(task, dict) else None
    if status in ("in_progress", "failed", "blocked", "pending", "completed"):
        return str(status)
    return {"error": "failed", "done": "completed", "todo": "pending"}.get(str(status), "other")


def task_line(task: Any, cap: int) -> str:
    """``[~] #7 Deploy gateway @agent-7``: mark, id, subject (cut), owner."""
    if not isinstance(task, dict):
        return value_text(task, cap)
    mark = _TASK_MARK.get(_task_group(task), "?")
    owner = f" @{label(task['owner'], 8)}" if task.get("owner") else ""
    ident = label(task.get("id", "?"), 6)
    status = "" if _task_group(task) != "other" else f" ({label(task.get('status'), 6)})"
    return f"[{mark}] #{ident} {label(task.get('subject', ''), cap - 12)}{status}{owner}"


def _same_id(task: dict[str, Any], ident: Any) -> bool:
    # "2" and 2 name the same task in hand-written checkpoints.
    return task.get("id") == ident or str(task.get("id")) == str(ident)


def _dep_failing(dep: Any) -> bool:
    return not (isinstance(dep, dict) and dep.get("status") == "available")


def _dep_line(dep: Any, cap: int, details: bool) -> str:
    if not isinstance(dep, dict):
        return value_text(dep, cap)
    ok = "✗" if _dep_failing(dep) else "✓"
    name = label(dep.get("name", "?"), 12)
    line = f"{ok} {name}: {label(dep.get('status'), 8)}"
    if details:
        kind = f" ({label(dep['type'], 6)})" if dep.get("type") else ""
        endpoint = f" — {label(dep['endpoint'], cap // 2)}" if dep.get("endpoint") else ""
        line = f"{ok} {name}{kind}: {label(dep.get('status'), 8)}{endpoint}"
    return line


def output_failed(out: Any) -> bool:
    """Whether an output records a failure (``"success": false``)."""
    return isinstance(out, dict) and out.get("success") is False


def output_line(out: Any, cap: int) -> str:
    """``✗ evidence · terraform · evd-1 · <time>`` (any other value as JSON)."""
    if not isinstance(out, dict):
        return value_text(out, cap)
    ok = "✗" if output_failed(out) else "✓"
    parts = [out.get(k) for k in ("type", "action", "id", "timestamp")]
    shown = " · ".join(label(p, max(cap // 4, 16)) for p in parts if p not in (None, ""))
    return f"{ok} {shown}"


def _var_line(name: str, value: Any, cap: int) -> str:
    shown = value_text(value, max(cap - 8, 8))
    return f"{label(name, 12)} = {shown}"


def _task_item(task: Any, cap: int) -> tuple[str, Any]:
    return task_line(task, cap), fields(task, cap)


def _dep_item(dep: Any, cap: int, details: bool) -> tuple[str, Any]:
    return _dep_line(dep, cap, details), fields(dep, cap)


def _output_item(out: Any, cap: int) -> tuple[str, Any]:
    return output_line(out, cap), fields(out, cap)


def _var_item(name: str, value: Any, cap: int) -> tuple[str, Any]:
    return _var_line(name, value, cap), {"name": name, "value": clipped(value, cap)}


def _missing_item(name: str) -> tuple[str, Any]:
    return f"{label(name, 12)} = (not set)", {"name": name, "set": False}


def _is_key_variable(value: Any) -> bool:
    """Short scalars (counters, flags, names, targets): the variables compact shows."""
    if isinstance(value, dict | list):
        return False
    return not isinstance(value, str) or len(value) <= 80


@dataclass(slots=True)
class Request:
    """What a summary was asked for: level, task type, pinned keys and budget."""

    level: LevelSpec
    level_name: str
    profile: TaskProfile | None
    keys: tuple[str, ...]
    budget: int


class Builder:
    """Turns one (redacted) checkpoint into a document of prioritised items."""

    def __init__(self, data: Mapping[str, Any], request: Request) -> None:
        self.data = data
        self.req = request
        self.spec = request.level

    def _list(self, name: str) -> list[Any]:
        value = self.data.get(name)
        return value if isinstance(value, list) else []

    def head(self) -> list[tuple[str, str, Any]]:
        """(label, text, json) of the header lines, each cut to ``HEAD_CAP``."""
        data = self.data
        lines: list[tuple[str, str, Any]] = []
        phase = data.get("phase")
        if isinstance(phase, dict):
            parts = [phase.get("number"), phase.get("name"), phase.get("status")]
            text = " · ".join(label(p, 12) for p in parts if p not in (None, ""))
            lines.append(("Phase", text or "-", phase))
        elif "phase" in data:
            lines.append(("Phase", label(phase, 12), phase))
        agent_id, tier = data.get("agent_id"), data.get("agent_tier")
        if agent_id is not None or tier is not None:
            text = label(agent_id or "?", 12) + (
                f" (tier {label(tier, 4)})" if tier is not None else ""
            )
            lines.append(("Agent", text, {"id": agent_id, "tier": tier}))
        active = data.get("active_task_id")
        if active is not None:
            task = next(
                (t for t in self._list("tasks") if isinstance(t, dict) and _same_id(t, active)),
                None,
            )
            text = (
                task_line(task, 20)
                if task is not None
                else f"#{label(active, 8)} (not in the task list)"
            )
            lines.append(("Active task", text, task if task is not None else {"id": active}))
        if self.spec.meta:
            for name in ("session_id", "created_at", "parent_checkpoint_id", "estimated_tokens"):
                if data.get(name) is not None:
                    lines.append((name, label(data[name], 12), data[name]))
            done = data.get("phases_completed")
            if done:
                lines.append(("Completed phases", label(done, 16), done))
        return [(name, clip_text(text, HEAD_CAP), value) for name, text, value in lines]

    def tasks(self) -> Section | None:
        """Task counts by status; the level's groups listed task by task."""
        if not self.spec.task_counts or "tasks" not in self.data:
            return None
        tasks = self._list("tasks")
        groups: dict[str, list[Item]] = {g: [] for g in TASK_GROUPS}
        counts: dict[str, int] = dict.fromkeys(TASK_GROUPS, 0)
        for task in tasks:
            group = _task_group(task)
            counts[group] += 1
            if group in self.spec.tasks:
                make = partial(_task_item, task, self.spec.cap)
                groups[group].append(Item(_TASK_PRIORITY[group], make))
        shown = {g: n for g, n in counts.items() if n}
        summary = ", ".join(f"{n} {_TASK_NOUN[g].removesuffix(' tasks')}" for g, n in shown.items())
        title = f"Tasks: {len(tasks)}" + (f" ({summary})" if summary else "")
        listed = [Group(f"tasks.{g}", _TASK_NOUN[g], groups[g]) for g in self.spec.tasks]
        return Section("tasks", title, listed, {"total": len(tasks), "counts": shown})

    def dependencies(self) -> Section | None:
        """Failing dependencies, then available ones (of the task type's kinds, if any)."""
        deps = self._list("dependencies")
        if not deps:
            return None
        profile, excluded = self.req.profile, 0
        failing: list[Item] = []
        available: list[Item] = []
        for dep in deps:
            kind = dep.get("type") if isinstance(dep, dict) else None
            bad = _dep_failing(dep)
            if profile is not None and not bad and not profile.wants_dependency(kind):
                excluded += 1
                continue
            # Available dependencies rank with failing ones: knowing what is up is the
            # minimal level's content, worth more than the fiftieth task.
            make = partial(_dep_item, dep, self.spec.cap, self.spec.details)
            (failing if bad else available).append(Item(3, make))
        groups = [
            Group("dependencies.failing", "failing dependencies", failing),
            Group("dependencies.available", "available dependencies", available, excluded),
        ]
        title = f"Dependencies: {len(deps)} ({len(deps) - sum(map(_dep_failing, deps))} available)"
        return Section("dependencies", title, groups, {"total": len(deps)})

    def variables(self) -> Section | None:
        """Pinned keys, then the task type's or the level's variables."""
        variables = self.data.get("variables")
        variables = variables if isinstance(variables, dict) else {}
        items: list[Item] = []
        pinned = set(self.req.keys)
        for key in self.req.keys:
            if key in variables:
                value = variables[key]
            elif key in self.data and key != "variables":
                value = self.data[key]
            else:
                items.append(Item(2, partial(_missing_item, key)))
                continue
            items.append(Item(2, partial(_var_item, key, value, max(self.spec.cap, 120))))
        excluded = 0
        profile, mode = self.req.profile, self.spec.variables
        for name, value in variables.items():
            if name in pinned:
                continue
            if profile is not None and profile.wants_variable(name):
                priority = 5
            elif mode == "all" and profile is None:
                priority = 7 if _is_key_variable(value) else 11
            elif mode == "key" and profile is None and _is_key_variable(value):
                priority = 7
            else:
                excluded += 1
                continue
            items.append(Item(priority, partial(_var_item, name, value, self.spec.cap)))
        if not items and (not excluded or mode == "pinned"):
            return None
        title = f"Variables: {len(variables)}"
        group = Group("variables", "variables", items, excluded)
        return Section("variables", title, [group], {"total": len(variables)})

    def outputs(self) -> Section | None:
        """Recent outputs, newest first, failures first."""
        outputs = self._list("recent_outputs")
        if not self.spec.outputs or not outputs:
            return None
        failed: list[Item] = []
        done: list[Item] = []
        for out in reversed(outputs):  # newest first
            make = partial(_output_item, out, self.spec.cap)
            bad = output_failed(out)
            (failed if bad else done).append(Item(4 if bad else 10, make))
        groups = [
            Group("recent_outputs.failed", "failed outputs", failed),
            Group("recent_outputs.other", "outputs", done),
        ]
        return Section(
            "recent_outputs",
            f"Recent outputs: {len(outputs)} (newest first)",
            groups,
            {"total": len(outputs)},
        )

    def other_fields(self) -> Section | None:
        """Top-level fields the format does not name (full level)."""
        extra = {k: v for k, v in self.data.items() if k not in _KNOWN}
        if not self.spec.meta or not extra:
            return None
        items = [Item(12, partial(_var_item, k, v, self.spec.cap)) for k, v in extra.items()]
        return Section(
            "other_fields",
            f"Other fields: {len(extra)}",
            [Group("other_fields", "other fields", items)],
            {"total": len(extra)},
        )
