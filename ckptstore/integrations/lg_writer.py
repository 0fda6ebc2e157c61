"""Writing LangGraph checkpoints and pending writes as event commits (layout: ``langgraph.py``).

Every write builds its objects on the session head the index knows and publishes them
with a compare-and-swap of the session ref; when another writer moved the head first,
the write is rebuilt on the new head (the values are encoded again, which the codec's
cache makes cheap). A channel whose version did not change since the parent
checkpoint reuses the parent's entry without being encoded at all.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from ckptstore.commit_object import Commit
from ckptstore.commits import now_iso
from ckptstore.errors import RefConflict
from ckptstore.integrations.lg_threads import (
    EARLY,
    MAX_ATTEMPTS,
    PUT,
    WRITES,
    Event,
    ThreadIndex,
    backoff,
    event_notes,
    session_name,
)
from ckptstore.integrations.lg_tree import TreeReader
from ckptstore.integrations.lg_values import ValueCodec
from ckptstore.objects import Kind, object_id, pack_canonical
from ckptstore.refs import SESSION_PREFIX
from ckptstore.store import Store
from ckptstore.tree_build import store_value
from ckptstore.trees import Entry

__all__ = ["Writer"]

_SPLIT: Final = ("channel_values", "channel_versions", "versions_seen")

Objects = dict[bytes, tuple[Kind, bytes]]


def _entry(pending: Objects, value: Any) -> Entry:
    return store_value(pending, value, pack_canonical(value))


def _stamp(ts: Any) -> str:
    """A checkpoint's ``ts`` as a commit time, or now if it is not an ISO 8601 time."""
    if isinstance(ts, str):
        try:
            datetime.fromisoformat(ts)
        except ValueError:
            pass
        else:
            return ts
    return now_iso()


class Writer:
    """Builds and publishes the saver's event commits (the caller's lock is taken here)."""

    def __init__(
        self,
        store: Store,
        index: ThreadIndex,
        trees: TreeReader,
        codec: ValueCodec,
        lock: threading.RLock,
    ) -> None:
        self.store = store
        self.index = index
        self.trees = trees
        self.codec = codec
        self.lock = lock

    def put(
        self,
        thread_id: str,
        ns: str,
        parent_id: str | None,
        checkpoint: Mapping[str, Any],
        metadata: Mapping[str, Any],
        new_versions: Mapping[str, Any],
    ) -> None:
        """Store a checkpoint (a child of ``parent_id``), keeping writes that came first."""
        session, cid = session_name(thread_id, ns), checkpoint["id"]
        header = {k: v for k, v in checkpoint.items() if k not in _SPLIT}
        values, versions = checkpoint["channel_values"], checkpoint["channel_versions"]
        detail = f"step {metadata.get('step')} ({metadata.get('source')})"
        notes = event_notes(PUT, cid, detail)
        for attempt in range(MAX_ATTEMPTS):
            with self.lock:
                built: Objects = {}
                meta = {
                    name: self.codec.encode(built, value, ordered=False)
                    for name, value in (
                        ("checkpoint", header),
                        ("channel_versions", versions),
                        ("versions_seen", checkpoint["versions_seen"]),
                        ("metadata", metadata),
                    )
                }
                meta["parent"] = self.codec.encode(built, parent_id)
                events = self.index.events(session)
                parent = events.get(parent_id) if parent_id else None
                reuse, seen = (
                    self.trees.channels(parent.tree)
                    if parent is not None and parent.kind != EARLY
                    else ({}, {})
                )
                channels = {}
                for channel, value in values.items():
                    same = channel in versions and seen.get(channel) == versions[channel]
                    if same and channel not in new_versions and channel in reuse:
                        channels[channel] = reuse[channel]  # unchanged: not even encoded
                    else:
                        channels[channel] = self.codec.encode(built, value)
                prior = events.get(cid)
                writes = self.trees.meta(prior.tree).get("pending_writes") if prior else None
                if writes is not None:
                    meta["pending_writes"] = writes
                top = {"meta": self.trees.build_map(built, meta)}
                top["variables"] = self.trees.build_map(built, channels)
                root = self.trees.build_map(built, top)
                if self._publish(session, root, built, PUT, cid, notes, _stamp(header.get("ts"))):
                    return
            backoff(attempt)
        raise RefConflict(SESSION_PREFIX + session, None, None, MAX_ATTEMPTS)

    def put_writes(
        self,
        thread_id: str,
        ns: str,
        cid: str,
        writes: Sequence[tuple[str, int, Any]],
        task_id: str,
        task_path: str,
    ) -> None:
        """Add a task's ``(channel, idx, value)`` writes to checkpoint ``cid``.

        A write with the same task and a non-negative index as one already stored is
        dropped; one with a negative index (LangGraph's special channels) replaces it.
        """
        session = session_name(thread_id, ns)
        channels = ", ".join(sorted({channel for channel, _, _ in writes})) or "nothing"
        for attempt in range(MAX_ATTEMPTS):
            with self.lock:
                built: Objects = {}
                fresh: dict[tuple[str, int], bytes] = {}
                order: dict[bytes, tuple[str, str, int]] = {}  # the new records' sort keys
                for channel, idx, value in writes:
                    fields = {"channel": channel, "idx": idx, "task_id": task_id}
                    items = {k: _entry(built, v) for k, v in fields.items()}
                    items["task_path"] = _entry(built, task_path)
                    items["value"] = self.codec.encode(built, value)
                    record = self.trees.build_map(built, items)
                    fresh[task_id, idx] = record
                    order[record] = (task_path, task_id, idx)
                prior = self.index.events(session).get(cid)
                top = self.trees.root(prior.tree) if prior is not None else {}
                meta = self.trees.map(top["meta"]) if "meta" in top else {}
                stored = self.trees.list(meta["pending_writes"]) if "pending_writes" in meta else []
                records = {self.trees.write_key(r): r for r in stored}
                before = dict(records)
                for key, record in fresh.items():
                    if key[1] < 0 or key not in records:
                        records[key] = record
                if records == before:
                    return  # already stored: writes are idempotent
                ordered = sorted(
                    records.values(), key=lambda r: order.get(r) or self.trees.write_order(r)
                )
                meta["pending_writes"] = self.trees.build_list(built, ordered)
                top = {**top, "meta": self.trees.build_map(built, meta)}
                kind = EARLY if prior is None or prior.kind == EARLY else WRITES
                notes = event_notes(kind, cid, f"task {task_id} wrote {channels}")
                root = self.trees.build_map(built, top)
                if self._publish(session, root, built, kind, cid, notes, now_iso()):
                    return
            backoff(attempt)
        raise RefConflict(SESSION_PREFIX + session, None, None, MAX_ATTEMPTS)

    def _publish(
        self,
        session: str,
        root: bytes,
        built: Objects,
        kind: str,
        cid: str,
        notes: str,
        created_at: str,
    ) -> bool:
        """Write one event commit on the head the index knows; false if the session moved."""
        head = self.index.head(session)
        generation = self.trees.generation(head) + 1 if head is not None else 1
        commit = Commit(
            tree=root,
            parents=(head,) if head is not None else (),
            created_at=created_at,
            session=session,
            notes=notes,
            generation=generation,
        )
        data = commit.to_bytes()
        oid = object_id(Kind.COMMIT, data)
        built[oid] = (Kind.COMMIT, data)
        if not self.store.publish(session, head, oid, built, f"commit: {notes}"):
            self.codec.forget()  # entries it reused may name objects that never landed
            return False
        self.trees.remember_generation(oid, generation)
        self.index.record(session, head, Event(oid, root, kind, cid))
        return True
