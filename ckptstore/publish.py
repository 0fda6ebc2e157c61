"""Publishing a commit: its new objects and the move of its session ref, in one write.

A commit is built on the session's head, its new objects are compressed (as deltas
against what they replace in the parent, small records with the store's dictionary),
and the objects, the ref move and its reflog entry are written in one transaction that
also checks the ref still points where the build started (compare-and-swap) and that
every older object the commit references still exists (a concurrent gc may have taken
it). A commit that loses either race is built again on the new head, after a short
random back-off: racing writers to one session end up as one linear chain.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from typing import Any, Final, TypeAlias

from ckptstore.backends.base import StoredObject
from ckptstore.commit_object import Commit
from ckptstore.commits import ORIGINAL_ID_SETTING, CommitInfo, now_iso, read_commit
from ckptstore.deltas import delta_bases
from ckptstore.dictionary import current_dictionary, maybe_train
from ckptstore.errors import CkptError, InvalidCheckpoint, RefConflict
from ckptstore.objects import Kind, object_id
from ckptstore.objectstore import ObjectStore
from ckptstore.refs import Refs
from ckptstore.revisions import resolve_revision
from ckptstore.snapshot import Built, edit_variables, empty_state, write_state
from ckptstore.tokens import estimator
from ckptstore.trees import parse_stored
from ckptstore.validation import prepare_state

__all__ = ["MAX_ATTEMPTS", "Agent", "Build", "edit_build", "publish"]

MAX_ATTEMPTS: Final = 200
"""How many times a commit is built again after losing a race before it gives up."""

Agent: TypeAlias = tuple[str | None, int | None]
Build: TypeAlias = Callable[[Commit | None], tuple[Built, Agent]]
"""Builds a checkpoint's objects on a parent commit (``None``: a new session)."""


def publish(
    objects: ObjectStore,
    refs: Refs,
    session: str,
    build: Build,
    *,
    notes: str,
    created_at: str | None,
    parents: Sequence[str] | None = None,
    original: Mapping[str, Any] | None = None,
) -> CommitInfo:
    """Write the commit ``build`` makes on the session's head (or on ``parents``).

    ``build`` runs again on the new head when a concurrent commit wins the race.

    Raises:
        RefConflict: the session kept moving for ``MAX_ATTEMPTS`` attempts, or (with
            ``parents``) it ends elsewhere.
    """
    backend = objects.backend
    explicit = None
    if parents is not None:
        with backend.reading():
            explicit = tuple(resolve_revision(objects, refs, p) for p in parents)
    stamp = created_at or now_iso()
    for attempt in range(MAX_ATTEMPTS):
        head = refs.session_head(session)
        base: tuple[bytes, ...] = (head,) if head is not None else ()
        if explicit is not None:
            if head is not None and head != (explicit[0] if explicit else None):
                raise RefConflict(
                    f"sessions/{session}", explicit[0].hex() if explicit else None,
                    head.hex(), attempt + 1,
                )  # fmt: skip
            base = explicit
        parent = read_commit(objects, base[0]) if base else None
        built, agent = build(parent)
        commit = Commit(
            tree=built.root,
            parents=base,
            created_at=stamp,
            session=session,
            notes=notes,
            agent_id=agent[0],
            agent_tier=agent[1],
            estimated_tokens=built.tokens,
            tokenizer=built.tokenizer,
            generation=parent.generation + 1 if parent is not None else 1,
            original=dict(original) if original is not None else None,
        )
        data = commit.to_bytes()
        oid = object_id(Kind.COMMIT, data)
        built.pending[oid] = (Kind.COMMIT, data)
        if original is not None:
            # The index entry goes first: an entry whose commit never landed names
            # nothing (lookups check the commit), a commit without one is unfindable.
            backend.set_setting(ORIGINAL_ID_SETTING + str(original["checkpoint_id"]), oid.hex())
        new = objects.missing(built.pending)
        stored = _encode(objects, {k: built.pending[k] for k in new}, parent, built.root)
        require = _frontier(built.pending, new, commit)
        require += sorted({s.base for s in stored if s.base is not None} - new)
        first = (notes.splitlines() or ["checkpoint"])[0]
        update = Refs.session_update(session, head, oid, f"commit: {first}")
        result = backend.write(stored, [update], require=require)
        if result.ok:
            objects.remember_written(stored, built.pending)
            _follow_first_session(refs, session)
            with suppress(CkptError):  # a better dictionary is an optimisation only
                maybe_train(objects)
            return CommitInfo.build(oid, commit, parent)
        # Lost a race, or an object we reused was collected (by another process's gc):
        # forget it, or the next attempt reuses the cached copy (a base, the dictionary)
        # and fails the same way. Then back off and rebuild.
        objects.forget(result.missing)
        import random  # only once a commit has lost a race

        time.sleep(random.uniform(0, min(0.05, 0.0005 * 2 ** min(attempt, 7))))
    raise RefConflict(f"sessions/{session}", None, None, MAX_ATTEMPTS)


