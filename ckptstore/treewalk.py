"""Two trees walked where they differ: what the tree diff and the delta pairing share.

Equal ids mean equal content, so a walk never opens a subtree both sides share.
:func:`expand` opens the two trees level by level, dropping every node the other side
also references (one backend batch per level); :func:`pair_trees` descends two trees of
the same shape together, opening only the pairs of children whose ids differ. The
rest says how entries compare: by id, by their encodings, or by the bytes of the leaves
that hold them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from itertools import compress, filterfalse
from operator import eq, ne
from typing import Any, NamedTuple

import msgpack

from ckptstore.objects import Kind, object_id, pack_canonical
from ckptstore.objectstore import ObjectStore
from ckptstore.trees import MAP_INNER, Entry, Node, fetch_closure, parse_stored, resolve

__all__ = [
    "Leaves",
    "NotATree",
    "Overlay",
    "Pack",
    "Paired",
    "Walk",
    "blob_ref",
    "child_ids",
    "differing",
    "expand",
    "fetch_values",
    "leaf_body",
    "own_leaves",
    "packer",
    "pair_trees",
    "replaced_encodings",
    "same_entry",
    "unequal_differ",
]

Pack = Callable[[Any], bytes]


class Walk:
    """Both sides of one collection, expanded only where they differ.

    ``seen[side]`` holds every node id that side references; ``opened[side]`` the ones
    actually read (not shared with the other side), in the order they were reached;
    ``stored`` their stored bytes.
    """

    __slots__ = ("nodes", "opened", "seen", "stored")

    def __init__(self) -> None:
        self.nodes: dict[bytes, Node] = {}
        self.stored: dict[bytes, bytes] = {}
        self.seen: tuple[set[bytes], set[bytes]] = (set(), set())
        self.opened: tuple[list[bytes], list[bytes]] = ([], [])


def child_ids(node: Node) -> tuple[list[bytes], list[int]]:
    """An inner node's child ids and the number of entries under each."""
    first = 1 if node.type == MAP_INNER else 0
    step = first + 2
    return node.items[first::step], node.items[first + 1 :: step]


def expand(store: ObjectStore, old: bytes, new: bytes) -> Walk:
    """Open the nodes of two trees that the other tree does not share, level by level.

    Raises:
        NotATree: if an id on either side names something other than a tree node.
    """
    walk = Walk()
    walk.seen[0].add(old)
    walk.seen[1].add(new)
    frontier: tuple[set[bytes], set[bytes]] = ({old}, {new})
    while frontier[0] or frontier[1]:
        # A node the other side references is shared: neither side needs to open it.
        live = (frontier[0] - walk.seen[1], frontier[1] - walk.seen[0])
        wanted = [oid for oid in live[0] | live[1] if oid not in walk.nodes]
        for oid, (kind, data) in store.get_many(wanted).items() if wanted else ():
            if kind != Kind.TREE:
                raise NotATree
            walk.nodes[oid] = parse_stored(oid, data)
            walk.stored[oid] = data
        nxt: tuple[set[bytes], set[bytes]] = (set(), set())
        for side in (0, 1):
            seen, reached = walk.seen[side], nxt[side]
            for oid in sorted(live[side]):
                walk.opened[side].append(oid)
                node = walk.nodes[oid]
                if not node.is_leaf:
                    children = child_ids(node)[0]
                    seen.update(children)
                    reached.update(children)
        frontier = nxt
    return walk


class Overlay(ObjectStore):
    """The object store, with the commit's new objects visible before they are written."""

    def __init__(self, store: ObjectStore, pending: Mapping[bytes, tuple[Kind, bytes]]) -> None:
        super().__init__(store.backend, store.codec)
        self.stats = store.stats
        self._store = store
        self._pending = pending

    def get_many(
        self, ids: Collection[bytes], *, cached: bool = True
    ) -> dict[bytes, tuple[Kind, bytes]]:
        """New objects from memory, the rest from the store."""
        out = {oid: self._pending[oid] for oid in ids if oid in self._pending}
        rest = [oid for oid in ids if oid not in out]
        if rest:
            out.update(self._store.get_many(rest, cached=cached))
        return out


