"""Where an in-process commit's milliseconds go: cProfile of ``Store.commit`` and ``load``.

Commits the first ``--steps`` checkpoints of a profile's main session into a fresh
on-disk store (``durability=full``) under cProfile, then loads ``--loads`` random ones,
and prints the time per call grouped by ckptstore module (and by outside library).

    python benchmarks/profile_commit.py --profile long --steps 2000
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import sys
import tempfile
import time
from pathlib import Path

from ckptstore import Store
from workload import PROFILES, generate, profile

__all__ = ["main"]


def _group(filename: str, name: str) -> str:
    """Group a profiled function by ckptstore module, library, or C function."""
    path = Path(filename)
    parts = path.parts
    if "ckptstore" in parts:
        return "ckptstore/" + "/".join(parts[parts.index("ckptstore") + 1 :])
    for lib in ("zstandard", "blake3", "msgpack", "sqlite3", "json"):
        if lib in parts or path.stem == lib or lib in filename:
            return lib
    if filename.startswith("~"):
        return f"C: `{name}`"
    return "other Python"


def _table(stats: pstats.Stats, calls: int, title: str) -> str:
    groups: dict[str, float] = {}
    for (filename, _line, name), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        key = _group(filename, name)
        groups[key] = groups.get(key, 0.0) + tottime
    total = sum(groups.values())
    lines = [f"| {title}: own time by module | ms / call | share |", "|---|---|---|"]
    for key, seconds in sorted(groups.items(), key=lambda kv: -kv[1])[:14]:
        lines.append(f"| {key} | {seconds * 1000 / calls:.3f} | {seconds / total:.0%} |")
    lines.append(f"| total (profiled) | {total * 1000 / calls:.3f} | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="long", choices=sorted(PROFILES))
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--loads", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    states = []
    for step in generate(profile(args.profile), seed=args.seed):
        if step.session == "main":
            states.append(step.state)
        if len(states) >= args.steps:
            break
    with tempfile.TemporaryDirectory(prefix="ckpt-profile-") as tmp:
        store = Store.init(Path(tmp) / ".ckpt", durability="full")
        committing = cProfile.Profile()
        ids = []
        started = time.perf_counter()
        for state in states:
            committing.enable()
            info = store.commit(state, session="main", created_at=state["created_at"])
            committing.disable()
            ids.append(info.id)
        wall = time.perf_counter() - started
        rng = random.Random(args.seed)
        loading = cProfile.Profile()
        for _ in range(args.loads):
            oid = ids[rng.randrange(len(ids))]
            loading.enable()
            store.load(oid)
            loading.disable()
        store.close()
    print(
        f"{len(states)} commits of profile `{args.profile}` in {wall:.1f} s wall "
        f"(with the profiler on), then {args.loads} random loads.\n"
    )
    print(_table(pstats.Stats(committing), len(states), "commit"))
    print()
    print(_table(pstats.Stats(loading), args.loads, "load"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
