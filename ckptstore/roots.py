"""The shape of a checkpoint's root: which sections it holds, and what each must be.

A commit names a root tree by id. The id proves the tree's bytes are intact, not that
the tree is a checkpoint: a damaged or hostile store can hold a correctly hashed blob,
list, or root with an inline section where a checkpoint's root belongs. Readers that
walk a checkpoint part by part (diff, paths) check the root first, fsck checks every
commit's root, and a full load checks the value it built.
"""

from __future__ import annotations

from typing import Any, Final

from ckptstore.errors import CorruptObject, ObjectNotFound
from ckptstore.objects import Kind
from ckptstore.objectstore import ObjectStore
from ckptstore.trees import Entry, parse_stored, read_items

__all__ = ["ROOT_NOT_A_TREE", "SECTIONS", "check_root", "root_problems", "value_problem"]

SECTIONS: Final[dict[str, type | None]] = {
    "phase": None,
    "meta": dict,
    "tasks": list,
    "dependencies": list,
    "variables": dict,
    "recent_outputs": list,
}
"""The entries a checkpoint's root may hold: the map or list tree each must be (or
``None``: the phase, an inline value or a blob)."""

_NULL = type(None)
ROOT_NOT_A_TREE: Final = "a {} where a checkpoint's root tree was expected"
_ROOT_NOT_A_MAP: Final = "a list tree where a checkpoint's root map was expected"
_SHAPE_NAMES: Final[dict[type, str]] = {dict: "a map", list: "a list"}


def value_problem(top: Any) -> str | None:
    """Why a resolved root is not a checkpoint (a correctly hashed tree in the wrong place)."""
    if not isinstance(top, dict):
        return _ROOT_NOT_A_MAP
    for name, value in top.items():
        if name not in SECTIONS:
            return f"a checkpoint's root holds an unknown section {name!r}"
        expected = SECTIONS[name] or (dict, _NULL)
        if not isinstance(value, expected):
            want = _SHAPE_NAMES[expected] if isinstance(expected, type) else "an object or null"
            return f"section {name!r} is {_SHAPE_NAMES.get(type(value), 'a scalar')}, not {want}"
    return None


def check_root(store: ObjectStore, root: bytes) -> None:
    """Raise ``CorruptObject`` naming ``root`` if it is not shaped as a checkpoint's root.

    For walks that read a checkpoint part by part (diff), which would otherwise
    misread a map as a list, or a blob as a tree, in a damaged store.
    """
    problem = root_problems(store, [root], cached=True).get(root)
    if problem is not None:
        raise CorruptObject(root.hex(), problem)


def root_problems(
    store: ObjectStore, roots: list[bytes], *, cached: bool = False
) -> dict[bytes, str]:
    """Check that each of ``roots`` (commit trees) is shaped as a checkpoint's root.

    Reads each root node and the first node of each section, not whole checkpoints, so
    fsck can afford it for every commit. Roots or sections that cannot be read are left
    out: fsck reports them as damaged or missing already. ``cached`` reads through the
    object cache (for a diff, which reads these nodes next anyway); fsck reads the file.
    """
    problems: dict[bytes, str] = {}
    sections: dict[bytes, list[tuple[bytes, str]]] = {}
    for root, (kind, data) in _readable(store, roots, cached).items():
        try:
            flat = _root_items(store, root, kind, data)
        except (CorruptObject, ObjectNotFound):
            continue
        if isinstance(flat, str):
            problems[root] = flat
            continue
        for name, entry in _split(flat).items():
            if name not in SECTIONS:
                problems[root] = f"a checkpoint's root holds an unknown section {name!r}"
            elif (expected := SECTIONS[name]) is not None and not isinstance(entry, bytes):
                problems[root] = f"section {name!r} is inline, not {_SHAPE_NAMES[expected]} tree"
            elif expected is not None:
                sections.setdefault(entry, []).append((root, name))
    for oid, (kind, data) in _readable(store, list(sections), cached).items():
        try:
            shape = parse_stored(oid, data).is_map if kind == Kind.TREE else None
        except CorruptObject:
            continue
        for root, name in sections[oid]:
            if shape is not (SECTIONS[name] is dict):
                got = "a blob" if shape is None else f"a {'map' if shape else 'list'} tree"
                problems[root] = f"section {name!r} is {got}"
    return problems


def _root_items(store: ObjectStore, root: bytes, kind: Kind, data: bytes) -> list[Any] | str:
    """The flat items of a root map, or why it is none."""
    if kind != Kind.TREE:
        return ROOT_NOT_A_TREE.format(kind.label)
    node = parse_stored(root, data)
    if not node.is_map:
        return _ROOT_NOT_A_MAP
    return node.items if node.is_leaf else read_items(store, root)


def _readable(
    store: ObjectStore, ids: list[bytes], cached: bool
) -> dict[bytes, tuple[Kind, bytes]]:
    """``ids`` read in one batch, leaving out any that are missing or damaged."""
    try:
        return store.get_many(ids, cached=cached)
    except (CorruptObject, ObjectNotFound):
        out: dict[bytes, tuple[Kind, bytes]] = {}
        for oid in ids:
            try:
                out.update(store.get_many([oid], cached=cached))
            except (CorruptObject, ObjectNotFound):
                continue
        return out


def _split(flat: list[Any]) -> dict[str, Entry]:
    return {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}
