"""A commit's token estimate from its parent's: only the entries that differ are counted.

A checkpoint's estimate is a sum over its entries (:func:`ckptstore.tokens.estimate_entry`):
each record of a list section, each variable with its name, the phase and each other
top-level field with its name, plus one for each list section and for ``variables``.
So when the parent's figure is the same estimator's count of the parent's tree (its
``tokenizer`` says so), the new figure is the parent's plus the entries only the new
tree holds, minus those only the parent's holds. The two trees are walked where they
differ (:func:`ckptstore.treewalk.expand`, over the commit's new objects before they are
written), so the cost follows the change, not the checkpoint: a fresh ``ckpt commit``
process no longer estimates every task and every long text of a state, most of them
unchanged. ``tests/test_token_delta.py`` holds the result to a full count.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from ckptstore.commit_object import Commit
from ckptstore.objects import Kind, pack_canonical
from ckptstore.objectstore import ObjectStore
from ckptstore.snapshot import LIST_SECTIONS, Built, unestimated, write_state
from ckptstore.tokens import Estimator, cached_estimate, estimate_entry, estimator
from ckptstore.trees import Entry, read_items
from ckptstore.treewalk import NotATree, Overlay, expand, fetch_values, own_leaves

__all__ = ["token_change", "write_counted"]

_MAPS = ("variables", "meta")
# One token for each of these sections, present (snapshot.write_state counts them).
_COUNTED = (*LIST_SECTIONS, "variables")

# Up to this many records to estimate, a full count is cheaper than walking the trees
# (a warm ``ckpt serve`` or a long-lived Store: only the changed records are new).
_FEW_UNESTIMATED = 32

Marked = tuple[str | None, Entry, bytes]
"""An entry, the name it is estimated with, and what its estimate is remembered by."""


def _mark(key: str | None, entry: Entry) -> Marked:
    # The fingerprint ``snapshot`` remembers an entry's estimate by.
    return key, entry, entry if isinstance(entry, bytes) else pack_canonical(entry)


def _estimate(store: ObjectStore, entries: list[Marked], using: Estimator) -> int:
    """The sum of the entries' estimates; values are read only where none is remembered."""
    total = 0
    unknown: list[Marked] = []
    for marked in entries:
        found = cached_estimate(using, marked[0], marked[2])
        if found is None:
            unknown.append(marked)
        else:
            total += found
    if unknown:
        values = fetch_values(store, [entry for _, entry, _ in unknown])
        for (key, _, mark), value in zip(unknown, values, strict=True):
            total += estimate_entry(key, value, fingerprint=mark, using=using)
    return total


def _marked(items: list[Entry], name: str) -> list[Marked]:
    """Leaf items as entries, each with the name it is estimated with."""
    if name in _MAPS:
        return [_mark(k, e) for k, e in zip(items[0::2], items[1::2], strict=True)]
    return [_mark(None, e) for e in items]


def _whole(store: ObjectStore, name: str, entry: Entry | None) -> list[Marked]:
    """Every entry of one side's section (a side without it has none)."""
    if entry is None:
        return []
    found = store.get_many([entry]).get(entry) if isinstance(entry, bytes) else None
    if found is None or found[0] != Kind.TREE:
        raise NotATree  # counted in full instead, from the new state alone
    return _marked(read_items(store, entry), name)


def _section(
    store: ObjectStore, name: str, old: Entry | None, new: Entry | None
) -> tuple[list[Marked], list[Marked]]:
    """The entries only the old section holds and those only the new one holds."""
    if isinstance(old, bytes) and isinstance(new, bytes):
        walk = expand(store, old, new)
        sides = tuple(
            _marked([item for leaf in own_leaves(walk, root, side) for item in leaf.items], name)
            for side, root in ((0, old), (1, new))
        )
    else:
        sides = (_whole(store, name, old), _whole(store, name, new))
    # A leaf both sides rewrote still holds mostly the same records: they cancel.
    counts = [Counter((key, mark) for key, _, mark in side) for side in sides]
    common = counts[0] & counts[1]
    out: tuple[list[Marked], list[Marked]] = ([], [])
    for side, entries in enumerate(sides):
        left = Counter(common)
        for marked in entries:
            if left[marked[0], marked[2]] > 0:
                left[marked[0], marked[2]] -= 1
            else:
                out[side].append(marked)
    return out


def token_change(
    store: ObjectStore,
    pending: Mapping[bytes, tuple[Kind, bytes]],
    old_root: bytes,
    new_root: bytes,
    using: Estimator,
) -> int | None:
    """The token estimate of the tree at ``new_root`` minus that of ``old_root``.

    ``pending`` holds the new objects not yet written. None if it cannot be told this
    way (a section that is not a tree, as a foreign writer may leave): count in full.
    """
    if old_root == new_root:
        return 0
    overlay = Overlay(store, pending)
    try:
        tops = [read_items(overlay, root) for root in (old_root, new_root)]
        old, new = (dict(zip(t[0::2], t[1::2], strict=True)) for t in tops)
        change = 0
        for name in old.keys() | new.keys():
            a, b = old.get(name), new.get(name)
            if a is not None and b is not None and _mark(name, a)[2] == _mark(name, b)[2]:
                continue  # equal bytes: the same value
            if name in _COUNTED:
                change += (b is not None) - (a is not None)
            if name in _COUNTED or name == "meta":
                gone, added = _section(overlay, name, a, b)
            else:
                gone = [_mark(name, a)] if a is not None else []
                added = [_mark(name, b)] if b is not None else []
            change += _estimate(overlay, added, using) - _estimate(overlay, gone, using)
    except NotATree:
        return None
    return change


def write_counted(store: ObjectStore, state: Mapping[str, Any], parent: Commit | None) -> Built:
    """:func:`~ckptstore.snapshot.write_state` on ``parent``, its estimate counted by difference.

    In full when there is no parent, its figure is not the active estimator's count, or
    this process remembers the estimates of nearly every record already (it made the
    parent): then the walk would cost more than the few estimates left.
    """
    using = estimator()
    if (
        parent is None
        or parent.tokenizer != using.name
        or unestimated(state, using) <= _FEW_UNESTIMATED
    ):
        return write_state(state)
    built = write_state(state, count_tokens=False)
    change = token_change(store, built.pending, parent.tree, built.root, using)
    if change is None:
        return write_state(state)
    built.tokens = parent.estimated_tokens + change
    built.tokenizer = using.name
    return built
