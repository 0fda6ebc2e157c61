"""Hypothesis strategies: JSON values and checkpoints in the seed's format."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import strategies as st

INT64 = st.integers(min_value=-(2**63), max_value=2**64 - 1)
FLOATS = st.floats(allow_nan=False, allow_infinity=False)
# Any unicode except lone surrogates (not encodable, rejected by design).
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
KEYS = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)

SCALARS = st.none() | st.booleans() | INT64 | FLOATS | TEXT


def json_values(max_leaves: int = 20) -> st.SearchStrategy[Any]:
    """Arbitrary JSON values (as Python objects) within the store's rules."""
    return st.recursive(
        SCALARS,
        lambda inner: st.lists(inner, max_size=5) | st.dictionaries(KEYS, inner, max_size=5),
        max_leaves=max_leaves,
    )


TASK_IDS = st.one_of(st.text("0123456789", min_size=1, max_size=4), st.integers(0, 9999))


@st.composite
def tasks(draw: st.DrawFn) -> dict[str, Any]:
    task: dict[str, Any] = {}
    if draw(st.integers(0, 9)) > 0:  # now and then no id at all: missing ids must survive
        task["id"] = draw(TASK_IDS)
    task["subject"] = draw(TEXT)
    task["status"] = draw(st.sampled_from(["pending", "in_progress", "completed", "failed"]))
    task["owner"] = draw(st.none() | TEXT)
    task["blocks"] = draw(st.lists(TASK_IDS, max_size=3))
    task["blocked_by"] = draw(st.lists(TASK_IDS, max_size=3))
    task.update(
        draw(st.dictionaries(KEYS.filter(lambda k: k not in task), json_values(4), max_size=2))
    )
    return task


@st.composite
def dependencies(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "name": draw(TEXT),
        "type": draw(st.sampled_from(["service", "database", "cache"])),
        "status": draw(st.sampled_from(["available", "unavailable", "degraded"])),
        "endpoint": draw(st.none() | TEXT),
        "last_checked": draw(TEXT),
    }


SEED_FIELDS = (
    "phase", "phases_completed", "tasks", "active_task_id", "dependencies",
    "variables", "recent_outputs", "agent_id", "agent_tier",
)  # fmt: skip
STORE_OWNED = (
    "checkpoint_id", "created_at", "session_id", "content_hash",
    "parent_checkpoint_id", "estimated_tokens",
)  # fmt: skip


@st.composite
def checkpoints(draw: st.DrawFn, max_tasks: int = 12) -> dict[str, Any]:
    """A checkpoint in the seed's format; any field may be absent, unknown fields appear."""
    full: dict[str, Any] = {
        "phase": draw(
            st.none()
            | st.fixed_dictionaries(
                {"name": TEXT, "number": st.integers(0, 20), "status": TEXT},
                optional={"started_at": TEXT, "notes": TEXT},
            )
        ),
        "phases_completed": draw(st.lists(st.integers(0, 20), max_size=5)),
        # Duplicated tasks happen in real files; keep some.
        "tasks": draw(
            st.lists(tasks(), max_size=max_tasks).flatmap(
                lambda ts: st.just(ts + ts[:1]) if ts and len(ts) % 3 == 0 else st.just(ts)
            )
        ),
        "active_task_id": draw(st.none() | TASK_IDS),
        "dependencies": draw(st.lists(dependencies(), max_size=4)),
        "variables": draw(st.dictionaries(KEYS, json_values(), max_size=8)),
        "recent_outputs": draw(st.lists(json_values(6), max_size=6)),
        "agent_id": draw(st.none() | TEXT),
        "agent_tier": draw(st.none() | st.integers(0, 5)),
    }
    present = draw(st.sets(st.sampled_from(SEED_FIELDS)))
    state = {k: v for k, v in full.items() if k in present}
    extra = draw(
        st.dictionaries(
            KEYS.filter(lambda k: k not in SEED_FIELDS and k not in STORE_OWNED),
            json_values(6),
            max_size=3,
        )
    )
    state.update(extra)
    return state


def user_fields(loaded: dict[str, Any]) -> dict[str, Any]:
    """A loaded checkpoint without the store-owned fields."""
    return {k: v for k, v in loaded.items() if k not in STORE_OWNED}


@st.composite
def edited_pairs(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """A checkpoint and a version of it with a few realistic edits."""
    old = draw(checkpoints(max_tasks=30))
    new = copy.deepcopy(old)
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(
            st.sampled_from(["task", "insert", "delete", "move", "var", "unset", "out", "meta"])
        )
        tasks = new.setdefault("tasks", [])
        if kind == "task" and tasks:
            task = tasks[draw(st.integers(0, len(tasks) - 1))]
            name = draw(st.sampled_from(["status", "owner", "subject", "extra"]))
            values = json_values(3) if name == "extra" else st.none() | st.text(max_size=8)
            task[name] = draw(values)
        elif kind == "insert":
            tasks.insert(
                draw(st.integers(0, len(tasks))),
                {"id": draw(st.text("abc", min_size=1, max_size=3))},
            )
        elif kind == "delete" and tasks:
            del tasks[draw(st.integers(0, len(tasks) - 1))]
        elif kind == "move" and len(tasks) > 1:
            tasks.append(tasks.pop(draw(st.integers(0, len(tasks) - 2))))
        elif kind == "var":
            new.setdefault("variables", {})[draw(KEYS)] = draw(json_values(4))
        elif kind == "unset" and new.get("variables"):
            del new["variables"][draw(st.sampled_from(sorted(new["variables"])))]
        elif kind == "out":
            outputs = new.setdefault("recent_outputs", [])
            new["recent_outputs"] = [*outputs[1:], draw(json_values(3))]
        elif kind == "meta":
            new["agent_tier"] = draw(st.none() | st.integers(0, 5))
    return old, new
