"""Paths: naming one value inside a checkpoint, as in ``ckpt show HEAD:variables.plan``.

A path is dot-separated segments; a segment with dots in it is written in double quotes
(``variables."a.b"``). The first segment is a section or a top-level field:

* ``variables.NAME`` — a variable (found by descending the map tree, not by loading it);
* ``tasks.ID`` — the task whose ``id`` is ID; ``dependencies.NAME`` — by ``name``;
* ``recent_outputs.N`` — by position; ``phase``, ``phases_completed``, ``agent_tier``,
  ``meta.FIELD`` and any other top-level field by name.

Further segments walk into the value: object keys, or list positions.
"""

from __future__ import annotations

import re
from typing import Any, Final

from ckptstore.errors import InvalidPath, PathNotFound
from ckptstore.objects import Kind
from ckptstore.objectstore import ObjectStore
from ckptstore.roots import check_root
from ckptstore.trees import MAP_INNER, Entry, fetch_closure, parse_stored, read_items, resolve, thaw

__all__ = ["Path", "format_path", "lookup", "parse_path"]

Path = tuple[str, ...]

_SEGMENT: Final = re.compile(r'"((?:[^"\\]|\\.)*)"|([^."]+)')
_BY_FIELD: Final = {"tasks": "id", "dependencies": "name"}
_SINGULAR: Final = {"tasks": "task", "dependencies": "dependency"}


def parse_path(text: str) -> Path:
    """Split a path into segments.

    Raises:
        InvalidPath: empty segments, unbalanced quotes.
    """
    segments: list[str] = []
    pos = 0
    while pos < len(text):
        match = _SEGMENT.match(text, pos)
        if match is None:
            raise InvalidPath(text, f"unexpected {text[pos]!r} at position {pos}")
        quoted, plain = match.groups()
        segments.append(re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else plain)
        pos = match.end()
        if pos < len(text):
            if text[pos] != ".":
                raise InvalidPath(text, f"expected '.' at position {pos}")
            pos += 1
            if pos == len(text):
                raise InvalidPath(text, "it ends with '.'")
    if not segments:
        raise InvalidPath(text, "it is empty")
    return tuple(segments)


def format_path(path: Path) -> str:
    """The text form of a path (quoting segments that need it)."""
    parts = []
    for seg in path:
        plain = seg and not any(ch in seg for ch in '."\\')
        parts.append(seg if plain else '"' + seg.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return ".".join(parts)


def _map_entry(store: ObjectStore, tree: bytes, key: str) -> tuple[bool, Entry]:
    """Find ``key`` in a map tree by descending its inner nodes (one read per level)."""
    oid = tree
    while True:
        kind, data = store.get(oid)
        if kind != Kind.TREE:
            return False, None
        node = parse_stored(oid, data)
        if not node.is_map:
            return False, None
        if node.is_leaf:
            keys = node.items[0::2]
            if key in keys:
                return True, node.items[2 * keys.index(key) + 1]
            return False, None
        step = 3 if node.type == MAP_INNER else 2
        children = [(node.items[i], node.items[i + 1]) for i in range(0, len(node.items), step)]
        below = [child for first, child in children if first <= key]
        if not below:
            return False, None
        oid = below[-1]


def _value(store: ObjectStore, entry: Entry) -> Any:
    if not isinstance(entry, bytes):
        return thaw(entry)
    return resolve(fetch_closure(store, [entry]), entry)


def _walk_value(value: Any, rest: Path, done: list[str], text: str) -> Any:
    for seg in rest:
        if isinstance(value, dict) and seg in value:
            value = value[seg]
        elif isinstance(value, list) and seg.isdigit() and int(seg) < len(value):
            value = value[int(seg)]
        else:
            where = format_path(tuple(done)) or "the checkpoint"
            raise PathNotFound(text, f"{where} has no {seg!r}", _choices(value))
        done.append(seg)
    return value


def _choices(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [str(k) for k in value]
    if isinstance(value, list):
        return [f"0..{len(value) - 1}"] if value else []
    return []


def lookup(store: ObjectStore, root: bytes, path: Path, *, text: str = "") -> Any:
    """Return the value at ``path`` in the checkpoint whose root tree is ``root``.

    Raises:
        PathNotFound: naming the first segment that does not exist, and what does.
        CorruptObject: if ``root`` is not shaped as a checkpoint's root.
    """
    text = text or format_path(path)
    check_root(store, root)
    flat = read_items(store, root)
    top: dict[str, Entry] = {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}
    head, rest = path[0], path[1:]
    if head == "meta" and rest:
        head, rest = rest[0], rest[1:]
    if head not in top and head not in ("meta",):
        meta_ref = top.get("meta")
        found, entry = _map_entry(store, meta_ref, head) if meta_ref else (False, None)
        if not found:
            fields = [k for k in top if k != "meta"]
            if isinstance(meta_ref, bytes):
                fields += read_items(store, meta_ref)[0::2]
            raise PathNotFound(text, f"the checkpoint has no {head!r}", sorted(fields))
        return _walk_value(_value(store, entry), rest, [head], text)
    if head == "meta":
        return _walk_value(_value(store, top["meta"]), rest, [head], text)
    entry = top[head]
    if head == "variables" and rest and isinstance(entry, bytes):
        found, var = _map_entry(store, entry, rest[0])
        if not found:
            names = read_items(store, entry)[0::2]
            raise PathNotFound(text, f"no variable {rest[0]!r}", names)
        return _walk_value(_value(store, var), rest[1:], [head, rest[0]], text)
    value = _value(store, entry)
    if head in _BY_FIELD and rest and isinstance(value, list):
        name = _BY_FIELD[head]
        for item in value:
            if isinstance(item, dict) and str(item.get(name)) == rest[0]:
                return _walk_value(item, rest[1:], [head, rest[0]], text)
        known = [str(i.get(name)) for i in value if isinstance(i, dict) and name in i]
        raise PathNotFound(text, f"no {_SINGULAR[head]} with {name} {rest[0]!r}", known)
    return _walk_value(value, rest, [head], text)
