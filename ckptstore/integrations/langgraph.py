"""A LangGraph checkpointer backed by a ckptstore store: ``CkptSaver``.

::

    from ckptstore.integrations.langgraph import CkptSaver

    with CkptSaver(".ckpt") as saver:  # a store directory (created if missing) or a Store
        graph = builder.compile(checkpointer=saver)
        graph.invoke(inputs, {"configurable": {"thread_id": "t-1"}})

Each (thread, namespace) is a session ``langgraph/<thread>[/<namespace>]`` whose commits
are events (:mod:`ckptstore.integrations.lg_threads`); each event's tree is the whole
LangGraph checkpoint it concerns::

    root ── variables   map tree: channel -> value entry (lg_values)
         └─ meta        map tree: checkpoint (v, id, ts, updated_channels, ...),
                        channel_versions, versions_seen, metadata, parent (the parent
                        checkpoint id), pending_writes (list of write records:
                        channel, idx, task_id, task_path, value)

Values are content-addressed entries, so a channel value that did not change, or that
another thread or a pending write also holds, is stored once; ``ckpt log``, ``diff``,
``show``, ``gc``, ``fsck`` and ``stats`` work on these sessions like on any other.
``copy_thread`` writes refs only. ``delete_thread``, ``prune`` and ``delete_for_runs``
move or remove refs (the reflog keeps the old heads, as for every ref move); ``ckpt gc``
frees the space.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from datetime import datetime
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any, Final, cast

from langchain_core.runnables import RunnableConfig  # type: ignore[import-not-found, unused-ignore]
from langgraph.checkpoint.base import (  # type: ignore[import-not-found, unused-ignore]
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol  # type: ignore[import-not-found, unused-ignore]
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer  # type: ignore[import-not-found, unused-ignore]

from ckptstore.backends.base import RefUpdate
from ckptstore.commits import CommitInfo, iter_history, now_iso
from ckptstore.errors import InvalidOption, RefConflict, RefExists
from ckptstore.integrations.lg_threads import (
    EARLY,
    PUT,
    WRITES,
    Event,
    ThreadIndex,
    event_notes,
    parse_notes,
    parse_session,
    session_name,
    thread_sessions,
)
from ckptstore.integrations.lg_tree import TreeReader
from ckptstore.integrations.lg_values import ValueCodec
from ckptstore.location import store_file
from ckptstore.objects import Commit, Kind, object_id, pack_canonical
from ckptstore.refs import SESSION_PREFIX
from ckptstore.store import Store
from ckptstore.trees import Entry, store_value

__all__ = ["CkptSaver"]

MAX_ATTEMPTS: Final = 200
_SPLIT: Final = ("channel_values", "channel_versions", "versions_seen")


def _entry(pending: dict[bytes, tuple[Kind, bytes]], value: Any) -> Entry:
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


def _config(thread_id: str, ns: str, checkpoint_id: str) -> RunnableConfig:
    return {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": ns,
            "checkpoint_id": checkpoint_id,
        }
    }


def _is(kept: bytes | None, info: CommitInfo, oid: bytes) -> bool:
    """Keep only commit ``kept`` (a prune that keeps the newest checkpoint)."""
    return oid == kept


def _spared(doomed: set[str], info: CommitInfo, oid: bytes) -> bool:
    """Keep every commit but the events of checkpoints in ``doomed``."""
    parsed = parse_notes(info.notes)
    return parsed is None or parsed[1] not in doomed


def _backoff(attempt: int) -> None:
    time.sleep(random.uniform(0, min(0.05, 0.0005 * 2 ** min(attempt, 7))))


class CkptSaver(BaseCheckpointSaver[int]):  # type: ignore[misc, unused-ignore]
    """LangGraph's ``BaseCheckpointSaver`` over a ckptstore store.

    Args:
        store: an open :class:`~ckptstore.Store` (the caller closes it), or the path of a
            store directory, opened (created if there is none) and closed with the saver.
        serde: LangGraph's serializer for values JSON cannot carry (default: LangGraph's
            ``JsonPlusSerializer``); with any other serializer every value goes through
            it (see :mod:`ckptstore.integrations.lg_values`).

    Safe to share between threads and between processes using the same store; the
    ``a*`` methods run the sync ones in a worker thread.
    """

    def __init__(
        self,
        store: Store | str | os.PathLike[str],
        *,
        serde: SerializerProtocol | None = None,
    ) -> None:
        super().__init__(serde=serde)
        if isinstance(store, Store):
            self.store, self._owned = store, False
        else:
            path = Path(store)
            self.store = Store.open(path) if store_file(path).is_file() else Store.init(path)
            self._owned = True
        plain = isinstance(self.serde, JsonPlusSerializer)
        self._codec = ValueCodec(self.serde, plain=plain)
        self._trees = TreeReader(self.store.objects, self._codec)
        self._index = ThreadIndex(self.store.objects, self.store.refs)
        self._lock = threading.RLock()

    def close(self) -> None:
        """Close the store if the saver opened it."""
        if self._owned:
            self.store.close()

    def __enter__(self) -> CkptSaver:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- reading ------------------------------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint ``config`` names (its ``checkpoint_id``, else the newest)."""
        conf = config["configurable"]
        thread_id, ns = str(conf["thread_id"]), conf.get("checkpoint_ns", "")
        wanted = conf.get("checkpoint_id")
        with self._lock:
            events = self._index.events(session_name(thread_id, ns))
            if not wanted:
                stored = [cid for cid, event in events.items() if event.kind != EARLY]
                wanted = max(stored, default=None)
            event = events.get(wanted) if wanted else None
        if event is None or event.kind == EARLY:
            return None
        return self._tuple(thread_id, ns, event)

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """Checkpoints newest first (by checkpoint id), across threads if ``config`` is None.

        ``filter`` keeps those whose metadata has these keys and values; ``before``
        those with a smaller checkpoint id than its ``checkpoint_id``.
        """
        conf = (config or {}).get("configurable", {})
        thread_id = str(conf["thread_id"]) if conf.get("thread_id") is not None else None
        ns = conf.get("checkpoint_ns")
        cursor = (before or {}).get("configurable", {}).get("checkpoint_id")
        found: list[tuple[str, str, str, Event]] = []
        with self._lock:
            for name in thread_sessions(self.store.refs, thread_id):
                parsed = parse_session(name)
                if parsed is None or (ns is not None and parsed[1] != ns):
                    continue
                for cid, event in self._index.events(name).items():
                    if event.kind != EARLY and (cursor is None or cid < cursor):
                        found.append((cid, *parsed, event))
        found.sort(key=lambda item: item[0], reverse=True)
        count = 0
        for _, thread, namespace, event in found:
            if limit is not None and count >= limit:
                return
            if filter and not self._matches(event, filter):
                continue
            count += 1
            yield self._tuple(thread, namespace, event)

    def _matches(self, event: Event, wanted: Mapping[str, Any]) -> bool:
        metadata = self._trees.metadata(event.tree)
        return all(key in metadata and metadata[key] == value for key, value in wanted.items())

    def _tuple(self, thread_id: str, ns: str, event: Event) -> CheckpointTuple:
        loaded = self._trees.checkpoint(event.tree)
        parent = loaded.parent
        return CheckpointTuple(
            config=_config(thread_id, ns, event.checkpoint_id),
            checkpoint=cast(Checkpoint, loaded.checkpoint),
            metadata=cast(CheckpointMetadata, loaded.metadata),
            parent_config=_config(thread_id, ns, parent) if parent else None,
            pending_writes=loaded.writes,
        )

    # --- writing ------------------------------------------------------------------------

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store a checkpoint; its parent is the ``checkpoint_id`` ``config`` holds."""
        conf = config["configurable"]
        thread_id, ns = str(conf["thread_id"]), conf.get("checkpoint_ns", "")
        parent_id = conf.get("checkpoint_id")
        session = session_name(thread_id, ns)
        cid = checkpoint["id"]
        codec, fixed = self._codec, {}
        pending: dict[bytes, tuple[Kind, bytes]] = {}
        header = {k: v for k, v in checkpoint.items() if k not in _SPLIT}
        for name, value in (
            ("checkpoint", header),
            ("channel_versions", checkpoint["channel_versions"]),
            ("versions_seen", checkpoint["versions_seen"]),
            ("metadata", full := get_checkpoint_metadata(config, metadata)),
        ):
            fixed[name] = codec.encode(pending, value, ordered=False)
        fixed["parent"] = codec.encode(pending, parent_id)
        notes = event_notes(PUT, cid, f"step {full.get('step')} ({full.get('source')})")
        values, versions = checkpoint["channel_values"], checkpoint["channel_versions"]
        for attempt in range(MAX_ATTEMPTS):
            with self._lock:
                events = self._index.events(session)
                head = self._index.head(session)
                parent = events.get(parent_id) if parent_id else None
                reuse, seen = (
                    self._trees.channels(parent.tree)
                    if parent is not None and parent.kind != EARLY
                    else ({}, {})
                )
                built = dict(pending)
                channels = {}
                for channel, value in values.items():
                    same = channel in versions and seen.get(channel) == versions[channel]
                    if same and channel not in new_versions and channel in reuse:
                        channels[channel] = reuse[channel]  # unchanged: not even encoded
                    else:
                        channels[channel] = codec.encode(built, value)
                meta = dict(fixed)
                prior = events.get(cid)
                writes = self._trees.meta(prior.tree).get("pending_writes") if prior else None
                if writes is not None:
                    meta["pending_writes"] = writes  # writes that came first are kept
                trees = self._trees
                top = {"meta": trees.build_map(built, meta)}
                top["variables"] = trees.build_map(built, channels)
                root = trees.build_map(built, top)
                stamp = _stamp(header.get("ts"))
                if self._publish(session, head, root, built, PUT, cid, notes, stamp):
                    return _config(thread_id, ns, cid)
            _backoff(attempt)
        raise RefConflict(SESSION_PREFIX + session, None, None, MAX_ATTEMPTS)

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store a task's writes against the checkpoint ``config`` names.

        A regular write already stored for the same task and index is kept; the special
        ones (error, interrupt, resume, scheduled) are replaced.
        """
        conf = config["configurable"]
        thread_id, ns = str(conf["thread_id"]), conf.get("checkpoint_ns", "")
        session, cid = session_name(thread_id, ns), conf["checkpoint_id"]
        codec = self._codec
        values: dict[bytes, tuple[Kind, bytes]] = {}
        fresh = []
        known: dict[bytes, tuple[str, str, int]] = {}  # the new records' sort keys
        for idx, (channel, value) in enumerate(writes):
            key = (task_id, WRITES_IDX_MAP.get(channel, idx))
            fields = {"channel": channel, "idx": key[1], "task_id": task_id, "task_path": task_path}
            items = [(k, _entry(values, v)) for k, v in fields.items()]
            items.append(("value", codec.encode(values, value)))
            record = self._trees.build_map(values, dict(items))
            fresh.append((key, record))
            known[record] = (task_path, task_id, key[1])
        channels = ", ".join(sorted({channel for channel, _ in writes})) or "nothing"
        for attempt in range(MAX_ATTEMPTS):
            with self._lock:
                events = self._index.events(session)
                head = self._index.head(session)
                prior = events.get(cid)
                top = self._trees.root(prior.tree) if prior is not None else {}
                meta = self._trees.map(top["meta"]) if "meta" in top else {}
                records = {
                    self._trees.write_key(r): r
                    for r in self._trees.list(meta["pending_writes"])
                } if "pending_writes" in meta else {}  # fmt: skip
                before = dict(records)
                for key, record in fresh:
                    if key[1] < 0 or key not in records:
                        records[key] = record
                if records == before:
                    return  # already stored: writes are idempotent
                built = dict(values)
                order = sorted(
                    records.values(), key=lambda r: known.get(r) or self._trees.write_order(r)
                )
                meta["pending_writes"] = self._trees.build_list(built, order)
                top = {**top, "meta": self._trees.build_map(built, meta)}
                kind = EARLY if prior is None or prior.kind == EARLY else WRITES
                notes = event_notes(kind, cid, f"task {task_id} wrote {channels}")
                root = self._trees.build_map(built, top)
                if self._publish(session, head, root, built, kind, cid, notes, now_iso()):
                    return
            _backoff(attempt)
        raise RefConflict(SESSION_PREFIX + session, None, None, MAX_ATTEMPTS)

    def _publish(
        self,
        session: str,
        head: bytes | None,
        root: bytes,
        pending: dict[bytes, tuple[Kind, bytes]],
        kind: str,
        cid: str,
        notes: str,
        created_at: str,
    ) -> bool:
        """Write one event commit on ``head``; false if the session moved meanwhile."""
        generation = self._trees.generation(head) + 1 if head is not None else 1
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
        pending[oid] = (Kind.COMMIT, data)
        if not self.store.publish(session, head, oid, pending, f"commit: {notes}"):
            self._codec.forget()  # entries it reused may name objects that never landed
            return False
        self._trees.remember_generation(oid, generation)
        self._index.record(session, head, Event(oid, root, kind, cid))
        return True

    # --- threads: delete, copy, prune -----------------------------------------------------

    def delete_thread(self, thread_id: str) -> None:
        """Remove every namespace of a thread (``ckpt gc`` later frees the space)."""
        for attempt in range(MAX_ATTEMPTS):
            with self._lock:
                sessions = thread_sessions(self.store.refs, str(thread_id))
                updates = [
                    RefUpdate(SESSION_PREFIX + name, oid, None, "langgraph: delete thread")
                    for name, oid in sessions.items()
                ]
                done = not updates or self.store.backend.write([], updates).ok
                for name in sessions:
                    self._index.forget(name)
                if done:
                    return
            _backoff(attempt)
        raise RefConflict(SESSION_PREFIX + session_name(str(thread_id)), None, None, MAX_ATTEMPTS)

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Make ``target_thread_id`` a copy of ``source_thread_id``: new refs, nothing copied.

        Raises:
            RefExists: if the target thread already has checkpoints.
        """
        target = str(target_thread_id)
        with self._lock:
            updates = []
            for name, oid in thread_sessions(self.store.refs, str(source_thread_id)).items():
                parsed = parse_session(name)
                assert parsed is not None  # thread_sessions returns parsed names only
                full = SESSION_PREFIX + session_name(target, parsed[1])
                current = self.store.backend.get_ref(full)
                if current is not None:
                    raise RefExists(full, current.hex())
                updates.append(RefUpdate(full, None, oid, f"langgraph: copy of {source_thread_id}"))
            if updates and not self.store.backend.write([], updates).ok:
                raise RefConflict(updates[0].name, None, None, 1)

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Keep only each namespace's newest checkpoint (``keep_latest``), or ``delete`` all.

        Raises:
            InvalidOption: for another strategy.
        """
        if strategy not in ("keep_latest", "delete"):
            raise InvalidOption("strategy", strategy, "must be 'keep_latest' or 'delete'")
        for thread_id in thread_ids:
            if strategy == "delete":
                self.delete_thread(thread_id)
                continue
            for name in thread_sessions(self.store.refs, str(thread_id)):
                with self._lock:
                    events = self._index.events(name)
                    stored = [cid for cid, event in events.items() if event.kind != EARLY]
                    newest = events[max(stored)].commit if stored else None
                self._rewrite(name, partial(_is, newest))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Remove the checkpoints (and their writes) whose metadata ``run_id`` is listed."""
        targets = set(run_ids)
        if not targets:
            return
        for name in thread_sessions(self.store.refs):
            with self._lock:
                doomed = {
                    cid
                    for cid, event in self._index.events(name).items()
                    if event.kind != EARLY
                    and self._trees.metadata(event.tree).get("run_id") in targets
                }
            if doomed:
                self._rewrite(name, partial(_spared, doomed))

    def _rewrite(self, session: str, keep: Callable[[CommitInfo, bytes | None], bool]) -> None:
        """Rebuild a session's log without the commits ``keep`` rejects (same trees)."""
        for attempt in range(MAX_ATTEMPTS):
            with self._lock:
                head = self.store.refs.session_head(session)
                if head is None:
                    return
                with self.store.backend.reading():
                    chain = list(iter_history(self.store.objects, head))[::-1]
                parent: bytes | None = None
                generation, changed = 0, False
                built: dict[bytes, tuple[Kind, bytes]] = {}
                for info in chain:
                    oid = bytes.fromhex(info.id)
                    if not keep(info, oid):
                        changed = True
                        continue
                    generation += 1
                    if not changed:
                        parent = oid
                        continue
                    commit = Commit(
                        tree=bytes.fromhex(info.tree),
                        parents=(parent,) if parent is not None else (),
                        created_at=info.created_at,
                        session=session,
                        notes=info.notes,
                        agent_id=info.agent_id,
                        agent_tier=info.agent_tier,
                        estimated_tokens=info.estimated_tokens,
                        generation=generation,
                    )
                    data = commit.to_bytes()
                    parent = object_id(Kind.COMMIT, data)
                    built[parent] = (Kind.COMMIT, data)
                if not changed:
                    return
                if parent is None:
                    update = RefUpdate(SESSION_PREFIX + session, head, None, "langgraph: prune")
                    done = self.store.backend.write([], [update]).ok
                else:
                    done = self.store.publish(session, head, parent, built, "langgraph: prune")
                self._index.forget(session)
                if done:
                    return
            _backoff(attempt)
        raise RefConflict(SESSION_PREFIX + session, None, None, MAX_ATTEMPTS)

    # --- async: the sync methods in a worker thread ------------------------------------------

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """See :meth:`get_tuple`."""
        return await asyncio.to_thread(self.get_tuple, config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """See :meth:`list`."""
        found = await asyncio.to_thread(
            lambda: list(self.list(config, filter=filter, before=before, limit=limit))
        )
        for item in found:
            yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """See :meth:`put`."""
        return await asyncio.to_thread(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """See :meth:`put_writes`."""
        await asyncio.to_thread(self.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        """See :meth:`delete_thread`."""
        await asyncio.to_thread(self.delete_thread, thread_id)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """See :meth:`copy_thread`."""
        await asyncio.to_thread(self.copy_thread, source_thread_id, target_thread_id)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """See :meth:`prune`."""
        await asyncio.to_thread(self.prune, thread_ids, strategy=strategy)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """See :meth:`delete_for_runs`."""
        await asyncio.to_thread(self.delete_for_runs, run_ids)
