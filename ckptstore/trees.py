"""Trees: maps and lists of entries as content-defined, chunked tree nodes.

A tree node is the canonical encoding of a flat array whose first item is its type::

    [0, key, entry, key, entry, ...]            map leaf (keys strictly increasing)
    [1, entry, entry, ...]                      list leaf (order kept exactly)
    [2, first_key, child, count, ...]           map inner node
    [3, child, count, ...]                      list inner node

An *entry* is either a reference (the 32 raw bytes of an object id, msgpack bin) or an
inline value: any JSON value whose encoding is at most ``INLINE_MAX`` bytes, stored in
place so small values cost no id and no object. JSON has no bytes, so a bin of 32
bytes is always a reference.

Collections of up to ``FLAT_MAX`` entries are one leaf. Larger ones are cut into leaves
where an entry's boundary hash has its low bits zero (a map hashes the key, a list the
entry), giving ~32 entries per leaf, never more than ``CHUNK_MAX``; the leaves are
gathered by inner nodes the same way, level by level, until one node remains. Where a
cut falls depends only on content, so equal collections get equal ids, and changing one
entry rewrites one leaf and the nodes above it rather than the whole collection.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from itertools import pairwise
from typing import Any, Final, NamedTuple, TypeAlias

from ckptstore.decoding import decode, decode_again, decode_trusted, decode_value
from ckptstore.errors import CorruptObject, MalformedData
from ckptstore.objects import ID_BYTES, Kind
from ckptstore.objectstore import ObjectStore

__all__ = [
    "BOUNDARY_MASK",
    "FLAT_MAX",
    "INLINE_MAX",
    "LIST_INNER",
    "LIST_LEAF",
    "MAP_INNER",
    "MAP_LEAF",
    "Entry",
    "Leaves",
    "Node",
    "Pending",
    "fetch_closure",
    "fresh_items",
    "loaded_items",
    "parse_node",
    "parse_stored",
    "read_items",
    "resolve",
    "thaw",
]

MAP_LEAF: Final = 0
LIST_LEAF: Final = 1
MAP_INNER: Final = 2
LIST_INNER: Final = 3

# Records up to this size (a task, an output, a small variable) live in their leaf: a
# changed one rewrites the leaf, stored as a small delta against the leaf it replaces,
# rather than adding a blob whose 32-byte id the leaf must hold (docs/architecture.md).
INLINE_MAX: Final = 256
FLAT_MAX: Final = 64
CHUNK_MAX: Final = 128
BOUNDARY_MASK: Final = 31

Entry: TypeAlias = Any
"""A reference (32 raw id bytes) or an inline canonical JSON value."""

Pending: TypeAlias = MutableMapping[bytes, tuple[Kind, bytes]]
"""Objects built but not yet stored, by raw id."""


class Node(NamedTuple):
    """A decoded tree node: its type and its flat items after the type tag."""

    type: int
    items: list[Any]

    @property
    def is_map(self) -> bool:
        """Whether this node belongs to a map (else a list)."""
        return self.type in (MAP_LEAF, MAP_INNER)

    @property
    def is_leaf(self) -> bool:
        """Whether the items are entries (else child references)."""
        return self.type in (MAP_LEAF, LIST_LEAF)

    def children(self) -> list[bytes]:
        """Ids of child nodes (inner nodes) or referenced objects (leaves)."""
        if self.type == MAP_INNER:
            return self.items[1::3]
        if self.type == LIST_INNER:
            return self.items[0::2]
        entries = self.items[1::2] if self.type == MAP_LEAF else self.items
        return [e for e in entries if isinstance(e, bytes)]


def _is_ref(entry: Entry) -> bool:
    return isinstance(entry, bytes)


# --- reading ------------------------------------------------------------------------


def _check_ref(value: Any) -> None:
    if isinstance(value, bytes) and len(value) != ID_BYTES:
        raise MalformedData("tree node", f"reference of {len(value)} bytes")


# Nodes parsed from the store, by id: an id names one content forever, so a node parsed
# once serves every later walk (diffs and loads re-read the same upper nodes). Bounded:
# cleared when full. Readers must treat ``Node.items`` as read-only. Leaves hold records
# as Python containers, which every full garbage collection walks: at 8,192 nodes a
# long session's loads paused up to 140 ms (p99) for it; 1,024 still holds both sides
# of a diff of a 10,000-task checkpoint.
_PARSED: dict[bytes, Node] = {}
_PARSED_MAX: Final = 1024


def parse_stored(oid: bytes, data: bytes) -> Node:
    """:func:`parse_node` for tree ``oid`` read (and verified) from the store; remembered.

    Raises:
        CorruptObject: naming ``oid`` when its bytes are not a well-formed tree node.
    """
    node = _PARSED.get(oid)
    if node is not None:
        return node
    node = _parse_unshared(oid, data)
    if len(_PARSED) >= _PARSED_MAX:
        _PARSED.clear()
    _PARSED[oid] = node
    return node


def _parse_unshared(oid: bytes, data: bytes) -> Node:
    try:
        return parse_node(data)
    except MalformedData as err:
        raise CorruptObject(oid.hex(), err.problem) from None


def _may_hold_bytes(data: bytes) -> bool:
    # Every msgpack bin starts with one of these; most leaves of records hold none.
    return b"\xc4" in data or b"\xc5" in data or b"\xc6" in data


def parse_node(data: bytes, *, trusted: bool = True) -> Node:
    """Decode and structurally check a tree node.

    ``trusted`` skips the canonical-form check for bytes whose id was just verified.

    Raises:
        MalformedData: if the bytes are not a well-formed tree node.
    """
    raw = decode_trusted(data) if trusted else decode(data, what="tree node")
    if not isinstance(raw, list) or not raw or raw[0] not in (0, 1, 2, 3):
        raise MalformedData("tree node", "not a tagged array")
    node_type, items = raw[0], raw[1:]
    if node_type == MAP_LEAF:
        if len(items) % 2:
            raise MalformedData("tree node", "map leaf with an odd number of items")
        keys = items[0::2]
        if not all(isinstance(k, str) for k in keys) or any(a >= b for a, b in pairwise(keys)):
            raise MalformedData("tree node", "map keys are not unique strings in order")
        if _may_hold_bytes(data):
            for entry in items[1::2]:
                _check_ref(entry)
    elif node_type == LIST_LEAF:
        if _may_hold_bytes(data):
            for entry in items:
                _check_ref(entry)
    else:
        width = 3 if node_type == MAP_INNER else 2
        if not items or len(items) % width:
            raise MalformedData("tree node", "inner node with a partial child")
        for i in range(0, len(items), width):
            group = items[i : i + width]
            child, count = group[-2], group[-1]
            ok = isinstance(child, bytes) and len(child) == ID_BYTES
            ok = ok and isinstance(count, int) and not isinstance(count, bool) and count > 0
            if node_type == MAP_INNER:
                ok = ok and isinstance(group[0], str)
            if not ok:
                raise MalformedData("tree node", "inner node child is malformed")
    return Node(node_type, items)


Leaves: TypeAlias = dict[bytes, tuple[bytes, list[Any] | None]]
"""A load's leaves by id: their bytes, and the items of those parsed for it alone."""

