"""Tree diff: the changes between two checkpoints, reading only what differs.

Equal ids mean equal content, so the walk never opens a subtree that both sides share.
Two versions of a collection usually have the same shape (a task's status changed, a
variable was set): the walk then descends both trees together, one backend batch per
level, opening only the pairs of children whose ids differ, and compares the leaves it
reaches entry by entry, encoding only the entries that differ. Otherwise (entries
inserted, removed or moved) it expands the two trees level by level, dropping every
node the other side also references, and compares what is left (for lists, aligned
with the shared subtrees standing in as single tokens). Only the blobs of entries that
changed are fetched. The records are the ones :func:`ckptstore.diff.diff_states`
computes on whole states (tests hold the two to each other), at a cost that grows with
the change, not with the checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import compress
from operator import ne
from typing import Any

from ckptstore.diff import LIST_SECTIONS, SECTIONS, Change, map_changes
from ckptstore.diff import section_changes as state_section_changes
from ckptstore.listdiff import list_diff
from ckptstore.objectstore import ObjectStore
from ckptstore.roots import check_root
from ckptstore.trees import Entry, read_items
from ckptstore.treewalk import (
    NotATree,
    Pack,
    differing,
    expand,
    fetch_values,
    leaf_body,
    own_leaves,
    packer,
    pair_trees,
    replaced_encodings,
    same_entry,
    unequal_differ,
)

__all__ = ["diff_trees"]


# --- maps -----------------------------------------------------------------------------


def _changed(
    old: list[Any], new: list[Any], bodies: tuple[bytes, bytes] | None, pack: Pack
) -> tuple[dict[str, Entry], dict[str, Entry]]:
    """The entries of each side whose keys changed: a different entry, or one side only.

    ``old`` and ``new`` are flat map items, ``bodies`` their encodings if known.
    """
    keys, values = (old[0::2], new[0::2]), (old[1::2], new[1::2])
    if keys[0] == keys[1]:
        differ = list(compress(range(1, len(old), 2), map(ne, values[0], values[1])))
        if bodies is not None and replaced_encodings(old, new, bodies, differ, pack) is not None:
            found = [k // 2 for k in differ if unequal_differ(old[k], new[k])]
        else:
            found = differing(values[0], values[1], pack)
        return (
            {keys[0][k]: values[0][k] for k in found},
            {keys[1][k]: values[1][k] for k in found},
        )
    a = dict(zip(keys[0], values[0], strict=True))
    b = dict(zip(keys[1], values[1], strict=True))
    common = [k for k in a if k in b]
    found = differing([a[k] for k in common], [b[k] for k in common], pack)
    changed = (a.keys() ^ b.keys()) | {common[k] for k in found}
    return {k: a[k] for k in changed if k in a}, {k: b[k] for k in changed if k in b}


def _map_diff(store: ObjectStore, section: str, old: bytes, new: bytes, pack: Pack) -> list[Change]:
    paired = pair_trees(store, old, new)
    sides: list[tuple[list[Any], list[Any], tuple[bytes, bytes] | None]]
    if paired is not None:
        # Children in the same place cover the same keys: compare leaf with leaf.
        sides = []
        for pair in paired.leaves:
            body = (leaf_body(pair.old, pair.old_data), leaf_body(pair.new, pair.new_data))
            bodies = None if body[0] is None or body[1] is None else (body[0], body[1])
            sides.append((pair.old.items, pair.new.items, bodies))
    else:
        # Shared subtrees hold the same keys with the same entries on both sides (keys
        # are unique within a map), so only the items outside them can differ.
        walk = expand(store, old, new)
        own = [own_leaves(walk, root, side) for side, root in ((0, old), (1, new))]
        flat = [[item for leaf in leaves for item in leaf.items] for leaves in own]
        sides = [(flat[0], flat[1], None)]
    a: dict[str, Entry] = {}
    b: dict[str, Entry] = {}
    for items_a, items_b, bodies in sides:
        more = _changed(items_a, items_b, bodies, pack)
        a.update(more[0])
        b.update(more[1])
    before, after = sorted(a), sorted(b)
    values = fetch_values(store, [a[k] for k in before] + [b[k] for k in after])
    return map_changes(
        section,
        dict(zip(before, values[: len(before)], strict=True)),
        dict(zip(after, values[len(before) :], strict=True)),
    )


# --- checkpoints ----------------------------------------------------------------------


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
    pack = packer()
    out: list[Change] = []
    for section in (s for s in SECTIONS if s in sections):
        entries = (tops[0].get(section), tops[1].get(section))
        present = (section in tops[0], section in tops[1])
        if section == "meta":
            present = (True, True)  # no meta fields is an empty meta, as for states
        if present[0] and present[1] and _same(entries[0], entries[1], pack):
            continue
        both_refs = isinstance(entries[0], bytes) and isinstance(entries[1], bytes)
        try:
            if both_refs and section in LIST_SECTIONS:
                out.extend(list_diff(store, section, entries[0], entries[1], pack))  # type: ignore[arg-type]
                continue
            if both_refs and section in ("variables", "meta"):
                out.extend(_map_diff(store, section, entries[0], entries[1], pack))  # type: ignore[arg-type]
                continue
        except NotATree:
            pass
        values = [
            (fetch_values(store, [e])[0] if e is not None else ({} if section == "meta" else None))
            for e in entries
        ]
        out.extend(state_section_changes(section, values[0], values[1], present=present))
    return out


def _same(a: Entry | None, b: Entry | None, pack: Pack) -> bool:
    if a is None or b is None:
        return a is b
    return same_entry(a, b, pack)
