"""gc and fsck on a store of a million objects: time, peak memory, file sizes.

Builds a store of agent sessions (``--objects``, default 1,000,000), drops half of the
sessions so about half of the objects become garbage, makes every object two hours
old, then runs each measurement in a fresh process (so its peak RSS is its own):

* ``fsck`` of the full store;
* ``gc`` with the marks in SQLite (a temporary table; the default) and, on an identical
  copy of the store, ``gc`` with the marks in a Python set;
* a second ``gc`` right after (nothing left to delete: the cost of a mark);
* ``fsck`` and ``stats`` of the collected store;
* ``gc --compact``'s rewrite of the file (``VACUUM``) alone, on the collected copy.

Usage::

    python benchmarks/gc_scale.py                      # 1,000,000 objects
    python benchmarks/gc_scale.py --objects 100000     # quicker
    python benchmarks/gc_scale.py --dir DIR --keep     # keep the stores (and a pristine copy)
    python benchmarks/gc_scale.py --from DIR/pristine/.ckpt   # measure again, no rebuild

Prints a Markdown table and the same figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ckptstore import Store
from ckptstore.backends.base import RefUpdate
from ckptstore.backends.sqlite import SQLiteBackend
from ckptstore.gc import collect_garbage

SESSIONS = 20
TASKS = 60  # per checkpoint; 40 replaced each step
VARIABLES = 20  # 10 changed each step
OUTPUTS = 10  # a window; 3 new each step


def checkpoint(session: int, step: int) -> dict[str, Any]:
    """One step of an agent session: most tasks new, half the variables changed."""
    tag = f"s{session}-{step}"
    tasks = [
        {
            "id": str(t),
            # Long enough to be a blob of its own (records up to 256 bytes are inline):
            # the point is a graph of a million objects.
            "subject": f"task {t} of session {session}: {'old' if t < 20 else tag} work item"
            + " with its notes" * 16,
            "status": "completed" if (t + step) % 3 else "in_progress",
            "blocks": [],
            "blocked_by": [str(t - 1)] if t else [],
        }
        for t in range(TASKS)
    ]
    variables = {
        f"v{k}": f"{'stable' if k % 2 else tag} value of variable {k} " * 10
        for k in range(VARIABLES)
    }
    outputs = [
        {"type": "log", "id": f"s{session}-{step - k}", "action": "ran a tool", "success": True}
        for k in range(min(OUTPUTS, step + 1))
    ]
    return {
        "phase": {"name": "work", "number": step // 500, "status": "in_progress"},
        "tasks": tasks,
        "variables": variables,
        "recent_outputs": outputs,
        "agent_id": f"agent-{session}",
    }


def build(directory: Path, objects: int) -> dict[str, Any]:
    """A store of about ``objects`` objects; half of its sessions dropped, all aged 2 h."""
    began = time.perf_counter()
    steps = 0
    with Store.init(directory, durability="fast") as store:
        while True:
            for session in range(SESSIONS):
                store.commit(checkpoint(session, steps), session=f"agent-{session}")
            steps += 1
            if steps % 50 == 0:
                count = sum(k.count for k in store.backend.usage().kinds.values())
                print(f"  built {count:,} objects ({steps * SESSIONS:,} checkpoints)", flush=True)
                if count >= objects:
                    break
        for session in range(0, SESSIONS, 2):
            name = f"sessions/agent-{session}"
            head = store.backend.get_ref(name)
            assert store.backend.write([], [RefUpdate(name, head, None, "drop")]).ok
        store.backend.reclaim()
    with sqlite3.connect(directory / "store.db") as conn:
        conn.execute("UPDATE objects SET created_at = created_at - 7200")
    conn.close()
    return {"checkpoints": steps * SESSIONS, "build_seconds": time.perf_counter() - began}


def files(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.glob("store.db*"))


def measure(phase: str, directory: Path) -> dict[str, Any]:
    """Run one phase in this process; report its time and this process's peak RSS."""
    before = files(directory)
    with Store.open(directory) as store:
        began = time.perf_counter()
        result: dict[str, Any] = {}
        if phase == "fsck":
            report = store.fsck()
            assert report.ok, report.problems[:5]
            result["objects"] = sum(report.objects.values())
        elif phase.startswith("gc"):
            strategy = "python" if phase == "gc-python" else "sql"
            assert isinstance(store.backend, SQLiteBackend)
            backend = store.backend
            stats = collect_garbage(
                store.objects,
                grace=3600,
                reflog_expiry=0,
                marks=lambda: backend.marks(strategy=strategy),  # type: ignore[arg-type]
            )
            result.update(
                removed=stats.objects_removed,
                reachable=stats.objects_reachable,
                bytes_removed=stats.bytes_removed,
            )
        elif phase == "compact":
            store.backend.reclaim(compact=True)
        elif phase == "stats":
            stats_ = store.stats()
            result.update(checkpoints=stats_.checkpoints, ratio=round(stats_.total_ratio, 2))
        seconds = time.perf_counter() - began
    result.update(
        phase=phase,
        seconds=round(seconds, 2),
        peak_rss_mib=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        file_before=before,
        file_after=files(directory),
    )
    return result


