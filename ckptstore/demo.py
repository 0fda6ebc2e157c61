"""Demo: a seeded simulation of a long-running agent session, committed step by step.

It produces checkpoints in the seed's format with the dynamics of a real session: a task
list that grows, a few status changes per step, dependencies re-checked every step (and
now and then going down), counters and a long plan edited by small insertions, outputs
kept as a sliding window, and a phase change. ``ckpt demo`` runs it on a fresh store and
compares the store's size with the JSON it was given.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from ckptstore.store import Store

__all__ = ["DemoResult", "run_demo", "simulate"]

_SUBJECTS = (
    "Provision {} bucket",
    "Rotate {} credentials",
    "Write tests for {}",
    "Migrate {} schema",
    "Review {} policy",
    "Deploy {} service",
    "Benchmark {} path",
    "Document {} API",
)
_NOUNS = ("ledger", "vault", "gateway", "planner", "indexer", "billing", "auth", "cache")
_WORDS = ("then", "verify", "the", "rollout,", "record", "evidence,", "and", "re-check", "first")


def _plan(rng: random.Random, size: int) -> str:
    return "\n".join(
        f"{n + 1}. " + " ".join(rng.choice(_WORDS) for _ in range(rng.randint(6, 14)))
        for n in range(size)
    )


def simulate(steps: int, *, seed: int = 7) -> Iterator[dict[str, Any]]:
    """Yield ``steps`` successive checkpoint states of one simulated agent session."""
    rng = random.Random(seed)
    clock = datetime(2026, 1, 23, 10, 0, tzinfo=UTC)
    tasks: list[dict[str, Any]] = []
    outputs: list[dict[str, Any]] = []
    deps = [
        {"name": name, "type": kind, "status": "available", "endpoint": url, "last_checked": ""}
        for name, kind, url in (
            ("vault", "service", "https://127.0.0.1:8200"),
            ("dragonfly", "cache", "redis://127.0.0.1:6379"),
            ("ledger", "database", "sqlite:///var/lib/ledger.db"),
        )
    ]
    plan = _plan(rng, 120)
    phase = {"name": "Phase 5: Agent Bootstrapping", "number": 5, "status": "in_progress"}
    phase["started_at"] = clock.isoformat()
    completed = [1, 2, 3, 4]
    for step in range(steps):
        clock += timedelta(seconds=rng.randint(20, 90))
        if len(tasks) < 40 or rng.random() < 0.3:
            subject = rng.choice(_SUBJECTS).format(rng.choice(_NOUNS))
            tasks.append(
                {
                    "id": str(len(tasks) + 1),
                    "subject": subject,
                    "status": "pending",
                    "owner": None,
                    "blocks": [],
                    "blocked_by": [],
                }
            )
        for task in rng.sample(tasks, k=min(len(tasks), rng.randint(1, 3))):
            task["status"] = {"pending": "in_progress", "in_progress": "completed"}.get(
                task["status"], task["status"]
            )
            if task["status"] == "in_progress":
                task["owner"] = "agent-7"
        for dep in deps:
            dep["last_checked"] = clock.isoformat()
            if rng.random() < 0.02:
                dep["status"] = "unavailable" if dep["status"] == "available" else "available"
        cut = rng.randrange(len(plan))
        plan = plan[:cut] + f" [{step}: {rng.choice(_WORDS)}]" + plan[cut:]
        outputs = [
            *outputs,
            {
                "type": "evidence",
                "id": f"evd-{step:05d}",
                "action": rng.choice(_NOUNS),
                "success": rng.random() > 0.1,
                "timestamp": clock.isoformat(),
            },
        ][-20:]
        if step == steps // 2:
            completed = [*completed, 5]
            phase = {
                "name": "Phase 6: Multi-agent hand-off",
                "number": 6,
                "status": "in_progress",
                "started_at": clock.isoformat(),
            }
        active = next((t["id"] for t in tasks if t["status"] == "in_progress"), None)
        yield {
            "phase": dict(phase),
            "phases_completed": list(completed),
            "tasks": [dict(t) for t in tasks],
            "active_task_id": active,
            "dependencies": [dict(d) for d in deps],
            "variables": {
                "step": step,
                "plan": plan,
                "target_env": "staging" if step < steps // 2 else "production",
                "retries": step // 25,
            },
            "recent_outputs": list(outputs),
            "agent_id": "agent-7",
            "agent_tier": 1,
        }


class DemoResult(NamedTuple):
    """What a demo run committed: how many checkpoints, and the JSON they amount to."""

    checkpoints: int
    json_bytes: int
    json_file_blocks: int
    first_id: str
    last_id: str


def run_demo(store: Store, *, steps: int = 300, seed: int = 7) -> DemoResult:
    """Commit ``steps`` simulated checkpoints to ``store``.

    ``json_bytes`` counts the JSON the store was given: every checkpoint as the
    pretty-printed JSON file the original skill would have written for it;
    ``json_file_blocks`` is what those files would allocate on disk.
    """
    total = blocks = 0
    first = last = ""
    for state in simulate(steps, seed=seed):
        info = store.commit(state, session="demo", notes=f"step {state['variables']['step']}")
        size = len(json.dumps(state, indent=2).encode())
        total += size
        blocks += -(-size // 4096) * 4096  # a file takes whole 4 KiB blocks on ext4
        first = first or info.checkpoint_id
        last = info.checkpoint_id
    return DemoResult(steps, total, blocks, first, last)