def edit_build(
    objects: ObjectStore,
    fixed: Built | None,
    parent: Commit | None,
    assign: Mapping[str, Any],
    unset: tuple[str, ...],
) -> tuple[Built, Agent]:
    """The objects of a checkpoint that is ``fixed``, or the parent's with variables edited.

    An edit reads only the parent's root and variable nodes (and replaced values).
    """
    if fixed is not None:
        copy = Built(fixed.root, dict(fixed.pending), fixed.tokens, tokenizer=fixed.tokenizer)
        return copy, fixed.agent
    if parent is None:
        if unset:
            raise InvalidCheckpoint(f"$.variables.{unset[0]}", "is not set, so it cannot be unset")
        state = empty_state()
        state["variables"] = dict(sorted(assign.items()))
        built = write_state(prepare_state(state))
        return built, built.agent
    built, delta = edit_variables(objects, parent.tree, assign, unset)
    built.tokens = parent.estimated_tokens + delta
    # The sum is one estimator's count only if the parent's figure was that one's.
    built.tokenizer = parent.tokenizer if parent.tokenizer == estimator().name else None
    return built, (parent.agent_id, parent.agent_tier)


def _encode(
    objects: ObjectStore,
    fresh: Mapping[bytes, tuple[Kind, bytes]],
    parent: Commit | None,
    root: bytes,
) -> list[StoredObject]:
    """Compress a commit's new objects for storage.

    Each is stored as a delta against what it replaces in the parent checkpoint where
    that is smaller, and small records with the store's dictionary.
    """
    bases = delta_bases(objects, fresh, parent.tree, root) if parent else {}
    return objects.prepare(fresh, bases=bases, dictionary=current_dictionary(objects))


def _frontier(
    pending: Mapping[bytes, tuple[Kind, bytes]], new: set[bytes], commit: Commit
) -> list[bytes]:
    """Objects the new ones point at but that this commit does not write.

    The write checks they still exist in the same transaction, so a commit can never
    publish a reference to an object a concurrent gc has just removed.
    """
    linked: set[bytes] = {commit.tree, *commit.parents}
    for oid in new:
        kind, data = pending[oid]
        if kind == Kind.TREE:
            # Remembered: the delta pairing has parsed most of these already.
            linked.update(parse_stored(oid, data).children())
    return sorted(linked - new)


def _follow_first_session(refs: Refs, session: str) -> None:
    """Point HEAD at ``session`` if HEAD names a session that has no checkpoints.

    In a new store HEAD names ``main``; when the first checkpoints go to another
    session (``--session agent-1``), plain ``ckpt log`` should show them rather than
    report an empty ``main``.
    """
    current = refs.current_session()
    if current != session and refs.session_head(current) is None:
        refs.set_current_session(session)