# Every reference starts with these bytes (msgpack bin 8 of 32), so a node without them
# has no reference. Text never holds them (0xc4 must precede a continuation byte), so
# few nodes without references have them by chance (a number can: they only miss out).
_REF_MARK: Final = b"\xc4\x20"


def _load_level(
    store: ObjectStore,
    ids: Iterable[bytes],
    into: dict[bytes, tuple[Kind, Any]],
    follow_refs: bool,
    leaves: Leaves | None,
) -> list[bytes]:
    """Fetch ``ids`` not yet in ``into`` in one batch; return the ids to fetch next."""
    wanted = [oid for oid in dict.fromkeys(ids) if oid not in into]
    if not wanted:
        return []
    nxt: list[bytes] = []
    for oid, (kind, data) in store.get_many(wanted).items():
        if kind == Kind.TREE:
            if leaves is not None and oid not in _PARSED and _REF_MARK not in data:
                # A leaf of inline records read for a load (a node without the mark has
                # no reference, so no child): parsed for this load alone, not
                # remembered, so its items can be the caller's without a second decode.
                node = _parse_unshared(oid, data)
                into[oid] = (kind, node)
                leaves[oid] = (data, node.items)
                continue
            node = parse_stored(oid, data)
            into[oid] = (kind, node)
            if follow_refs or not node.is_leaf:
                nxt.extend(node.children())
            if leaves is not None and node.is_leaf:
                leaves[oid] = (data, None)
        elif kind == Kind.BLOB:
            into[oid] = (kind, data)
        else:
            raise CorruptObject(oid.hex(), "a commit where a tree or blob was expected")
    return nxt


