"""The commit object: one checkpoint of one session, as it is encoded and decoded.

Blobs and tree nodes are values (:mod:`ckptstore.objects`, :mod:`ckptstore.trees`); a
commit is a map of fixed fields naming its tree and parents by raw id.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from ckptstore.errors import MalformedData
from ckptstore.objects import ID_BYTES, encode

__all__ = ["Commit"]


class Commit(NamedTuple):
    """A commit object: one checkpoint of one session.

    ``tree`` and ``parents`` are raw ids. ``created_at`` is an ISO 8601 timestamp kept
    as given (imports preserve the original string); commits made here use UTC with
    microseconds. ``generation`` is 1 for a commit without parents, else one more than
    its first parent's: a session's length is read off its head, without a walk.

    ``original`` is set only on a checkpoint imported from the original skill's files
    (``ckpt import``): the store-owned fields of that file as it had them
    (``checkpoint_id`` always; ``session_id``, ``content_hash``, ``parent_checkpoint_id``
    and ``estimated_tokens`` when present), so the checkpoint keeps its id and exports
    unchanged. It is left out of the encoding when absent, so other commits' ids do not
    depend on it.

    ``tokenizer`` names the estimator (:mod:`ckptstore.tokens`) whose count of the whole
    checkpoint ``estimated_tokens`` is; the next commit then counts only what it
    changes. ``None`` (left out of the encoding too): the figure is not known to be one
    estimator's count (commits before this field, LangGraph's, edits on such a parent),
    so the next commit counts everything.
    """

    tree: bytes
    parents: tuple[bytes, ...]
    created_at: str
    session: str
    notes: str = ""
    agent_id: str | None = None
    agent_tier: int | None = None
    estimated_tokens: int = 0
    generation: int = 1
    original: Mapping[str, Any] | None = None
    tokenizer: str | None = None

    def to_bytes(self) -> bytes:
        """The canonical encoding of this commit."""
        value: dict[str, Any] = {
            "tree": self.tree,
            "parents": list(self.parents),
            "created_at": self.created_at,
            "session": self.session,
            "notes": self.notes,
            "agent_id": self.agent_id,
            "agent_tier": self.agent_tier,
            "estimated_tokens": self.estimated_tokens,
            "generation": self.generation,
        }
        if self.original is not None:
            value["original"] = dict(self.original)
        if self.tokenizer is not None:
            value["tokenizer"] = self.tokenizer
        return encode(value, allow_bytes=True)

    @classmethod
    def from_value(cls, value: Any) -> Commit:
        """Build a commit from its decoded form.

        Raises:
            MalformedData: if a field is missing or has the wrong type.
        """
        problem = _commit_problem(value)
        if problem:
            raise MalformedData("commit", problem)
        return cls(
            tree=value["tree"],
            parents=tuple(value["parents"]),
            created_at=value["created_at"],
            session=value["session"],
            notes=value["notes"],
            agent_id=value["agent_id"],
            agent_tier=value["agent_tier"],
            estimated_tokens=value["estimated_tokens"],
            generation=value["generation"],
            original=value.get("original"),
            tokenizer=value.get("tokenizer"),
        )


def _is_id(value: Any) -> bool:
    return isinstance(value, bytes) and len(value) == ID_BYTES


def _commit_problem(value: Any) -> str | None:
    """Why a decoded value is not a commit, or ``None`` if it is one."""
    if not isinstance(value, dict):
        return "not a map"
    if not _is_id(value.get("tree")):
        return "field 'tree' is missing or not an id"
    parents = value.get("parents")
    if not isinstance(parents, list) or not all(_is_id(p) for p in parents):
        return "field 'parents' is missing or not a list of ids"
    for name, types in _COMMIT_TYPES.items():
        if name not in value or not isinstance(value[name], types):
            return f"field {name!r} is missing or has the wrong type"
        if isinstance(value[name], bool):
            return f"field {name!r} has the wrong type"
    if not isinstance(value.get("tokenizer", ""), str):
        return "field 'tokenizer' is not a string"
    original = value.get("original", {"checkpoint_id": ""})
    if not isinstance(original, dict) or not isinstance(original.get("checkpoint_id"), str):
        return "field 'original' is not a map with a string 'checkpoint_id'"
    return None


_COMMIT_TYPES: dict[str, type | tuple[type, ...]] = {
    "created_at": str,
    "session": str,
    "notes": str,
    "agent_id": (str, type(None)),
    "agent_tier": (int, type(None)),
    "estimated_tokens": int,
    "generation": int,
}