def run_phase(phase: str, directory: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--phase", phase, "--dir", str(directory)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{phase} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    print(f"  {phase}: {result['seconds']} s, peak RSS {result['peak_rss_mib']} MiB", flush=True)
    return result


def baseline_rss() -> float:
    code = "import resource, ckptstore; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return round(int(done.stdout) / 1024, 1)


def mib(n: int) -> str:
    return f"{n / (1 << 20):,.1f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the stores afterwards")
    parser.add_argument("--from", dest="source", type=Path, help="copy this built store")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(measure(args.phase, args.dir)))
        return
    root = args.dir or Path(tempfile.mkdtemp(prefix="ckpt-gc-scale-"))
    sql_dir, py_dir = root / "sql" / ".ckpt", root / "python" / ".ckpt"
    if args.source:
        shutil.copytree(args.source, sql_dir)
        with Store.open(sql_dir) as store:
            commits = store.backend.usage().kinds[3].count  # every checkpoint built
        built = {"checkpoints": commits, "build_seconds": 0.0}
    else:
        print(f"building a store of {args.objects:,} objects in {root}", flush=True)
        built = build(sql_dir, args.objects)
        if args.keep:
            shutil.copytree(sql_dir, root / "pristine" / ".ckpt")
    shutil.copytree(sql_dir, py_dir)
    results = {
        "objects": args.objects,
        **built,
        "baseline_rss_mib": baseline_rss(),
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
        "cpus": os.cpu_count(),
    }
    phases = [
        ("fsck before gc", "fsck", sql_dir),
        ("gc, marks in SQLite", "gc-sql", sql_dir),
        ("gc, marks in a Python set", "gc-python", py_dir),
        ("second gc (nothing to delete)", "gc-sql", sql_dir),
        ("fsck after gc", "fsck", sql_dir),
        ("stats after gc", "stats", sql_dir),
        ("compact (VACUUM) after gc", "compact", py_dir),
    ]
    rows = []
    for label, phase, directory in phases:
        result = run_phase(phase, directory)
        results[label] = result
        rows.append((label, result))
    print()
    print(f"store: {built['checkpoints']:,} checkpoints, built in {built['build_seconds']:.0f} s;"
          f" baseline RSS (python + ckptstore) {results['baseline_rss_mib']} MiB")  # fmt: skip
    print()
    print("| run | objects | removed | time | peak RSS | file before | file after |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, r in rows:
        if "removed" in r:
            count = f"{r['reachable'] + r['removed']:,}"
        else:
            count = f"{r['objects']:,}" if "objects" in r else ""
        removed = f"{r['removed']:,}" if "removed" in r else ""
        print(
            f"| {label} | {count} | {removed} | {r['seconds']:.1f} s"
            f" | {r['peak_rss_mib']:.0f} MiB | {mib(r['file_before'])} | {mib(r['file_after'])} |"
        )
    print()
    print(json.dumps(results, indent=2))
    if not args.keep and args.dir is None:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
