"""Deleting, copying and pruning LangGraph threads: ref moves, and sessions rewritten.

Deleting a thread removes its refs; copying one writes refs to the same commits (O(1),
nothing is copied). Pruning and deleting checkpoints by run rewrite a session's log:
the kept events get new commits over the same trees (only the commits after the first
dropped event are rewritten), and the session moves to the new head by
compare-and-swap. Nothing is deleted here: what no ref reaches any more is freed by
``ckpt gc``, after the reflog expiry and the grace period, like every other ref move.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from functools import partial

from ckptstore.backends.base import RefUpdate
from ckptstore.commit_object import Commit
from ckptstore.commits import CommitInfo, iter_history
from ckptstore.errors import InvalidOption, RefConflict, RefExists
from ckptstore.integrations.lg_threads import (
    EARLY,
    MAX_ATTEMPTS,
    ThreadIndex,
    backoff,
    parse_notes,
    parse_session,
    session_name,
    thread_sessions,
)
from ckptstore.integrations.lg_tree import TreeReader
from ckptstore.objects import Kind, object_id
from ckptstore.refs import SESSION_PREFIX
from ckptstore.store import Store

__all__ = ["Keeper"]


Plan = Callable[[list[CommitInfo]], set[str]]
"""Given a session's commits (oldest first), the ids of those to keep."""


def _newest_only(chain: list[CommitInfo]) -> set[str]:
    """Keep the newest event of the newest checkpoint (``prune(strategy="keep_latest")``)."""
    newest: dict[str, str] = {}
    for info in chain:
        parsed = parse_notes(info.notes)
        if parsed is not None and parsed[0] != EARLY:
            newest[parsed[1]] = info.id
    return {newest[max(newest)]} if newest else set()


class Keeper:
    """Thread-level operations of the saver, over its store, index and lock."""

    def __init__(
        self, store: Store, index: ThreadIndex, trees: TreeReader, lock: threading.RLock
    ) -> None:
        self.store = store
        self.index = index
        self.trees = trees
        self.lock = lock

    def delete_thread(self, thread_id: str) -> None:
        """Remove every namespace of a thread: its refs (``ckpt gc`` frees the space)."""
        for attempt in range(MAX_ATTEMPTS):
            with self.lock:
                sessions = thread_sessions(self.store.refs, thread_id)
                updates = [
                    RefUpdate(SESSION_PREFIX + name, oid, None, "langgraph: delete thread")
                    for name, oid in sessions.items()
                ]
                done = not updates or self.store.backend.write([], updates).ok
                for name in sessions:
                    self.index.forget(name)
                if done:
                    return
            backoff(attempt)
        raise RefConflict(SESSION_PREFIX + session_name(thread_id), None, None, MAX_ATTEMPTS)

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Make ``target_thread_id`` a copy of ``source_thread_id``: new refs, nothing copied.

        Raises:
            RefExists: if the target thread already has checkpoints.
        """
        with self.lock:
            updates = []
            for name, oid in thread_sessions(self.store.refs, source_thread_id).items():
                parsed = parse_session(name)
                assert parsed is not None  # thread_sessions returns parsed names only
                full = SESSION_PREFIX + session_name(target_thread_id, parsed[1])
                current = self.store.backend.get_ref(full)
                if current is not None:
                    raise RefExists(full, current.hex())
                updates.append(RefUpdate(full, None, oid, f"langgraph: copy of {source_thread_id}"))
            if updates and not self.store.backend.write([], updates).ok:
                raise RefConflict(updates[0].name, None, None, 1)

    def prune(self, thread_ids: Sequence[str], strategy: str) -> None:
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
            for name in thread_sessions(self.store.refs, thread_id):
                self._rewrite(name, _newest_only)

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Remove the checkpoints (and their writes) whose metadata ``run_id`` is listed."""
        targets = set(run_ids)
        if targets:
            for name in thread_sessions(self.store.refs):
                self._rewrite(name, partial(self._spared, targets))

    def _spared(self, targets: set[str], chain: list[CommitInfo]) -> set[str]:
        """Keep every commit but the events of checkpoints whose ``run_id`` is in ``targets``."""
        doomed: set[str] = set()
        for info in chain:
            parsed = parse_notes(info.notes)
            if parsed is not None and parsed[0] != EARLY:
                run = self.trees.metadata(bytes.fromhex(info.tree)).get("run_id")
                if run in targets:
                    doomed.add(parsed[1])
        spared: set[str] = set()
        for info in chain:
            parsed = parse_notes(info.notes)
            if parsed is None or parsed[1] not in doomed:
                spared.add(info.id)
        return spared

    def _rewrite(self, session: str, plan: Plan) -> None:
        """Rebuild a session's log with only the commits ``plan`` keeps (same trees).

        The plan sees the log as it is when the session's ref is compared and swapped,
        so an event another writer adds meanwhile is never dropped unseen.
        """
        for attempt in range(MAX_ATTEMPTS):
            with self.lock:
                head = self.store.refs.session_head(session)
                if head is None:
                    return
                with self.store.backend.reading():
                    chain = list(iter_history(self.store.objects, head))[::-1]
                keep = plan(chain)
                parent: bytes | None = None
                generation, changed = 0, False
                built: dict[bytes, tuple[Kind, bytes]] = {}
                for info in chain:
                    oid = bytes.fromhex(info.id)
                    if info.id not in keep:
                        changed = True
                        continue
                    generation += 1
                    if not changed:
                        parent, generation = oid, info.generation  # unchanged so far: kept
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
                self.index.forget(session)
                if done:
                    return
            backoff(attempt)
        raise RefConflict(SESSION_PREFIX + session, None, None, MAX_ATTEMPTS)
