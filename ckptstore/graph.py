"""The object graph: which objects an object references.

A commit references its root tree and its parents; a tree node references its child
nodes (inner nodes) or the objects its entries point at (leaves); a blob references
nothing. gc marks along these links, fsck checks them, stats walks them.
"""

from __future__ import annotations

from ckptstore.backends.base import PruneMark
from ckptstore.commit_object import Commit
from ckptstore.decoding import decode, decode_trusted
from ckptstore.objects import Kind
from ckptstore.trees import parse_node

__all__ = ["commit_links", "references"]


def references(kind: Kind, data: bytes, *, strict: bool = False) -> list[bytes]:
    """The ids an object references, in order.

    ``strict`` checks the canonical form too (for bytes whose id was not just verified,
    or when hunting for damage).

    Raises:
        MalformedData: if the bytes are not a well-formed object of ``kind``.
    """
    if kind == Kind.TREE:
        return parse_node(data, trusted=not strict).children()
    if kind == Kind.COMMIT:
        value = decode(data, what="commit") if strict else decode_trusted(data)
        commit = Commit.from_value(value)
        return [commit.tree, *commit.parents]
    if strict:
        decode(data, what="blob")
    return []


def commit_links(commit: Commit, mark: PruneMark | None) -> list[bytes]:
    """What keeps a commit's history alive: its tree and parents, as pruning left them.

    A commit whose first parent was pruned (it has a prune mark) links to the nearest
    kept ancestor instead of that parent.
    """
    if mark is None:
        return [commit.tree, *commit.parents]
    rest = [mark.next] if mark.next is not None else []
    return [commit.tree, *commit.parents[1:], *rest]
