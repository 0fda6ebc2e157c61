"""ckptstore itself: the store under test, in process and through the ``ckpt`` CLI."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

from ckptstore import Store
from ckptstore.refs import Refs

from .base import PYTHON, Peer, Sizes, dir_sizes

__all__ = ["CkptPeer", "ckpt_argv"]

# Store-owned fields: ckptstore sets them from the commit, so they are not compared.
# session_id is compared (it must name the session the checkpoint was committed to).
_OWNED = frozenset(
    {"checkpoint_id", "created_at", "content_hash", "parent_checkpoint_id", "estimated_tokens"}
)
_SMALL = 2048  # a blob at or above this many raw bytes counts as a large text value


def ckpt_argv() -> list[str]:
    """How to run the ``ckpt`` command of this interpreter's environment."""
    script = Path(PYTHON).parent / "ckpt"
    if script.exists():
        return [str(script)]
    found = shutil.which("ckpt")
    return [found] if found else [PYTHON, "-m", "ckpt_cli"]


class CkptPeer(Peer):
    """ckptstore with its default SQLite backend and ``durability=full``."""

    name = "ckptstore"
    durability = "SQLite WAL, synchronous=FULL (ckpt init default)"
    rewrites = _OWNED
    timed = True

    def __init__(self) -> None:
        self.store: Store | None = None
        self.dir = Path()
        self.written: list[int] = []  # compressed bytes of new objects, per in-process commit
        self.new_objects: list[int] = []
        self.server: subprocess.Popen[bytes] | None = None

    def open(self, root: Path) -> None:
        self.dir = root / "ckptstore" / ".ckpt"
        self.store = Store.init(self.dir, durability="full")

    def _fork(self, session: str, fork_of: str) -> None:
        # No public fork command yet: point the new session's ref at the base head through
        # the backend's compare-and-swap, as a fork command would.
        assert self.store is not None
        head = self.store.refs.session_head(fork_of)
        if head is not None and self.store.refs.session_head(session) is None:
            update = Refs.session_update(session, None, head, f"fork: from {fork_of}")
            result = self.store.backend.write([], [update])
            assert result.ok, f"forking {session} from {fork_of} failed"

    def stage(self, state: dict[str, Any], session: str, fork_of: str | None) -> Any:
        if fork_of is not None:
            self._fork(session, fork_of)
        return state, session

    def commit(self, staged: Any) -> Any:
        assert self.store is not None
        state, session = staged
        stats = self.store.objects.stats
        before, count = stats.bytes_written, stats.objects_written
        info = self.store.commit(state, session=session, created_at=state["created_at"])
        self.written.append(stats.bytes_written - before)
        self.new_objects.append(stats.objects_written - count)
        return info.id

    def start_server(self, log: Path) -> None:
        """Run ``ckpt serve`` on the store (its log outside it: sizes count the store)."""
        argv = [*ckpt_argv(), "--store", str(self.dir), "serve", "--idle", "7200"]
        with open(log, "wb") as out:
            self.server = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stderr=out)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(str(self.dir / "serve.sock"))
            except OSError:
                time.sleep(0.05)
                continue
            finally:
                probe.close()
            return
        raise RuntimeError(f"ckpt serve did not start; see {log}")

    def stop_server(self) -> None:
        if self.server is not None:
            self.server.terminate()
            self.server.wait(timeout=30)
            self.server = None

    def cli_commit(self, path: Path, session: str, *, served: bool = False) -> tuple[Any, float]:
        """Commit the checkpoint file at ``path`` through ``ckpt commit``; (key, seconds).

        ``served``: handed to the running ``ckpt serve``; else in a process of its own.
        """
        argv = [*ckpt_argv(), "--store", str(self.dir), "commit", "--state", str(path)]
        argv += ["--session", session, "--json"]
        env = dict(os.environ)
        if served:
            assert self.server is not None, "start_server first"
            env.pop("CKPT_NO_SERVER", None)
        else:
            env["CKPT_NO_SERVER"] = "1"
        start = time.perf_counter()
        out = subprocess.run(argv, capture_output=True, check=True, text=True, env=env)
        seconds = time.perf_counter() - start
        return json.loads(out.stdout)["id"], seconds

    def load(self, key: Any) -> dict[str, Any]:
        assert self.store is not None
        return self.store.load(key)

    def diff(self, old: Any, new: Any) -> Any:
        assert self.store is not None
        differ = getattr(self.store, "diff", None)
        if differ is None:
            raise NotImplementedError("Store.diff does not exist yet")
        return differ(old, new)

    def gc(self) -> Any:
        """Run the store's gc, when it has one."""
        assert self.store is not None
        collect = getattr(self.store, "gc", None)
        if collect is None:
            raise NotImplementedError("Store.gc does not exist yet")
        return collect()

    def sizes(self) -> Sizes:
        return dir_sizes(self.dir)

    def load_latest_argv(self, key: Any) -> list[str]:
        return [*ckpt_argv(), "--store", str(self.dir), "load", str(key), "--json"]

    def finish(self) -> dict[str, Any]:
        """Close the store (so its WAL is folded into the file) and break its bytes down."""
        self.stop_server()
        if self.store is not None:
            self.store.close()
            self.store = None
        return breakdown(self.dir / "store.db")

    def close(self) -> None:
        self.stop_server()
        if self.store is not None:
            self.store.close()
            self.store = None


def breakdown(db: Path) -> dict[str, Any]:
    """Where a store file's bytes go: objects by kind and size, and SQLite's overhead."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        out: dict[str, Any] = {}
        rows = conn.execute(
            "SELECT kind, raw_len >= ?, count(*), sum(raw_len), sum(length(data)) "
            "FROM objects GROUP BY 1, 2",
            (_SMALL,),
        ).fetchall()
        labels = {1: "blob", 2: "tree", 3: "commit"}
        for kind, large, count, raw, stored in rows:
            label = labels.get(kind, str(kind))
            if kind == 1:
                label += f" >= {_SMALL} B" if large else f" < {_SMALL} B"
            entry = out.setdefault(label, {"count": 0, "raw": 0, "stored": 0})
            entry["count"] += count
            entry["raw"] += raw
            entry["stored"] += stored
        (page_size,) = conn.execute("PRAGMA page_size").fetchone()
        (pages,) = conn.execute("PRAGMA page_count").fetchone()
        (free,) = conn.execute("PRAGMA freelist_count").fetchone()
        tables: dict[str, dict[str, int]] = {}
        try:
            for name, pgsize, payload, unused in conn.execute(
                "SELECT name, sum(pgsize), sum(payload), sum(unused) FROM dbstat GROUP BY name"
            ):
                tables[name] = {"pages": pgsize, "payload": payload, "unused": unused}
        except sqlite3.Error:
            tables = {}
        out["_sqlite"] = {
            "file": pages * page_size,
            "page_size": page_size,
            "free_pages": free,
            "tables": tables,
        }
        return out
    finally:
        conn.close()
