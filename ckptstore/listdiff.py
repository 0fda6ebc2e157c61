"""List diff over trees: the changes between two versions of a list section.

Part of :mod:`ckptstore.treediff`. Two lists of the same shape (statuses changed in
place) are compared leaf by leaf where their ids differ; otherwise the trees are
expanded where they differ and the entries left are aligned, with the shared subtrees
standing in as single tokens. Only the entries that changed are decoded.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from itertools import compress, filterfalse
from operator import ne
from typing import Any, NamedTuple

from ckptstore.diff import Change, align, list_changes
from ckptstore.objectstore import ObjectStore
from ckptstore.trees import Entry, read_items
from ckptstore.treewalk import (
    Pack,
    Paired,
    Walk,
    blob_ref,
    child_ids,
    expand,
    fetch_values,
    leaf_body,
    pair_trees,
    replaced_encodings,
)

__all__ = ["list_diff"]


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


def list_diff(store: ObjectStore, section: str, old: bytes, new: bytes, pack: Pack) -> list[Change]:
    """The changes from the list tree ``old`` to ``new`` of ``section``.

    Raises:
        NotATree: an entry's id names something other than a tree node.
    """
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
