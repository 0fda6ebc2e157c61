"""Deltas: for each object a commit writes, the object of the parent checkpoint it replaces.

Most of what a commit writes is a slightly changed copy of something the parent
checkpoint already holds: the tree nodes on the path to a changed entry, a task with a
new status, a long plan with a sentence inserted. Stored as a zstd delta against that
previous version, such an object costs a few dozen bytes instead of its full size.

The pairing walks the new tree (still in memory) against the parent's, opening only
what differs (``treewalk.expand``), and pairs:

* the two roots, and the two roots of each changed section;
* changed nodes by anchor — a map node by its first key, a list leaf by its first
  entry — then, what is left, in order of position;
* changed map entries by key (a variable with its previous value);
* changed list entries position by position inside the aligned runs that differ (a
  task with its previous version).

Only the parent's tree nodes are read here, never its blobs; a pair is a suggestion the
object store uses only when the delta is smaller.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ckptstore.diff import align
from ckptstore.objects import Kind, pack_canonical
from ckptstore.objectstore import ObjectStore
from ckptstore.trees import (
    LIST_INNER,
    LIST_LEAF,
    MAP_INNER,
    MAP_LEAF,
    Entry,
    Node,
    parse_stored,
    read_items,
)
from ckptstore.treewalk import NotATree, Overlay, Walk, expand

__all__ = ["delta_bases"]

Pending = Mapping[bytes, tuple[Kind, bytes]]


def _items(store: ObjectStore, pending: Pending, root: bytes) -> dict[str, Entry]:
    flat = (
        parse_stored(root, pending[root][1]).items if root in pending else read_items(store, root)
    )
    return {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}


def _token(entry: Entry) -> bytes:
    return (b"r" + entry) if isinstance(entry, bytes) else (b"i" + pack_canonical(entry))


def _anchor(node: Node) -> tuple[int, Any]:
    if node.type in (MAP_LEAF, MAP_INNER):
        return node.type, node.items[0] if node.items else None
    if node.type == LIST_LEAF:
        return node.type, _token(node.items[0]) if node.items else None
    return node.type, None  # list inner nodes: paired by position


def _pair_nodes(
    walk: Walk, pending: Pending, roots: tuple[bytes, bytes], out: dict[bytes, bytes]
) -> list[tuple[Node, Node]]:
    new_root, old_root = roots
    out[new_root] = old_root
    pairs: list[tuple[Node, Node]] = [(walk.nodes[new_root], walk.nodes[old_root])]
    new = [oid for oid in walk.opened[1] if oid in pending and oid != new_root]
    old = [oid for oid in walk.opened[0] if oid not in pending and oid != old_root]
    by_anchor: dict[tuple[int, Any], bytes] = {}
    for oid in old:
        by_anchor.setdefault(_anchor(walk.nodes[oid]), oid)
    used: set[bytes] = set()
    leftover = []
    for oid in new:
        match = by_anchor.get(_anchor(walk.nodes[oid]))
        if match is not None and match not in used and walk.nodes[oid].type != LIST_INNER:
            used.add(match)
            out[oid] = match
            pairs.append((walk.nodes[oid], walk.nodes[match]))
        else:
            leftover.append(oid)
    spare = [oid for oid in old if oid not in used]
    for oid in leftover:
        same = next((o for o in spare if walk.nodes[o].type == walk.nodes[oid].type), None)
        if same is not None:
            spare.remove(same)
            out[oid] = same
            pairs.append((walk.nodes[oid], walk.nodes[same]))
    return pairs


def _pair_entries(
    pairs: Iterable[tuple[Node, Node]], pending: Pending, out: dict[bytes, bytes]
) -> None:
    for new, old in pairs:
        if not (new.is_leaf and old.is_leaf):
            continue
        if new.is_map:
            before = {old.items[i]: old.items[i + 1] for i in range(0, len(old.items), 2)}
            for i in range(0, len(new.items), 2):
                _maybe(out, pending, new.items[i + 1], before.get(new.items[i]))
            continue
        # Only blobs are paired; inline records travel inside the leaf's own delta.
        if any(type(e) is bytes and e in pending for e in new.items):
            _pair_runs(new.items, old.items, pending, out)


def _pair_runs(
    new: Sequence[Entry], old: Sequence[Entry], pending: Pending, out: dict[bytes, bytes]
) -> None:
    for tag, i1, i2, j1, j2 in align([_token(e) for e in old], [_token(e) for e in new]):
        if tag == "replace":
            for k in range(min(i2 - i1, j2 - j1)):
                _maybe(out, pending, new[j1 + k], old[i1 + k])


def _maybe(out: dict[bytes, bytes], pending: Pending, new: Entry, old: Entry) -> None:
    fresh = isinstance(new, bytes) and new in pending and pending[new][0] == Kind.BLOB
    if fresh and isinstance(old, bytes) and new != old:
        out.setdefault(new, old)


def delta_bases(
    store: ObjectStore, pending: Pending, old_root: bytes, new_root: bytes
) -> dict[bytes, bytes]:
    """Map new objects (in ``pending``) to the parent-checkpoint objects they replace."""
    out: dict[bytes, bytes] = {}
    if new_root not in pending or old_root == new_root:
        return out
    out[new_root] = old_root
    overlay = Overlay(store, pending)
    new_top, old_top = _items(store, pending, new_root), _items(store, pending, old_root)
    for name, entry in new_top.items():
        before = old_top.get(name)
        if not (isinstance(entry, bytes) and isinstance(before, bytes)) or entry == before:
            continue
        if entry not in pending:
            continue
        if pending[entry][0] != Kind.TREE:
            _maybe(out, pending, entry, before)  # the phase, a value of its own
            continue
        try:
            walk = expand(overlay, before, entry)
        except NotATree:
            continue
        _pair_entries(_pair_nodes(walk, pending, (entry, before), out), pending, out)
    return out