def fetch_closure(
    store: ObjectStore,
    roots: Iterable[bytes],
    *,
    follow_refs: bool = True,
    leaves: Leaves | None = None,
) -> dict[bytes, tuple[Kind, Any]]:
    """Fetch ``roots`` and everything below them, one backend batch per level.

    With ``follow_refs=False`` only the nodes of the trees themselves are fetched, not
    the objects their leaves reference (enough to list a collection's entries). A
    ``leaves`` dict is filled with every leaf node, for :func:`fresh_items`; leaves
    parsed for this fetch alone are not remembered (see ``_load_level``).
    """
    loaded: dict[bytes, tuple[Kind, Any]] = {}
    level = list(roots)
    while level:
        level = _load_level(store, level, loaded, follow_refs, leaves)
    return loaded


def _items(loaded: dict[bytes, tuple[Kind, Any]], oid: bytes) -> list[Any]:
    """The leaf items under tree ``oid``, concatenated in order."""
    kind, node = loaded[oid]
    if kind != Kind.TREE:
        raise CorruptObject(oid.hex(), f"a {kind.label} where a tree was expected")
    if node.is_leaf:
        items: list[Any] = node.items
        return items
    out: list[Any] = []
    for child in node.children():
        out.extend(_items(loaded, child))
    return out


def loaded_items(loaded: dict[bytes, tuple[Kind, Any]], oid: bytes) -> list[Any]:
    """:func:`read_items` over objects already fetched by :func:`fetch_closure`.

    The items are the remembered node's own: read them, copy what you keep (:func:`thaw`).
    """
    return _items(loaded, oid)


def fresh_items(loaded: dict[bytes, tuple[Kind, Any]], leaves: Leaves, oid: bytes) -> list[Any]:
    """:func:`loaded_items`, but the caller's own.

    A leaf parsed for this load alone hands over its items, once; any other leaf is
    decoded again from its bytes, for a whole collection several times cheaper than
    copying the remembered nodes' values one by one (:func:`thaw`).
    """
    kind, node = loaded[oid]
    if kind != Kind.TREE:
        raise CorruptObject(oid.hex(), f"a {kind.label} where a tree was expected")
    if node.is_leaf:
        data, own = leaves[oid]
        if own is not None:
            leaves[oid] = (data, None)  # a leaf used twice in one checkpoint: a copy next
            return own
        items: list[Any] = decode_again(data)
        del items[0]
        return items
    out: list[Any] = []
    for child in node.children():
        out.extend(fresh_items(loaded, leaves, child))
    return out


def read_items(store: ObjectStore, root: bytes) -> list[Any]:
    """Return the leaf items of a tree without resolving references.

    For a map: the flat ``[key, entry, key, entry, ...]`` list; for a list: the entries.
    """
    return _items(fetch_closure(store, [root], follow_refs=False), root)


def thaw(entry: Entry) -> Any:
    """A copy of an inline entry's value that its caller may change.

    Inline values live in remembered nodes (``parse_stored``); a caller that appended to
    an inline list would change every later read of it. Inline values are at most
    ``INLINE_MAX`` bytes, so copying them costs little.
    """
    if type(entry) is list:
        return [thaw(item) for item in entry]
    if type(entry) is dict:
        return {key: thaw(item) for key, item in entry.items()}
    return entry


def resolve(loaded: dict[bytes, tuple[Kind, Any]], entry: Entry) -> Any:
    """Turn an entry into its value, using objects already fetched by :func:`fetch_closure`.

    The value is the caller's own: nothing in it is shared with a remembered node.
    """
    if not _is_ref(entry):
        return thaw(entry)
    kind, obj = loaded[entry]
    if kind == Kind.BLOB:
        return decode_value(entry, obj)
    items = _items(loaded, entry)
    if obj.is_map:
        return {items[i]: resolve(loaded, items[i + 1]) for i in range(0, len(items), 2)}
    return [resolve(loaded, e) for e in items]
