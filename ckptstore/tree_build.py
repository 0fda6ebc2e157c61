"""Tree building: maps and lists of entries into chunked tree nodes (format: trees.py).

A node is assembled from its entries' canonical bytes (*parts*): msgpack encodes an
array as a header followed by its items' encodings, so joining the parts under the
right header gives exactly the node's canonical encoding. A commit that already holds
its records' bytes (:mod:`ckptstore.records`) thus never turns them back into values
to pack them again; ``tests/test_trees.py`` checks the joined bytes against packing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import blake3

from ckptstore.objects import Kind, object_id, pack_canonical
from ckptstore.trees import (
    BOUNDARY_MASK,
    CHUNK_MAX,
    FLAT_MAX,
    INLINE_MAX,
    LIST_INNER,
    LIST_LEAF,
    MAP_INNER,
    MAP_LEAF,
    Entry,
    Pending,
)

__all__ = [
    "REF_PREFIX",
    "blob_id",
    "build_list",
    "build_list_parts",
    "build_map",
    "build_map_parts",
    "entry_part",
    "inline_boundary",
    "ref_boundary",
    "store_value",
]

REF_PREFIX: Final = b"\xc4\x20"
"""How a reference starts in a node: msgpack bin 8 of 32 bytes. No inline value does."""

_TYPE_BYTES: Final = {t: bytes((t,)) for t in (MAP_LEAF, LIST_LEAF, MAP_INNER, LIST_INNER)}


def blob_id(encoded: bytes) -> bytes | None:
    """The blob id a JSON value with canonical bytes ``encoded`` is stored under, or None.

    ``None``: small enough to live inline in its node (``INLINE_MAX``).
    """
    return None if len(encoded) <= INLINE_MAX else object_id(Kind.BLOB, encoded)


def store_value(pending: Pending, value: Any, encoded: bytes) -> Entry:
    """Return the entry for a canonical ``value`` whose canonical bytes are ``encoded``.

    Small values are inlined; others become a blob in ``pending``. Bytes (the store's
    own records, never JSON) are always a blob: an inline bin would read as a reference.
    """
    oid = object_id(Kind.BLOB, encoded) if isinstance(value, bytes) else blob_id(encoded)
    if oid is None:
        return value
    pending[oid] = (Kind.BLOB, encoded)
    return oid


def entry_part(entry: Entry) -> bytes:
    """An entry's bytes in a node: a reference's, or the inline value's canonical bytes."""
    return REF_PREFIX + entry if isinstance(entry, bytes) else pack_canonical(entry)


def _hash_bytes(data: bytes) -> int:
    return int.from_bytes(data[:4], "little")


def ref_boundary(oid: bytes) -> int:
    """The boundary hash of a reference: its id is already uniformly random."""
    return _hash_bytes(oid)


def inline_boundary(encoded: bytes) -> int:
    """The boundary hash of an inline value, from its canonical bytes."""
    return _hash_bytes(blake3.blake3(encoded).digest(4))


def _array_header(length: int) -> bytes:
    if length < 16:
        return bytes((0x90 | length,))
    if length < 0x10000:
        return b"\xdc" + length.to_bytes(2, "big")
    return b"\xdd" + length.to_bytes(4, "big")


def _node(pending: Pending, node_type: int, parts: Sequence[bytes]) -> bytes:
    data = b"".join((_array_header(len(parts) + 1), _TYPE_BYTES[node_type], *parts))
    oid = object_id(Kind.TREE, data)
    pending[oid] = (Kind.TREE, data)
    return oid


def _cut(hashes: Sequence[int]) -> list[tuple[int, int]]:
    """Split ``range(len(hashes))`` into content-defined ``(start, stop)`` chunks."""
    chunks = []
    start = 0
    for i, h in enumerate(hashes):
        if (h & BOUNDARY_MASK) == 0 or i + 1 - start >= CHUNK_MAX:
            chunks.append((start, i + 1))
            start = i + 1
    if start < len(hashes):
        chunks.append((start, len(hashes)))
    return chunks


def _build_inner(pending: Pending, children: list[tuple[Any, bytes, int]], is_map: bool) -> bytes:
    """Gather ``(first_key, child_id, count)`` children into levels until one node remains."""
    node_type = MAP_INNER if is_map else LIST_INNER
    while True:
        if len(children) <= FLAT_MAX:
            chunks = [(0, len(children))]
        else:
            chunks = _cut([_hash_bytes(child) for _, child, _ in children])
        level = []
        for start, stop in chunks:
            parts: list[bytes] = []
            for first, child, count in children[start:stop]:
                if is_map:
                    parts.append(pack_canonical(first))
                parts += (REF_PREFIX + child, pack_canonical(count))
            node = _node(pending, node_type, parts)
            total = sum(count for _, _, count in children[start:stop])
            level.append((children[start][0], node, total))
        if len(level) == 1:
            return level[0][1]
        children = level


def build_map_parts(pending: Pending, items: Sequence[tuple[str, bytes]]) -> bytes:
    """Build a map tree from ``(key, part)`` pairs sorted by key; return its root id."""
    if len(items) <= FLAT_MAX:
        return _node(
            pending, MAP_LEAF, [x for key, part in items for x in (pack_canonical(key), part)]
        )
    hashes = [_hash_bytes(blake3.blake3(key.encode()).digest(4)) for key, _ in items]
    children = []
    for start, stop in _cut(hashes):
        chunk = items[start:stop]
        parts = [x for key, part in chunk for x in (pack_canonical(key), part)]
        children.append((chunk[0][0], _node(pending, MAP_LEAF, parts), len(chunk)))
    return _build_inner(pending, children, is_map=True)


def build_map(pending: Pending, items: Sequence[tuple[str, Entry]]) -> bytes:
    """Build a map tree from ``(key, entry)`` pairs sorted by key; return its root id."""
    return build_map_parts(pending, [(key, entry_part(entry)) for key, entry in items])


def build_list_parts(pending: Pending, parts: Sequence[bytes], boundaries: Sequence[int]) -> bytes:
    """Build a list tree from entries' parts and boundary hashes, in order; return its id."""
    if len(parts) <= FLAT_MAX:
        return _node(pending, LIST_LEAF, parts)
    children: list[tuple[Any, bytes, int]] = [
        (None, _node(pending, LIST_LEAF, parts[start:stop]), stop - start)
        for start, stop in _cut(boundaries)
    ]
    return _build_inner(pending, children, is_map=False)


def build_list(pending: Pending, entries: Sequence[Entry]) -> bytes:
    """Build a list tree from entries in order; return its root id."""
    parts = [entry_part(entry) for entry in entries]
    if len(parts) <= FLAT_MAX:
        return _node(pending, LIST_LEAF, parts)
    boundaries = [
        ref_boundary(entry) if isinstance(entry, bytes) else inline_boundary(part)
        for entry, part in zip(entries, parts, strict=True)
    ]
    return build_list_parts(pending, parts, boundaries)