def own_leaves(walk: Walk, root: bytes, side: int) -> list[Node]:
    """The leaves of one side that the other side does not share, in order."""
    other = walk.seen[1 - side]
    out: list[Node] = []

    def visit(oid: bytes) -> None:
        node = walk.nodes[oid]
        if node.is_leaf:
            out.append(node)
            return
        for child in filterfalse(other.__contains__, child_ids(node)[0]):
            visit(child)

    if root not in other:
        visit(root)
    return out


class NotATree(Exception):
    """A section entry is not a tree (written by something else); compare values instead."""


class Leaves(NamedTuple):
    """Two leaves in the same place of two trees of the same shape, and their bytes.

    ``at`` is the position of their first entry (in a list).
    """

    at: int
    old: Node
    new: Node
    old_data: bytes
    new_data: bytes


class Paired:
    """Two trees of the same shape, descended together where their ids differ.

    ``leaves``: the pairs of leaves reached. ``pairs``: every pair of ids in the same
    place that differ, the roots included. ``children[side]``: the child ids of the
    inner nodes that side opened.
    """

    __slots__ = ("children", "leaves", "pairs")

    def __init__(self) -> None:
        self.leaves: list[Leaves] = []
        self.pairs: list[tuple[bytes, bytes]] = []
        self.children: tuple[list[list[bytes]], list[list[bytes]]] = ([], [])


def pair_trees(store: ObjectStore, old: bytes, new: bytes) -> Paired | None:
    """Descend two trees together if they have the same shape, else None.

    The same shape: each pair of inner nodes reached has as many children on both
    sides, covering the same entries (the same first keys in a map, the same counts
    in a list), so children in the same place hold the same part of the collection.
    Leaves pair up whatever their lengths.

    Raises:
        NotATree: if an id on either side names something other than a tree node.
    """
    out = Paired()
    level = [(0, old, new)]
    while level:
        out.pairs += [(a, b) for _, a, b in level]
        stored = store.get_many([oid for _, a, b in level for oid in (a, b)])
        nxt = []
        for at, a, b in level:
            (kind_a, data_a), (kind_b, data_b) = stored[a], stored[b]
            if kind_a != Kind.TREE or kind_b != Kind.TREE:
                raise NotATree
            node_a, node_b = parse_stored(a, data_a), parse_stored(b, data_b)
            if node_a.type != node_b.type:
                return None
            if node_a.is_leaf:
                out.leaves.append(Leaves(at, node_a, node_b, data_a, data_b))
                continue
            (ids_a, counts_a), (ids_b, counts_b) = child_ids(node_a), child_ids(node_b)
            if len(ids_a) != len(ids_b):
                return None
            if node_a.type == MAP_INNER:
                if node_a.items[0::3] != node_b.items[0::3]:
                    return None
            elif counts_a != counts_b:
                return None
            out.children[0].append(ids_a)
            out.children[1].append(ids_b)
            for k in compress(range(len(ids_a)), map(ne, ids_a, ids_b)):
                nxt.append((at + sum(counts_a[:k]), ids_a[k], ids_b[k]))
        level = nxt
    return out


# How small a value must be to live inline is the writer's choice (it changed once), so
# the same value may be a reference on one side and inline on the other. Entries of one
# form compare cheaply (ids, or encoded bytes); across forms, an inline value compares
# by the id it would have as a blob.
#
# Inline values are encoded by a packer of the diff's own, with pack_canonical's options
# (str and bytes kept apart, exact types: 1, 1.0 and True differ) but not its per-call
# cost; only equality is asked of these encodings. Python's == is cheaper still, and
# stored values that differ in Python differ as stored (equal encodings decode to equal
# values). Not the converse (1 == 1.0 == True, 0.0 == -0.0): values equal in Python
# are confirmed by their encodings.


