"""Helpers for the gc, prune and fsck tests: garbage, ages, and an independent mark."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from ckptstore import Store
from ckptstore.backends.base import RefUpdate
from ckptstore.backends.sqlite import SQLiteBackend
from ckptstore.commit_object import Commit
from ckptstore.commits import now_iso, read_commit
from ckptstore.decoding import decode_trusted
from ckptstore.dictionary import DICTIONARY_SETTING
from ckptstore.event_commits import EARLY, PREFIX, event_notes, quote
from ckptstore.objects import Kind, object_id, pack_canonical
from ckptstore.refs import SESSION_PREFIX
from ckptstore.retention import CheckpointTime, RetentionPolicy
from ckptstore.tree_build import build_list, build_map, store_value
from ckptstore.trees import Pending, parse_node

FOREVER = 10.0**9  # seconds: a reflog expiry nothing outlives


def later() -> float:
    """A ``now`` for gc that makes every object stored so far old enough to collect."""
    return time.time() + 5


def state(i: int, *, tasks: int = 30, tag: str = "") -> dict[str, Any]:
    """A checkpoint with tasks (inline records), variables and outputs; ``i`` changes a little."""
    return {
        "phase": {"name": f"phase {i // 10}", "number": i // 10, "status": "in_progress"},
        "tasks": [
            {
                "id": str(t),
                "subject": f"task {t} of a long agent session {tag}",
                "status": "completed" if t < i % tasks else "pending",
                "blocks": [],
                "blocked_by": [],
            }
            for t in range(tasks)
        ],
        "variables": {"step": i, "plan": f"plan {tag} " * 60, "tag": tag},  # a blob
        "recent_outputs": [
            {"type": "log", "id": f"{tag}{k}", "success": True} for k in range(i % 5)
        ],
    }


def drop_session(store: Store, name: str) -> None:
    """Delete a session ref, as if the session had been removed."""
    head = store.backend.get_ref(SESSION_PREFIX + name)
    assert store.backend.write([], [RefUpdate(SESSION_PREFIX + name, head, None, "drop")]).ok


def make_garbage(store: Store, name: str = "tmp", count: int = 3, tag: str = "junk") -> list[str]:
    """Commit ``count`` checkpoints to a session, then drop it; return the commit ids."""
    ids = [store.commit(state(i, tag=tag), session=name).id for i in range(count)]
    drop_session(store, name)
    return ids


def all_ids(store: Store) -> set[bytes]:
    return set(store.backend.iter_ids())


def reachable(store: Store, *, reflog: bool = False) -> set[bytes]:
    """Objects reachable from the refs (and the reflog), walked here, not by ckptstore.gc.

    The store's current zstd dictionary counts as reachable, as it does for gc.
    """
    marks = store.backend.prune_marks()
    todo = list(store.backend.list_refs().values())
    setting = store.backend.get_setting(DICTIONARY_SETTING)
    if setting is not None and store.backend.has_objects([bytes.fromhex(setting[:64])]):
        todo.append(bytes.fromhex(setting[:64]))
    if reflog:
        todo += [e.new for e in store.backend.reflog() if e.new is not None]
    seen: set[bytes] = set()
    while todo:
        oid = todo.pop()
        if oid in seen:
            continue
        seen.add(oid)
        kind, data = store.objects.get(oid)
        if kind == Kind.COMMIT:
            commit = Commit.from_value(decode_trusted(data))
            parents = list(commit.parents)
            if oid in marks:
                nxt = marks[oid].next
                parents = parents[1:] + ([nxt] if nxt is not None else [])
            todo += [commit.tree, *parents]
        elif kind == Kind.TREE:
            todo += parse_node(data).children()
        # What an object is compressed against (a previous version, the dictionary) is
        # needed to read it, so it is reachable too.
        base = store.backend.get_objects([oid])[oid].base
        if base is not None:
            todo.append(base)
    return seen


def backdate(store_dir: Path, seconds: int) -> None:
    """Make every object of an on-disk store look ``seconds`` older."""
    with sqlite3.connect(store_dir / "store.db") as conn:
        conn.execute("UPDATE objects SET created_at = created_at - ?", (seconds,))
    conn.close()


def flip_byte(store_dir: Path, oid: bytes, position: int) -> None:
    """Damage one stored object in place: flip every bit of one byte of its payload."""
    with sqlite3.connect(store_dir / "store.db") as conn:
        (data,) = conn.execute("SELECT data FROM objects WHERE id=?", (oid,)).fetchone()
        damaged = bytearray(data)
        damaged[position % len(damaged)] ^= 0xFF
        conn.execute("UPDATE objects SET data=? WHERE id=?", (bytes(damaged), oid))
    conn.close()


# --- a model of retention policies ------------------------------------------------------

PERIOD_KEYS = {
    "hourly": lambda t: (t.year, t.month, t.day, t.hour),
    "daily": lambda t: t.date(),
    "weekly": lambda t: (t.isocalendar().year, t.isocalendar().week),
    "monthly": lambda t: (t.year, t.month),
    "yearly": lambda t: t.year,
}


def retention_model(policy: RetentionPolicy, recs: list[CheckpointTime]) -> dict[bytes, set[str]]:
    """Each rule stated on its own: which records it keeps, from scratch."""
    out: dict[bytes, set[str]] = {}
    valid = [r for r in recs if r.time.year > 1]
    if policy.last:
        for r in recs[: policy.last]:
            out.setdefault(r.id, set()).add("last")
    if policy.within is not None and valid:
        newest = max(r.time for r in valid)
        for r in valid:
            if r.time >= newest - policy.within:
                out.setdefault(r.id, set()).add("within")
    for name, key in PERIOD_KEYS.items():
        groups: dict[object, list[int]] = {}
        for i, r in enumerate(valid):
            groups.setdefault(key(r.time), []).append(i)
        first_of_group = sorted(min(members) for members in groups.values())
        for i in first_of_group[: getattr(policy, name)]:
            out.setdefault(valid[i].id, set()).add(name)
    return out


@contextmanager
def deleted(store: Store, oid: bytes) -> Iterator[None]:
    """Delete one object (damage), then put it back exactly as it was.

    In SQLite the row goes back as it was, row number included: deltas name their base
    by row, and storing the object again would give it a new one.
    """
    if isinstance(store.backend, SQLiteBackend):
        with closing(sqlite3.connect(store.backend.location)) as conn, conn:
            row = conn.execute("SELECT * FROM objects WHERE id=?", (oid,)).fetchone()
            conn.execute("DELETE FROM objects WHERE id=?", (oid,))
        yield
        with closing(sqlite3.connect(store.backend.location)) as conn, conn:
            conn.execute(f"INSERT INTO objects VALUES ({','.join('?' * len(row))})", row)
    else:
        stored = store.backend.get_objects([oid])[oid]
        store.backend.delete_objects([oid])
        yield
        assert store.backend.write([stored]).ok


def store_again_last(store: Store, oid: bytes) -> None:
    """Make ``oid`` the last object in storage order, after the deltas stored against it.

    A healthy SQLite store never has that order (a delta's base is stored first, and gc
    keeps bases), so the row is renumbered there, its dependents following it.
    """
    if isinstance(store.backend, SQLiteBackend):
        with closing(sqlite3.connect(store.backend.location)) as conn, conn:
            (old,) = conn.execute("SELECT seq FROM objects WHERE id=?", (oid,)).fetchone()
            (new,) = conn.execute("SELECT max(seq) + 1 FROM objects").fetchone()
            conn.execute("UPDATE objects SET seq=? WHERE seq=?", (new, old))
            conn.execute("UPDATE objects SET base=? WHERE base=?", (new, old))
    else:
        stored = store.backend.get_objects([oid])[oid]
        store.backend.delete_objects([oid])
        assert store.backend.write([stored]).ok


def publish_event(
    store: Store,
    thread: str,
    kind: str,
    checkpoint_id: str,
    values: dict[str, Any] | None = None,
    writes: list[tuple[str, Any]] | None = None,
) -> str:
    """Publish one LangGraph event commit as the saver does, without LangGraph installed.

    The same session name, notes, tree layout (``meta`` and, but for early writes,
    ``variables``), parent and generation as ``integrations/lg_writer.py`` writes,
    through the same ``Store.publish``; values are stored as plain JSON. ``writes`` are
    the checkpoint's pending writes so far. Returns the commit id.
    """
    session = PREFIX + quote(thread)
    values = values or {}
    built: Pending = {}

    def entry(value: Any) -> Any:
        return store_value(built, value, pack_canonical(value))

    meta = {
        "checkpoint": entry({"v": 4, "id": checkpoint_id, "ts": now_iso()}),
        "channel_versions": entry(dict.fromkeys(values, 1)),
        "versions_seen": entry({}),
        "metadata": entry({"source": "loop", "step": 0}),
        "parent": entry(None),
    }
    if writes:
        records = [
            build_map(
                built,
                [
                    ("channel", entry(channel)),
                    ("idx", entry(idx)),
                    ("task_id", entry("task")),
                    ("task_path", entry("")),
                    ("value", entry(value)),
                ],
            )
            for idx, (channel, value) in enumerate(writes)
        ]
        meta["pending_writes"] = build_list(built, records)
    top = {"meta": build_map(built, sorted(meta.items()))}
    if kind != EARLY:
        top["variables"] = build_map(built, sorted((k, entry(v)) for k, v in values.items()))
    root = build_map(built, sorted(top.items()))
    head = store.backend.get_ref(SESSION_PREFIX + session)
    commit = Commit(
        tree=root,
        parents=(head,) if head is not None else (),
        created_at=now_iso(),
        session=session,
        notes=event_notes(kind, checkpoint_id, "from a test"),
        generation=read_commit(store.objects, head).generation + 1 if head is not None else 1,
    )
    data = commit.to_bytes()
    oid = object_id(Kind.COMMIT, data)
    built[oid] = (Kind.COMMIT, data)
    assert store.publish(session, head, oid, built, f"commit: {commit.notes}")
    return oid.hex()
