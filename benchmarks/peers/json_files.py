"""The original skill's storage: one pretty-printed JSON file per checkpoint."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .base import PYTHON, Peer, Sizes, dir_sizes

__all__ = ["JsonFilesPeer", "seed_diff"]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class JsonFilesPeer(Peer):
    """``storage/<checkpoint_id>.json``, written with ``json.dump(indent=2)``.

    The skill wrote plain files; here each file is fsynced with its directory, so its
    commit latency is measured at the same durability as the SQLite peers.
    """

    name = "json-files"
    durability = "write + fsync(file) + fsync(dir)"
    rewrites = frozenset()
    timed = True

    def __init__(self) -> None:
        self.dir = Path()

    def open(self, root: Path) -> None:
        self.dir = root / "json-files" / "storage"
        self.dir.mkdir(parents=True)

    def commit(self, staged: Any) -> Any:
        state, _session = staged
        path = self.dir / f"{state['checkpoint_id']}.json"
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(state, fh, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
        _fsync_dir(self.dir)
        return path

    def load(self, key: Any) -> dict[str, Any]:
        with open(key, encoding="utf-8") as fh:
            data: dict[str, Any] = json.load(fh)
        return data

    def diff(self, old: Any, new: Any) -> Any:
        return seed_diff(self.load(old), self.load(new))

    def sizes(self) -> Sizes:
        return dir_sizes(self.dir)

    def load_latest_argv(self, key: Any) -> list[str]:
        return [PYTHON, "-c", "import json, sys; json.load(open(sys.argv[1]))", str(key)]


def seed_diff(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """What the original ``checkpoint diff`` reported: phase, tasks, dependencies, variables."""
    out: dict[str, Any] = {}
    if a.get("phase") != b.get("phase"):
        out["phase"] = (a.get("phase"), b.get("phase"))
    old_tasks = {t.get("id"): t for t in a.get("tasks", [])}
    new_tasks = {t.get("id"): t for t in b.get("tasks", [])}
    out["tasks_added"] = [k for k in new_tasks if k not in old_tasks]
    out["tasks_removed"] = [k for k in old_tasks if k not in new_tasks]
    out["task_status"] = {
        k: (old_tasks[k].get("status"), t.get("status"))
        for k, t in new_tasks.items()
        if k in old_tasks and old_tasks[k].get("status") != t.get("status")
    }
    old_deps = {d.get("name"): d.get("status") for d in a.get("dependencies", [])}
    out["dependencies"] = {
        d.get("name"): (old_deps.get(d.get("name")), d.get("status"))
        for d in b.get("dependencies", [])
        if old_deps.get(d.get("name")) != d.get("status")
    }
    va, vb = a.get("variables", {}), b.get("variables", {})
    out["variables"] = {k for k in va.keys() | vb.keys() if va.get(k) != vb.get(k)}
    return out
