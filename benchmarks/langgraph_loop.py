"""The same LangGraph loop on SqliteSaver and on ckptstore's CkptSaver, in one run.

A real ``StateGraph`` whose state is an agent session (issue 7's shape, after the
LangGraph notes in shared/notes): a phase, 200 tasks, 100 small variables and a window
of the last 50 outputs. One node, ``work``, runs once per super-step: it changes one
task's status, sets one variable and appends one output (dropping the oldest), and
returns the three changed channels whole, as LangGraph nodes usually do (so the
pending writes hold them too). Every super-step is one checkpoint, saved with
``durability="sync"`` (the saver's cost is on the clock, not hidden in a background
thread).

Scenarios, each run on both savers:

* ``loop``: one thread, ``--steps`` super-steps.
* ``fleet``: ``--threads`` threads that start from the same input state and run
  ``--fleet-steps`` super-steps each, every thread with its own seed.

Reported per saver: checkpoints, bytes on disk (after closing: SQLite folds the WAL
into the file) and bytes per checkpoint, super-steps per second (wall time of the
``invoke`` calls), and for ckptstore the object counts (``Store.stats``) that show
where the dedup comes from. Both savers write SQLite in WAL mode with
``synchronous=FULL``.

    python benchmarks/langgraph_loop.py                       # 1,000 steps; fleet 10 x 100
    python benchmarks/langgraph_loop.py --durability async    # LangGraph's default mode
    python benchmarks/langgraph_loop.py --steps 100 --threads 3 --fleet-steps 20 --json out.json

Needs the ``langgraph`` extra: ``pip install -e '.[langgraph]'``.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypedDict

from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph

from ckptstore.integrations.langgraph import CkptSaver

WORDS = [
    "api",
    "cache",
    "retry",
    "timeout",
    "handler",
    "request",
    "response",
    "schema",
    "migration",
    "index",
    "query",
    "token",
    "session",
    "checkpoint",
    "store",
    "parser",
    "config",
    "module",
    "service",
    "worker",
    "queue",
    "batch",
    "stream",
    "buffer",
    "payload",
    "client",
    "server",
    "endpoint",
    "error",
    "failure",
    "fix",
    "update",
    "refactor",
    "test",
]
STATUSES = ("pending", "in_progress", "completed", "blocked")


class State(TypedDict):
    phase: dict[str, Any]
    tasks: list[dict[str, Any]]
    variables: dict[str, Any]
    recent_outputs: list[dict[str, Any]]
    step: int
    limit: int
    seed: int


def initial_state(limit: int, seed: int) -> State:
    r = random.Random(7)  # the same base state for every thread
    tasks = [
        {
            "id": f"T{i:04d}",
            "subject": " ".join(r.choices(WORDS, k=r.randint(5, 12))),
            "status": r.choice(STATUSES),
            "owner": f"agent-{r.randint(1, 8)}",
            "blocks": [f"T{r.randrange(200):04d}" for _ in range(r.randint(0, 2))],
        }
        for i in range(200)
    ]
    variables = {
        f"var_{i:03d}": r.choice([r.randint(0, 9999), " ".join(r.choices(WORDS, k=3))])
        for i in range(100)
    }
    outputs = [
        {
            "id": f"O{i:05d}",
            "type": "tool",
            "action": " ".join(r.choices(WORDS, k=8)),
            "success": True,
        }
        for i in range(50)
    ]
    phase = {
        "name": "implementation",
        "number": 3,
        "status": "active",
        "notes": " ".join(r.choices(WORDS, k=20)),
    }
    return {
        "phase": phase,
        "tasks": tasks,
        "variables": variables,
        "recent_outputs": outputs,
        "step": 0,
        "limit": limit,
        "seed": seed,
    }


def work(state: State) -> dict[str, Any]:
    r = random.Random(state["seed"] * 1_000_003 + state["step"])
    tasks = list(state["tasks"])
    i = r.randrange(len(tasks))
    tasks[i] = {**tasks[i], "status": r.choice(STATUSES)}
    variables = {**state["variables"], f"var_{r.randrange(100):03d}": r.randint(0, 9999)}
    seq = 50 + state["step"]
    output = {
        "id": f"O{seq:05d}",
        "type": "tool",
        "action": " ".join(r.choices(WORDS, k=8)),
        "success": r.random() < 0.9,
    }
    return {
        "tasks": tasks,
        "variables": variables,
        "recent_outputs": [*state["recent_outputs"][1:], output],
        "step": state["step"] + 1,
    }


def route(state: State) -> str:
    return "work" if state["step"] < state["limit"] else END


def build_graph() -> StateGraph:
    builder = StateGraph(State)
    builder.add_node("work", work)
    builder.add_edge(START, "work")
    builder.add_conditional_edges("work", route)
    return builder


def run(
    saver: Any, threads: list[tuple[str, int]], steps: int, durability: str = "sync"
) -> tuple[int, float]:
    """Run every thread to completion; return (checkpoints written, seconds)."""
    graph = build_graph().compile(checkpointer=saver)
    start = time.perf_counter()
    for thread_id, seed in threads:
        config = {"configurable": {"thread_id": thread_id}, "recursion_limit": steps + 10}
        graph.invoke(initial_state(steps, seed), config, durability=durability)
    elapsed = time.perf_counter() - start
    count = sum(1 for _ in saver.list(None))
    return count, elapsed


def file_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def sqlite_saver(root: Path) -> tuple[Any, Callable[[], None]]:
    conn = sqlite3.connect(root / "checkpoints.sqlite", check_same_thread=False)
    saver = SqliteSaver(conn)
    saver.setup()  # journal_mode=WAL
    conn.execute("PRAGMA synchronous=FULL")
    return saver, conn.close


def ckpt_saver(root: Path) -> tuple[Any, Callable[[], None]]:
    saver = CkptSaver(root / "store")
    return saver, saver.close


def measure(
    name: str,
    make: Callable[[Path], tuple[Any, Callable[[], None]]],
    threads: list[tuple[str, int]],
    steps: int,
    durability: str,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"lg-{name}-") as tmp:
        root = Path(tmp)
        saver, close = make(root)
        checkpoints, seconds = run(saver, threads, steps, durability)
        stats = None
        if isinstance(saver, CkptSaver):
            s = saver.store.stats(top=0)
            stats = {
                "objects": {kind: v["count"] for kind, v in s.objects.items()},
                "logical_bytes": s.logical_bytes,
                "unique_bytes": s.unique_bytes,
                "stored_bytes": s.stored_bytes,
            }
        close()
        disk = file_bytes(root)
    return {
        "saver": name,
        "checkpoints": checkpoints,
        "supersteps": steps * len(threads),
        "disk_bytes": disk,
        "bytes_per_checkpoint": disk / checkpoints,
        "seconds": seconds,
        "steps_per_second": steps * len(threads) / seconds,
        "ckptstore": stats,
    }


def report(scenario: str, rows: list[dict[str, Any]]) -> None:
    print(f"\n{scenario}")
    print(f"  {'saver':<12} {'checkpoints':>11} {'disk':>10} {'per checkpoint':>15} {'steps/s':>8}")
    for row in rows:
        print(
            f"  {row['saver']:<12} {row['checkpoints']:>11,} {row['disk_bytes'] / 1024:>8,.0f} KiB"
            f" {row['bytes_per_checkpoint'] / 1024:>11,.2f} KiB {row['steps_per_second']:>8,.0f}"
        )
    base, ours = rows
    smaller = base["disk_bytes"] / ours["disk_bytes"]
    speed = ours["steps_per_second"] / base["steps_per_second"]
    print(f"  CkptSaver: {smaller:.1f}x smaller on disk, {speed:.2f}x the steps/s")
    stats = ours["ckptstore"]
    kinds = ", ".join(f"{kind} {count:,}" for kind, count in stats["objects"].items())
    mib = 2**20
    print(
        f"  CkptSaver objects: {sum(stats['objects'].values()):,} ({kinds}); the checkpoints"
        f" as JSON {stats['logical_bytes'] / mib:,.1f} MiB, as distinct objects"
        f" {stats['unique_bytes'] / mib:,.2f} MiB, stored {stats['stored_bytes'] / mib:,.2f} MiB"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1000, help="super-steps of the loop scenario")
    parser.add_argument("--threads", type=int, default=10, help="threads of the fleet scenario")
    parser.add_argument("--fleet-steps", type=int, default=100, help="super-steps per fleet thread")
    parser.add_argument(
        "--durability",
        choices=("sync", "async"),
        default="sync",
        help="LangGraph's: sync waits for each save; async (LangGraph's default) overlaps it",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    scenarios = {
        "loop": ([("loop", 1)], args.steps),
        "fleet": ([(f"fleet-{i}", i + 1) for i in range(args.threads)], args.fleet_steps),
    }
    results: dict[str, list[dict[str, Any]]] = {}
    for scenario, (threads, steps) in scenarios.items():
        rows = [
            measure(name, make, threads, steps, args.durability)
            for name, make in (("SqliteSaver", sqlite_saver), ("CkptSaver", ckpt_saver))
        ]
        results[scenario] = rows
        title = f"{len(threads)} thread(s) x {steps} super-steps, durability={args.durability}"
        report(f"{scenario}: {title}", rows)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
