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

from collections.abc import Callable, Hashable, Sequence
from itertools import compress, filterfalse
from operator import ne
from typing import Any, NamedTuple

from ckptstore.diff import LIST_SECTIONS, SECTIONS, Change, align, list_changes, map_changes
from ckptstore.diff import section_changes as state_section_changes
from ckptstore.objectstore import ObjectStore
from ckptstore.roots import check_root
from ckptstore.trees import Entry, Node, read_items
from ckptstore.treewalk import (
    NotATree,
    Pack,
    Paired,
    Walk,
    blob_ref,
    child_ids,
    differing,
    expand,
    fetch_values,
    leaf_body,
    packer,
    pair_trees,
    replaced_encodings,
    same_entry,
    unequal_differ,
)

__all__ = ["diff_trees"]


# --- maps -----------------------------------------------------------------------------


def _own_leaves(walk: Walk, root: bytes, side: int) -> list[Node]:
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
        own = [_own_leaves(walk, root, side) for side, root in ((0, old), (1, new))]
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


# --- lists ----------------------------------------------------------------------------


class _Run(NamedTuple):
    """A stretch of one side of a list: shared subtrees, or the entries of a leaf.

    ``first`` is the index of its first unit among the side's units (a shared subtree
    or an entry each), ``at`` the position of its first entry in the list. ``units``
    holds the subtree ids (``counts``: the entries under each) or the entries of leaf
    ``leaf`` (``counts`` None).
    """

    first: int
    at: int
    units: list[Any]
    counts: list[int] | None
    leaf: bytes = b""


def _runs(walk: Walk, root: bytes, side: int) -> list[_Run]:
    """One side of a list: its shared subtrees and its own leaves, in order."""
    other = walk.seen[1 - side]
    runs: list[_Run] = []
    first = at = 0

    def add(units: list[Any], counts: list[int] | None, leaf: bytes = b"") -> None:
        nonlocal first, at
        runs.append(_Run(first, at, units, counts, leaf))
        first += len(units)
        at += len(units) if counts is None else sum(counts)

    def visit(oid: bytes) -> None:
        node = walk.nodes[oid]
        if node.is_leaf:
            add(node.items, None, oid)
            return
        # Most children are shared: take them run by run, descend into the others.
        ids, counts = child_ids(node)
        done = 0
        for child in list(filterfalse(other.__contains__, ids)):
            k = ids.index(child, done)
            if k > done:
                add(ids[done:k], counts[done:k])
            visit(child)
            done = k + 1
        if done < len(ids):
            add(ids[done:], counts[done:])

    if root in other:
        add([root], [0])  # the whole side is one unit: nothing follows it
    else:
        visit(root)
    return runs


# Units are aligned by tokens. A shared subtree's is its 32-byte id; an entry's is its
# msgpack encoding: a reference encodes as a 34-byte bin, which no JSON value does, and
# an inline value's could equal a node id only by a blake3 preimage. So units of
# different kinds never match.


def _tokens(runs: list[_Run], token: Callable[[Entry], Hashable]) -> list[Hashable]:
    """The tokens of one side's units, ``token`` giving an entry's."""
    out: list[Hashable] = []
    for run in runs:
        out.extend(run.units if run.counts is not None else map(token, run.units))
    return out


def _entries(store: ObjectStore, runs: list[_Run], lo: int, hi: int) -> list[tuple[int, Entry]]:
    """The entries of units ``lo`` to ``hi`` of one side, with their positions."""
    out: list[tuple[int, Entry]] = []
    for run in runs:
        a, b = max(lo, run.first) - run.first, min(hi, run.first + len(run.units)) - run.first
        if a >= b:
            continue
        if run.counts is None:
            out.extend(zip(range(run.at + a, run.at + b), run.units[a:b], strict=True))
            continue
        at = run.at + sum(run.counts[:a])
        for t in range(a, b):
            out.extend(enumerate(read_items(store, run.units[t]), at))
            at += run.counts[t]
    return out