def packer() -> Pack:
    """An encoder of inline values for comparing them (see above); one per diff."""
    pack: Pack = msgpack.Packer(use_bin_type=True, strict_types=True, autoreset=True).pack
    return pack


def blob_ref(entry: Entry) -> bytes:
    """An id equal for equal values, whichever form each is written in."""
    return entry if isinstance(entry, bytes) else object_id(Kind.BLOB, pack_canonical(entry))


def same_entry(a: Entry, b: Entry, pack: Pack) -> bool:
    """Whether two entries hold the same value, whichever form each is written in."""
    a_ref, b_ref = isinstance(a, bytes), isinstance(b, bytes)
    if a_ref and b_ref:
        return bool(a == b)
    if a_ref or b_ref:
        return blob_ref(a) == blob_ref(b)
    return pack(a) == pack(b)


def unequal_differ(a: Entry, b: Entry) -> bool:
    """Whether two entries unequal in Python differ (only the two forms can hide equality)."""
    if isinstance(a, bytes) == isinstance(b, bytes):
        return True
    return blob_ref(a) != blob_ref(b)


def differing(old: Sequence[Entry], new: Sequence[Entry], pack: Pack) -> list[int]:
    """The indices at which two lists of entries of the same length differ."""
    indices = range(len(old))
    out = [k for k in compress(indices, map(ne, old, new)) if unequal_differ(old[k], new[k])]
    equal = list(map(eq, old, new))
    # Lists of the same length with equal encodings are equal entry by entry.
    if pack(list(compress(old, equal))) != pack(list(compress(new, equal))):
        out += [k for k in compress(indices, equal) if not same_entry(old[k], new[k], pack)]
        out.sort()
    return out


# Entries equal in Python must still be shown equal as stored. Encoding them all costs
# most of a diff; the leaves' stored bytes show it at once. A stored node is canonical
# (fsck checks it), so an entry's encoding is a slice of its leaf's bytes, and two runs
# of entries whose bytes are equal hold equal entries (msgpack marks where each ends).


def leaf_body(node: Node, data: bytes) -> bytes | None:
    """The encodings of a leaf's items back to back: its stored bytes after the header."""
    size = len(node.items) + 1  # the array holds the type tag, then the items
    head = 1 if size < 16 else 3 if size < 1 << 16 else 5
    return data[head + 1 :] if data[head] == node.type else None


def replaced_encodings(
    old: Sequence[Entry],
    new: Sequence[Entry],
    bodies: tuple[bytes, bytes],
    differ: list[int],
    pack: Pack,
) -> list[tuple[bytes, bytes]] | None:
    """The encodings of ``old[k]`` and ``new[k]`` for each ``k`` in ``differ``.

    Provided the two runs of entries, encoded back to back in ``bodies``, are equal
    byte for byte everywhere else; None if not (or if it cannot be told).
    """
    out = []
    i = j = 0  # where the bytes of the entries after the last ones replaced start
    for k in differ:
        was, now = pack(old[k]), pack(new[k])
        at, to = bodies[0].find(was, i), bodies[1].find(now, j)
        # Found exactly once from there on, an encoding is the entry's own.
        if at < 0 or to < 0 or bodies[0].find(was, at + 1) >= 0 or bodies[1].find(now, to + 1) >= 0:
            return None
        if bodies[0][i:at] != bodies[1][j:to]:
            return None
        i, j = at + len(was), to + len(now)
        out.append((was, now))
    return out if bodies[0][i:] == bodies[1][j:] else None


def fetch_values(store: ObjectStore, entries: list[Entry]) -> list[Any]:
    """The values of ``entries``: inline ones as they are, references read in one batch."""
    refs = [e for e in entries if isinstance(e, bytes)]
    loaded = fetch_closure(store, refs) if refs else {}
    return [resolve(loaded, e) for e in entries]
