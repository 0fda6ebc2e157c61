"""Commits as users see them: checkpoint ids, commit records and first-parent history."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Final, NamedTuple

from ckptstore.backends.base import PruneMark
from ckptstore.commit_object import Commit
from ckptstore.decoding import decode_trusted
from ckptstore.errors import CorruptObject, MalformedData
from ckptstore.objects import Kind, ObjectId, hex_id
from ckptstore.objectstore import ObjectStore

__all__ = [
    "CHECKPOINT_ID",
    "ORIGINAL_ID_SETTING",
    "CommitInfo",
    "checkpoint_id",
    "checkpoint_id_of",
    "iter_history",
    "now_iso",
    "read_commit",
]

CHECKPOINT_ID: Final = re.compile(r"ckpt-(\d{8})-(\d{6})-([0-9a-f]{8})")
"""The seed's checkpoint id form: ``ckpt-<UTC yyyymmdd>-<hhmmss>-<first 8 hex of the id>``."""

ORIGINAL_ID_SETTING: Final = "original-id:"
"""Prefix of the store settings that index imported checkpoints: ``original-id:<checkpoint
id>`` holds the hex id of the commit that recorded that original id (see
:mod:`ckptstore.revisions`)."""


def now_iso() -> str:
    """The current UTC time in the seed's timestamp form (microseconds, +00:00)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _stamp(created_at: str) -> str:
    try:
        moment = datetime.fromisoformat(created_at)
    except ValueError:
        return "00000000-000000"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y%m%d-%H%M%S")


def checkpoint_id(commit_id: bytes, created_at: str) -> str:
    """The user-facing checkpoint id of a commit."""
    return f"ckpt-{_stamp(created_at)}-{commit_id.hex()[:8]}"


def checkpoint_id_of(commit_id: bytes, commit: Commit) -> str:
    """The checkpoint id of a commit: the original one for an imported checkpoint."""
    if commit.original is not None:
        return str(commit.original["checkpoint_id"])
    return checkpoint_id(commit_id, commit.created_at)


def read_commit(store: ObjectStore, oid: bytes) -> Commit:
    """Read and check one commit object.

    Raises:
        ObjectNotFound: if it is not stored.
        CorruptObject: if it is damaged or is not a commit.
    """
    kind, data = store.get(oid)
    if kind != Kind.COMMIT:
        raise CorruptObject(hex_id(oid), f"a {kind.label} where a commit was expected")
    try:
        return Commit.from_value(decode_trusted(data))
    except MalformedData as err:
        raise CorruptObject(hex_id(oid), err.problem) from None


class CommitInfo(NamedTuple):
    """One checkpoint's commit, as ``log`` and ``commit`` report it."""

    id: ObjectId
    checkpoint_id: str
    session: str
    created_at: str
    tree: ObjectId
    parents: tuple[ObjectId, ...]
    parent_checkpoint_id: str | None
    notes: str
    agent_id: str | None
    agent_tier: int | None
    estimated_tokens: int
    generation: int
    history_pruned: int = 0
    """How many checkpoints right before this one were pruned (``ckpt prune``)."""
    original: Mapping[str, Any] | None = None
    """For an imported checkpoint, the store-owned fields of its original file."""

    @classmethod
    def build(
        cls, oid: bytes, commit: Commit, parent: Commit | None, *, pruned: PruneMark | None = None
    ) -> CommitInfo:
        """Combine a commit with its first parent (for the parent's checkpoint id).

        For a commit whose parent was pruned, ``pruned`` (its prune mark) supplies it.
        """
        parent_id = None
        if pruned is not None:
            parent_id = pruned.parent_checkpoint
        elif parent is not None:
            parent_id = checkpoint_id_of(commit.parents[0], parent)
        elif commit.original is not None:
            # Imported without its parent (the original file named one this store
            # lacks): the link is kept as the file had it.
            parent_id = commit.original.get("parent_checkpoint_id")
        return cls(
            id=hex_id(oid),
            checkpoint_id=checkpoint_id_of(oid, commit),
            session=commit.session,
            created_at=commit.created_at,
            tree=hex_id(commit.tree),
            parents=tuple(hex_id(p) for p in commit.parents),
            parent_checkpoint_id=parent_id,
            notes=commit.notes,
            agent_id=commit.agent_id,
            agent_tier=commit.agent_tier,
            estimated_tokens=commit.estimated_tokens,
            generation=commit.generation,
            history_pruned=pruned.skipped if pruned is not None else 0,
            original=commit.original,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``--json`` output)."""
        return {
            "checkpoint_id": self.checkpoint_id,
            "id": self.id,
            "session": self.session,
            "created_at": self.created_at,
            "notes": self.notes,
            "agent_id": self.agent_id,
            "agent_tier": self.agent_tier,
            "estimated_tokens": self.estimated_tokens,
            "generation": self.generation,
            "history_pruned": self.history_pruned,
            "parent_checkpoint_id": self.parent_checkpoint_id,
            "parents": list(self.parents),
            "tree": self.tree,
        } | ({"original": dict(self.original)} if self.original is not None else {})


def iter_history(store: ObjectStore, start: bytes) -> Iterator[CommitInfo]:
    """Yield commits from ``start`` back along first parents, newest first.

    Each commit is read once: a commit's record needs its parent (for the parent's
    checkpoint id), which is then the next record. Where ``ckpt prune`` removed a
    commit's parent, the record says so (``history_pruned``) and the walk continues at
    the nearest kept ancestor, or ends.
    """
    oid = start
    commit = read_commit(store, start)
    marks = store.backend.prune_marks()  # few: one per cut a prune made
    while True:
        mark = marks.get(oid)
        parent_oid = commit.parents[0] if commit.parents else None
        if mark is not None:
            parent_oid = mark.next
        parent = read_commit(store, parent_oid) if parent_oid is not None else None
        yield CommitInfo.build(oid, commit, parent, pruned=mark)
        if parent_oid is None or parent is None:
            return
        oid, commit = parent_oid, parent