def _run(old: list[Hashable], i: int, new: list[Hashable], j: int) -> int:
    """How many tokens from ``old[i]`` and ``new[j]`` on are equal, pair by pair."""
    limit = min(len(old) - i, len(new) - j)
    # Galloping, then halving: slice comparisons run in C, a whole run in a few steps.
    size = 1
    while size < limit and old[i : i + size] == new[j : j + size]:
        size *= 2
    lo, hi = size // 2, min(size, limit)  # old[i:i+lo] == new[j:j+lo]; the answer <= hi
    if old[i : i + hi] == new[j : j + hi]:
        return hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if old[i + lo : i + mid] == new[j + lo : j + mid]:
            lo = mid
        else:
            hi = mid
    return lo


def _gaps(old: list[Hashable], new: list[Hashable]) -> list[tuple[int, int, int, int]]:
    """The stretches ``(i1, i2, j1, j2)`` where ``old[i1:i2]`` and ``new[j1:j2]`` differ.

    As :func:`ckptstore.diff.align` aligns them. When no token repeats on either side
    and the tokens both sides hold come in the same order, that alignment matches every
    common token (its longest-block recursion leaves none out), so the stretches are
    found by stepping along equal runs; otherwise (repeats, moves) it is asked.
    """
    where = dict(zip(new, range(len(new)), strict=True))
    if len(where) == len(new) and len(set(old)) == len(old):
        gaps = []
        i = j = 0
        while True:
            step = _run(old, i, new, j)
            i, j = i + step, j + step
            # Up to the next token both sides hold; none of those skipped is elsewhere.
            i2 = i
            while i2 < len(old) and old[i2] not in where:
                i2 += 1
            j2 = where[old[i2]] if i2 < len(old) else len(new)
            if j2 < j:
                break  # moved: not in the same order
            if i2 > i or j2 > j:
                gaps.append((i, i2, j, j2))
            if i2 == len(old):
                return gaps
            i, j = i2, j2
    return [(i1, i2, j1, j2) for tag, i1, i2, j1, j2 in align(old, new) if tag != "equal"]


_Picked = tuple[list[tuple[int, Entry]], list[tuple[int, Entry]]]
"""The entries of each side in the stretches that differ, with their positions."""


def _stretches(
    store: ObjectStore, runs: list[list[_Run]], token: Callable[[Entry], Hashable]
) -> _Picked:
    """The entries in the stretches that differ, aligning units by ``token``."""
    picked: _Picked = ([], [])
    for i1, i2, j1, j2 in _gaps(_tokens(runs[0], token), _tokens(runs[1], token)):
        picked[0].extend(_entries(store, runs[0], i1, i2))
        picked[1].extend(_entries(store, runs[1], j1, j2))
    return picked


def _mixed(picked: _Picked) -> bool:
    """Whether a reference on one side meets an inline entry on the other."""
    forms = [{isinstance(e, bytes) for _, e in side} for side in picked]
    return (True in forms[0] and False in forms[1]) or (False in forms[0] and True in forms[1])


# The common change (a task's status) replaces entries in place: both sides are the
# same units but for a few entries. If each replaced entry is new to the other side, the
# alignment matches everything else in place (its longest equal stretch is always one
# in place), so the entries that differ are the answer, found with Python's == and shown
# exact by the bytes (see replaced), encoding nothing but them.


class _Row(NamedTuple):
    """Entries in a row on one side of a list, from its own leaves.

    ``at`` is the position of the first, ``body`` their encodings back to back.
    """

    at: int
    entries: list[Entry]
    body: bytes


