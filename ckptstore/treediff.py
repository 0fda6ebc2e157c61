"""Tree diff: the changes between two checkpoints, reading only what differs.

Equal ids mean equal content, so the walk never opens a subtree that both sides share:
it expands the two trees level by level, one backend batch per level, dropping every
node the other side also references. What is left are the leaves that differ; their
entries are compared (for lists, aligned with the shared subtrees standing in as single
tokens), and only the blobs of entries that changed are fetched. The records are the
ones :func:`ckptstore.diff.diff_states` computes on whole states (tests hold the two to
each other), at a cost that grows with the change, not with the checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

from ckptstore.diff import LIST_SECTIONS, SECTIONS, Change, align, list_changes, map_changes
from ckptstore.diff import section_changes as state_section_changes
from ckptstore.objects import Kind, object_id, pack_canonical
from ckptstore.objectstore import ObjectStore
from ckptstore.roots import check_root
from ckptstore.trees import MAP_INNER, Entry, Node, fetch_closure, parse_stored, read_items, resolve

__all__ = ["NotATree", "Walk", "diff_trees", "expand"]


@dataclass
class Walk:
    """Both sides of one collection, expanded only where they differ.

    ``seen[side]`` holds every node id that side references; ``opened[side]`` the ones
    actually read (not shared with the other side), in the order they were reached.
    """

    nodes: dict[bytes, Node] = field(default_factory=dict)
    counts: dict[bytes, int] = field(default_factory=dict)
    seen: tuple[set[bytes], set[bytes]] = field(default_factory=lambda: (set(), set()))
    opened: tuple[list[bytes], list[bytes]] = field(default_factory=lambda: ([], []))


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
        nxt: tuple[set[bytes], set[bytes]] = (set(), set())
        for side in (0, 1):
            for oid in sorted(live[side]):
                walk.opened[side].append(oid)
                node = walk.nodes[oid]
                if node.is_leaf:
                    walk.counts[oid] = len(node.items) // (2 if node.is_map else 1)
                    continue
                step = 3 if node.type == MAP_INNER else 2
                for i in range(step - 2, len(node.items), step):
                    child, count = node.items[i], node.items[i + 1]
                    walk.counts[child] = count
                    walk.seen[side].add(child)
                    nxt[side].add(child)
        frontier = nxt
    return walk


class NotATree(Exception):
    """A section entry is not a tree (written by something else); compare values instead."""


def _segments(walk: Walk, root: bytes, side: int) -> list[tuple[str, Any]]:
    """One side as tokens: ("node", id) for a shared subtree, ("item", ...) for the rest."""
    other = walk.seen[1 - side]
    out: list[tuple[str, Any]] = []

    def visit(oid: bytes) -> None:
        if oid in other:
            out.append(("node", oid))
            return
        node = walk.nodes[oid]
        if not node.is_leaf:
            for child in node.children():
                visit(child)
        elif node.is_map:
            out.extend(
                ("item", (node.items[i], node.items[i + 1])) for i in range(0, len(node.items), 2)
            )
        else:
            out.extend(("item", entry) for entry in node.items)

    visit(root)
    return out


# How small a value must be to live inline is the writer's choice (it changed once), so
# the same value may be a reference on one side and inline on the other. Entries of one
# form compare cheaply (ids, or canonical bytes); across forms, an inline value compares
# by the id it would have as a blob.


def _entry_token(entry: Entry) -> Hashable:
    """A token equal for equal entries of the same form (a reference, or inline)."""
    return entry if isinstance(entry, bytes) else b"i" + pack_canonical(entry)


def _blob_token(entry: Entry) -> Hashable:
    """A token equal for equal values, whichever form each is written in."""
    return entry if isinstance(entry, bytes) else object_id(Kind.BLOB, pack_canonical(entry))


def _same_entry(a: Entry, b: Entry) -> bool:
    if isinstance(a, bytes) == isinstance(b, bytes):
        return _entry_token(a) == _entry_token(b)
    return _blob_token(a) == _blob_token(b)


def _values(store: ObjectStore, entries: list[Entry]) -> list[Any]:
    refs = [e for e in entries if isinstance(e, bytes)]
    loaded = fetch_closure(store, refs) if refs else {}
    return [resolve(loaded, e) for e in entries]


def _map_diff(store: ObjectStore, section: str, old: bytes, new: bytes) -> list[Change]:
    walk = expand(store, old, new)
    # Shared subtrees hold the same keys with the same entries on both sides (keys are
    # unique within a map), so only the items outside them can differ.
    sides = [
        dict(item for kind, item in _segments(walk, root, side) if kind == "item")
        for side, root in ((0, old), (1, new))
    ]
    changed = sorted(
        k
        for k in sides[0].keys() | sides[1].keys()
        if k not in sides[0] or k not in sides[1] or not _same_entry(sides[0][k], sides[1][k])
    )
    before = [k for k in changed if k in sides[0]]
    after = [k for k in changed if k in sides[1]]
    values = _values(store, [sides[0][k] for k in before] + [sides[1][k] for k in after])
    return map_changes(
        section,
        dict(zip(before, values[: len(before)], strict=True)),
        dict(zip(after, values[len(before) :], strict=True)),
    )


def _list_diff(store: ObjectStore, section: str, old: bytes, new: bytes) -> list[Change]:
    walk = expand(store, old, new)
    segs = [_segments(walk, old, 0), _segments(walk, new, 1)]
    sizes = [[walk.counts[v] if t == "node" else 1 for t, v in seq] for seq in segs]
    starts = [list(accumulate(s, initial=0)) for s in sizes]
    picked = _picked(store, segs, starts, _entry_token)
    forms = [{isinstance(e, bytes) for _, e in side} for side in picked]
    if (True in forms[0] and False in forms[1]) or (False in forms[0] and True in forms[1]):
        picked = _picked(store, segs, starts, _blob_token)  # mixed forms: compare values
    values = _values(store, [e for _, e in picked[0]] + [e for _, e in picked[1]])
    split = len(picked[0])
    deleted = [(i, v) for (i, _), v in zip(picked[0], values[:split], strict=True)]
    inserted = [(j, v) for (j, _), v in zip(picked[1], values[split:], strict=True)]
    return list_changes(section, deleted, inserted)


_Picked = tuple[list[tuple[int, Entry]], list[tuple[int, Entry]]]


def _picked(
    store: ObjectStore,
    segs: list[list[tuple[str, Any]]],
    starts: list[list[int]],
    token: Callable[[Entry], Hashable],
) -> _Picked:
    """The entries (with their positions) in the runs that differ, aligned by ``token``."""
    tokens = [[("n", v) if t == "node" else ("e", token(v)) for t, v in seq] for seq in segs]
    picked: _Picked = ([], [])
    for tag, i1, i2, j1, j2 in align(tokens[0], tokens[1]):
        if tag == "equal":
            continue
        for side, lo, hi in ((0, i1, i2), (1, j1, j2)):
            for t in range(lo, hi):
                kind, value = segs[side][t]
                entries = read_items(store, value) if kind == "node" else [value]
                start = starts[side][t]
                picked[side].extend((start + k, e) for k, e in enumerate(entries))
    return picked


def _root_entries(store: ObjectStore, root: bytes) -> dict[str, Entry]:
    flat = read_items(store, root)
    return {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}


def diff_trees(
    store: ObjectStore,
    old_root: bytes,
    new_root: bytes,
    *,
    sections: Sequence[str] = SECTIONS,
) -> list[Change]:
    """All changes from the checkpoint with root tree ``old_root`` to ``new_root``.

    ``sections`` limits the walk (in ``SECTIONS`` order); the others are not read.
    """
    if old_root == new_root:
        return []
    check_root(store, old_root)
    check_root(store, new_root)
    tops = (_root_entries(store, old_root), _root_entries(store, new_root))
    out: list[Change] = []
    for section in (s for s in SECTIONS if s in sections):
        entries = (tops[0].get(section), tops[1].get(section))
        present = (section in tops[0], section in tops[1])
        if section == "meta":
            present = (True, True)  # no meta fields is an empty meta, as for states
        if present[0] and present[1] and _same(entries[0], entries[1]):
            continue
        both_refs = isinstance(entries[0], bytes) and isinstance(entries[1], bytes)
        try:
            if both_refs and section in LIST_SECTIONS:
                out.extend(_list_diff(store, section, entries[0], entries[1]))  # type: ignore[arg-type]
                continue
            if both_refs and section in ("variables", "meta"):
                out.extend(_map_diff(store, section, entries[0], entries[1]))  # type: ignore[arg-type]
                continue
        except NotATree:
            pass
        values = [
            (_values(store, [e])[0] if e is not None else ({} if section == "meta" else None))
            for e in entries
        ]
        out.extend(state_section_changes(section, values[0], values[1], present=present))
    return out


def _same(a: Entry | None, b: Entry | None) -> bool:
    if a is None or b is None:
        return a is b
    return _same_entry(a, b)
