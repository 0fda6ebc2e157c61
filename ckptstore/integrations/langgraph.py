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
``show``, ``gc``, ``fsck`` and ``stats`` work on these sessions like on any other
(``stats`` counts the events that are not a checkpoint apart: :mod:`ckptstore.stats`).
``copy_thread`` writes refs only. ``delete_thread``, ``prune`` and ``delete_for_runs``
move or remove refs (the reflog keeps the old heads, as for every ref move); ``ckpt gc``
frees the space.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Collection, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, cast

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

from ckptstore.integrations.lg_retention import Keeper
from ckptstore.integrations.lg_threads import (
    EARLY,
    Event,
    ThreadIndex,
    parse_session,
    session_name,
    thread_sessions,
)
from ckptstore.integrations.lg_tree import TreeReader
from ckptstore.integrations.lg_values import ValueCodec
from ckptstore.integrations.lg_writer import Writer
from ckptstore.location import store_file
from ckptstore.store import Store

__all__ = ["CkptSaver"]


def _config(thread_id: str, ns: str, checkpoint_id: str) -> RunnableConfig:
    return {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": ns,
            "checkpoint_id": checkpoint_id,
        }
    }


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
        self._wire(ThreadIndex(self.store.objects, self.store.refs), threading.RLock())

    def _wire(self, index: ThreadIndex, lock: threading.RLock) -> None:
        """Build the parts that depend on ``self.serde``, around a thread index and lock."""
        self._index, self._lock = index, lock
        self._codec = ValueCodec(self.serde, plain=isinstance(self.serde, JsonPlusSerializer))
        self._trees = TreeReader(self.store.objects, self._codec)
        self._keeper = Keeper(self.store, index, self._trees, lock)
        self._writer = Writer(self.store, index, self._trees, self._codec, lock)

    def with_allowlist(self, extra_allowlist: Collection[tuple[str, ...]]) -> CkptSaver:
        """A saver whose serializer also allows these types (LangGraph's strict msgpack).

        It shares this saver's store, index and lock, and leaves the store open when
        closed.
        """
        clone = cast(CkptSaver, super().with_allowlist(extra_allowlist))
        if clone is not self:
            clone._owned = False
            clone._wire(self._index, self._lock)
        return clone

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
        return all(metadata.get(key) == value for key, value in wanted.items())

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

    # --- writing (lg_writer) --------------------------------------------------------------

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
        full = get_checkpoint_metadata(config, metadata)
        self._writer.put(thread_id, ns, conf.get("checkpoint_id"), checkpoint, full, new_versions)
        return _config(thread_id, ns, checkpoint["id"])

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
        indexed = [
            (channel, WRITES_IDX_MAP.get(channel, idx), value)
            for idx, (channel, value) in enumerate(writes)
        ]
        self._writer.put_writes(
            str(conf["thread_id"]),
            conf.get("checkpoint_ns", ""),
            conf["checkpoint_id"],
            indexed,
            task_id,
            task_path,
        )

    # --- threads: delete, copy, prune (lg_retention) -------------------------------------

    def delete_thread(self, thread_id: str) -> None:
        """Remove every namespace of a thread (``ckpt gc`` later frees the space)."""
        self._keeper.delete_thread(str(thread_id))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Make ``target_thread_id`` a copy of ``source_thread_id``: new refs, nothing copied.

        Raises:
            RefExists: if the target thread already has checkpoints.
        """
        self._keeper.copy_thread(str(source_thread_id), str(target_thread_id))

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Keep only each namespace's newest checkpoint (``keep_latest``), or ``delete`` all.

        Raises:
            InvalidOption: for another strategy.
        """
        self._keeper.prune([str(t) for t in thread_ids], strategy)

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Remove the checkpoints (and their writes) whose metadata ``run_id`` is listed."""
        self._keeper.delete_for_runs(run_ids)

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
