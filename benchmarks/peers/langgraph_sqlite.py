"""LangGraph's ``SqliteSaver`` (langgraph-checkpoint-sqlite), driven through ``put``.

One channel per top-level section of the checkpoint; a channel's version is bumped
only when its value changed since the session's previous checkpoint (what pregel's
``get_new_channel_versions`` hands a saver). Building the ``Checkpoint`` dict is
untimed, as it is pregel's work; only ``put`` and ``get_tuple`` are timed.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from .base import PYTHON, Peer, Sizes, Unavailable, dir_sizes

__all__ = ["SqliteSaverPeer"]

try:  # the `bench` extra; the core test extras do not install it
    from langgraph.checkpoint.base.id import uuid6
    from langgraph.checkpoint.sqlite import SqliteSaver
except ImportError as err:  # pragma: no cover - depends on the environment
    _MISSING: str | None = f"langgraph-checkpoint-sqlite is not installed ({err.name})"
else:
    _MISSING = None

_LOAD_LATEST = """
import sqlite3, sys
from langgraph.checkpoint.sqlite import SqliteSaver
saver = SqliteSaver(sqlite3.connect(sys.argv[1], check_same_thread=False))
thread, checkpoint = sys.argv[2], sys.argv[3]
config = {"configurable": {"thread_id": thread, "checkpoint_ns": "", "checkpoint_id": checkpoint}}
assert saver.get_tuple(config) is not None
"""


class SqliteSaverPeer(Peer):
    """``SqliteSaver`` on a file in WAL mode with ``synchronous=FULL`` (one fsync per put)."""

    name = "sqlite-saver"
    durability = "SQLite WAL, synchronous=FULL"
    rewrites = frozenset()
    timed = True

    def __init__(self) -> None:
        if _MISSING is not None:
            raise Unavailable(_MISSING)
        self.path = Path()
        self.conn: sqlite3.Connection | None = None
        self.saver: Any = None
        self.heads: dict[str, tuple[str, dict[str, Any], dict[str, int], int]] = {}

    def open(self, root: Path) -> None:
        (root / "sqlite-saver").mkdir(parents=True)
        self.path = root / "sqlite-saver" / "checkpoints.sqlite"
        self.conn = sqlite3.connect(self.path, check_same_thread=False)
        self.saver = SqliteSaver(self.conn)
        self.saver.setup()  # sets journal_mode=WAL
        self.conn.execute("PRAGMA synchronous=FULL")

    def stage(self, state: dict[str, Any], session: str, fork_of: str | None) -> Any:
        source = session if session in self.heads else fork_of
        parent_id, previous, versions, step = self.heads.get(source or "", (None, {}, {}, -1))
        versions = dict(versions)
        new_versions = {}
        for channel, value in state.items():
            if channel not in previous or previous[channel] != value:
                versions[channel] = versions.get(channel, 0) + 1
                new_versions[channel] = f"{versions[channel]:032}.0"
        step += 1
        checkpoint = {
            "v": 4,
            "id": str(uuid6(clock_seq=step)),
            "ts": state["created_at"],
            "channel_values": state,
            "channel_versions": {k: f"{v:032}.0" for k, v in versions.items()},
            "versions_seen": {},
            "updated_channels": sorted(new_versions),
        }
        config = {
            "configurable": {"thread_id": session, "checkpoint_ns": "", "checkpoint_id": parent_id}
        }
        metadata = {"source": "loop", "step": step, "parents": {}}
        self.heads[session] = (checkpoint["id"], state, versions, step)
        return config, checkpoint, metadata, new_versions

    def commit(self, staged: Any) -> Any:
        saved = self.saver.put(*staged)
        return saved["configurable"]["thread_id"], saved["configurable"]["checkpoint_id"]

    def load(self, key: Any) -> dict[str, Any]:
        thread, checkpoint_id = key
        config = {
            "configurable": {
                "thread_id": thread,
                "checkpoint_ns": "",
                "checkpoint_id": checkpoint_id,
            }
        }
        found = self.saver.get_tuple(config)
        if found is None:
            raise LookupError(f"no checkpoint {checkpoint_id} in thread {thread}")
        values: dict[str, Any] = found.checkpoint["channel_values"]
        return values

    def sizes(self) -> Sizes:
        return dir_sizes(self.path.parent)

    def load_latest_argv(self, key: Any) -> list[str]:
        return [PYTHON, "-c", _LOAD_LATEST, str(self.path), key[0], key[1]]

    def finish(self) -> dict[str, Any]:
        """Fold the WAL into the file, close, and break the file down."""
        assert self.conn is not None
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        out: dict[str, Any] = {}
        rows, checkpoint, metadata = self.conn.execute(
            "SELECT count(*), coalesce(sum(length(checkpoint)), 0),"
            " coalesce(sum(length(metadata)), 0) FROM checkpoints"
        ).fetchone()
        out["rows"] = rows
        out["checkpoint_payload"] = checkpoint
        out["metadata_payload"] = metadata
        (page_size,) = self.conn.execute("PRAGMA page_size").fetchone()
        (pages,) = self.conn.execute("PRAGMA page_count").fetchone()
        out["file"] = page_size * pages
        try:
            out["tables"] = {
                name: {"pages": pgsize, "payload": payload, "unused": unused}
                for name, pgsize, payload, unused in self.conn.execute(
                    "SELECT name, sum(pgsize), sum(payload), sum(unused) FROM dbstat GROUP BY name"
                )
            }
        except sqlite3.Error:
            out["tables"] = {}
        self.conn.close()
        self.conn = None
        return out

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