def _in_place(rows: list[tuple[_Row, _Row]], pack: Pack) -> _Picked | None:
    """The entries that differ, if the sides differ only by entries replaced in place.

    ``rows`` pairs the rows of entries of the two sides. None if more differs, or if a
    replaced entry is not new to the other side.
    """
    picked: _Picked = ([], [])
    replaced: list[tuple[bytes, bytes]] = []
    for a, b in rows:
        if len(a.entries) != len(b.entries):
            return None
        differ = list(compress(range(len(a.entries)), map(ne, a.entries, b.entries)))
        found = replaced_encodings(a.entries, b.entries, (a.body, b.body), differ, pack)
        if found is None:
            return None
        replaced += found
        picked[0].extend((a.at + k, a.entries[k]) for k in differ)
        picked[1].extend((b.at + k, b.entries[k]) for k in differ)
    for was, now in replaced:
        if any(was in b.body or now in a.body for a, b in rows):
            return None  # not new to the other side
    return picked


def _paired_rows(paired: Paired) -> list[tuple[_Row, _Row]] | None:
    """The rows of two trees of the same shape: their leaves, pair by pair.

    None if a subtree that differs in one place is referenced by the other side in
    another: then it was moved, not replaced.
    """
    for side in (0, 1):
        elsewhere = set().union(
            *paired.children[1 - side], (pair[1 - side] for pair in paired.pairs)
        )
        if any(pair[side] in elsewhere for pair in paired.pairs):
            return None
    rows = []
    for pair in paired.leaves:
        bodies = (leaf_body(pair.old, pair.old_data), leaf_body(pair.new, pair.new_data))
        if bodies[0] is None or bodies[1] is None:
            return None
        rows.append(
            (_Row(pair.at, pair.old.items, bodies[0]), _Row(pair.at, pair.new.items, bodies[1]))
        )
    return rows


def _run_rows(walk: Walk, runs: list[list[_Run]]) -> list[tuple[_Row, _Row]] | None:
    """The rows of entries of two sides, pair by pair.

    None unless both hold the same shared subtrees in the same places, and rows of
    entries between them (a leaf split in one place and not the other is fine: the
    entries of its parts join one row).
    """
    parts: list[list[list[bytes] | _Row]] = [[], []]
    for side in (0, 1):
        out = parts[side]
        for run in runs[side]:
            last = out[-1] if out else None
            if run.counts is not None:
                if isinstance(last, list):
                    out[-1] = last + run.units
                else:
                    out.append(run.units)
                continue
            body = leaf_body(walk.nodes[run.leaf], walk.stored[run.leaf])
            if body is None:
                return None
            if isinstance(last, _Row):
                out[-1] = _Row(last.at, last.entries + run.units, last.body + body)
            else:
                out.append(_Row(run.at, run.units, body))
    if len(parts[0]) != len(parts[1]):
        return None
    rows = []
    for a, b in zip(parts[0], parts[1], strict=True):
        if isinstance(a, _Row) and isinstance(b, _Row):
            rows.append((a, b))
        elif isinstance(a, _Row) or isinstance(b, _Row) or a != b:
            return None
    return rows


def _list_diff(
    store: ObjectStore, section: str, old: bytes, new: bytes, pack: Pack
) -> list[Change]:
    paired = pair_trees(store, old, new)
    rows = _paired_rows(paired) if paired is not None else None
    runs = None
    if rows is None:
        walk = expand(store, old, new)
        runs = [_runs(walk, old, 0), _runs(walk, new, 1)]
        rows = _run_rows(walk, runs)
    picked = _in_place(rows, pack) if rows is not None else None
    if picked is None or _mixed(picked):
        if runs is None:
            walk = expand(store, old, new)
            runs = [_runs(walk, old, 0), _runs(walk, new, 1)]
        picked = _stretches(store, runs, pack)
        if _mixed(picked):  # the same value may be written in either form
            picked = _stretches(store, runs, lambda entry: pack(blob_ref(entry)))
    values = fetch_values(store, [e for _, e in picked[0]] + [e for _, e in picked[1]])
    split = len(picked[0])
    deleted = [(i, v) for (i, _), v in zip(picked[0], values[:split], strict=True)]
    inserted = [(j, v) for (j, _), v in zip(picked[1], values[split:], strict=True)]
    return list_changes(section, deleted, inserted)


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
                out.extend(_list_diff(store, section, entries[0], entries[1], pack))  # type: ignore[arg-type]
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
