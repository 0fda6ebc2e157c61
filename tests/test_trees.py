"""Chunked tree nodes: structure, order, history independence and write amplification."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ckptstore.backends.memory import MemoryBackend
from ckptstore.decoding import decode
from ckptstore.errors import CkptError, MalformedData
from ckptstore.objects import Kind, canonical, encode
from ckptstore.objectstore import ObjectStore
from ckptstore.tree_build import build_list, build_map, store_value
from ckptstore.trees import (
    CHUNK_MAX,
    FLAT_MAX,
    INLINE_MAX,
    LIST_INNER,
    LIST_LEAF,
    MAP_INNER,
    MAP_LEAF,
    Pending,
    fetch_closure,
    parse_node,
    read_items,
    resolve,
)
from strategies import json_values


def _entry(pending: Pending, value: Any) -> Any:
    return store_value(pending, value, encode(value))


def _saved(pending: Pending) -> ObjectStore:
    store = ObjectStore(MemoryBackend())
    store.backend.write(store.prepare(pending))
    return store


def _list(values: list[Any]) -> tuple[bytes, dict[bytes, tuple[Kind, bytes]]]:
    pending: dict[bytes, tuple[Kind, bytes]] = {}
    root = build_list(pending, [_entry(pending, v) for v in values])
    return root, pending


def _map(values: dict[str, Any]) -> tuple[bytes, dict[bytes, tuple[Kind, bytes]]]:
    pending: dict[bytes, tuple[Kind, bytes]] = {}
    root = build_map(pending, [(k, _entry(pending, values[k])) for k in sorted(values)])
    return root, pending


def _value(pending: Pending, root: bytes) -> Any:
    store = _saved(pending)
    return resolve(fetch_closure(store, [root]), root)


def test_small_values_are_inlined_and_large_ones_become_blobs() -> None:
    pending: dict[bytes, tuple[Kind, bytes]] = {}
    small = "x" * (INLINE_MAX - 2)  # encodes to INLINE_MAX bytes with its 2-byte header
    assert len(encode(small)) == INLINE_MAX
    assert _entry(pending, small) == small
    assert not pending
    ref = _entry(pending, small + "y")
    assert isinstance(ref, bytes)
    assert pending[ref] == (Kind.BLOB, encode(small + "y"))


def test_a_small_map_is_one_leaf_in_the_documented_layout() -> None:
    root, pending = _map({"b": 2, "a": "long value " * (INLINE_MAX // 10)})
    kind, data = pending[root]
    assert kind == Kind.TREE
    raw = decode(data, what="tree node")
    assert raw[0] == MAP_LEAF
    assert raw[1::2] == ["a", "b"]
    assert isinstance(raw[2], bytes)
    assert raw[4] == 2


def test_a_small_list_is_one_leaf_keeping_order_and_duplicates() -> None:
    values = [3, 1, 3, {"id": None}, 1]
    root, pending = _list(values)
    assert decode(pending[root][1])[0] == LIST_LEAF
    assert _value(pending, root) == values


def test_large_collections_fan_out_into_bounded_nodes() -> None:
    values = [{"id": str(i), "status": "pending", "subject": f"task {i}"} for i in range(10_000)]
    root, pending = _list(values)
    top = parse_node(pending[root][1])
    assert top.type == LIST_INNER
    leaves = [parse_node(d) for k, d in pending.values() if k == Kind.TREE]
    assert all(len(n.items) <= CHUNK_MAX * 3 for n in leaves)
    leaf_sizes = [len(n.items) for n in leaves if n.type == LIST_LEAF]
    assert sum(leaf_sizes) == 10_000
    assert 15 <= sum(leaf_sizes) / len(leaf_sizes) <= 64  # ~32 on average
    assert _value(pending, root) == values

    mapping = {f"var_{i:05d}": i for i in range(3_000)}
    mroot, mpending = _map(mapping)
    assert parse_node(mpending[mroot][1]).type == MAP_INNER
    assert _value(mpending, mroot) == mapping


def test_equal_content_gives_equal_ids_whatever_the_history() -> None:
    values = [f"entry number {i} with some padding" for i in range(2_000)]
    root, _ = _list(values)
    edited = [*values[:700], "inserted", *values[700:]]
    edited_root, _ = _list(edited)
    assert edited_root != root
    reverted_root, _ = _list([v for v in edited if v != "inserted"])
    assert reverted_root == root


def _new_bytes(before: Pending, after: Pending) -> tuple[int, int]:
    fresh = [data for oid, (_, data) in after.items() if oid not in before]
    return len(fresh), sum(len(d) for d in fresh)


def test_changing_one_entry_of_ten_thousand_rewrites_only_its_path() -> None:
    values = [{"id": str(i), "status": "pending"} for i in range(10_000)]
    _, before = _list(values)
    values[4321] = {"id": "4321", "status": "completed"}
    _, after = _list(values)
    count, size = _new_bytes(before, after)
    # the new blob, its leaf and one node per level above it (a boundary shift may
    # touch one neighbouring node per level)
    assert count <= 7
    assert size < 16 * 1024


def test_inserting_in_the_middle_of_a_large_map_rewrites_a_few_nodes() -> None:
    mapping = {f"k{i:06d}": "value " * 8 for i in range(5_000)}
    _, before = _map(mapping)
    mapping["k002500x"] = "new"
    _, after = _map(mapping)
    count, size = _new_bytes(before, after)
    assert count <= 6
    assert size < 16 * 1024


def test_runs_without_natural_boundaries_are_cut_at_chunk_max() -> None:
    # The same inline entry over and over: its boundary hash is constant.
    pending: dict[bytes, tuple[Kind, bytes]] = {}
    entries = ["same"] * 1_000
    root = build_list(pending, entries)
    nodes = [parse_node(d) for _, d in pending.values()]
    assert max(len(n.items) for n in nodes if n.type == LIST_LEAF) <= CHUNK_MAX
    assert _value(pending, root) == entries


@given(st.lists(st.integers(0, 50), max_size=FLAT_MAX * 4))
def test_read_items_returns_entries_in_order_across_chunks(values: list[int]) -> None:
    root, pending = _list(values)
    assert read_items(_saved(pending), root) == values


def test_read_items_of_a_map_does_not_fetch_the_blobs() -> None:
    mapping = {f"key{i}": "a long enough value " * (INLINE_MAX // 19) for i in range(500)}
    root, pending = _map(mapping)
    store = _saved(pending)
    items = read_items(store, root)
    assert items[0::2] == sorted(mapping)
    blobs = sum(1 for k, _ in pending.values() if k == Kind.BLOB)
    assert blobs == 1  # 500 equal values dedup to one blob
    assert store.stats.objects_read == sum(1 for k, _ in pending.values() if k == Kind.TREE)


@pytest.mark.parametrize(
    "payload",
    [
        {},  # not an array
        [],  # no tag
        [9],  # unknown tag
        [MAP_LEAF, "a"],  # odd map leaf
        [MAP_LEAF, "b", 1, "a", 2],  # keys out of order
        [MAP_LEAF, "a", 1, "a", 2],  # duplicate keys
        [MAP_LEAF, 1, 2],  # non-string key
        [LIST_LEAF, b"short"],  # a reference must be 32 bytes
        [LIST_INNER, b"\x01" * 32],  # partial child
        [LIST_INNER, b"\x01" * 32, 0],  # empty child
        [MAP_INNER, 5, b"\x01" * 32, 1],  # inner key not a string
    ],
)
def test_malformed_nodes_are_rejected(payload: Any) -> None:
    with pytest.raises(MalformedData):
        parse_node(encode(payload, allow_bytes=True), trusted=False)


@given(st.binary(max_size=200))
def test_random_bytes_never_parse_into_a_bad_node(data: bytes) -> None:
    try:
        node = parse_node(data, trusted=False)
    except CkptError:
        return
    assert node.type in (MAP_LEAF, LIST_LEAF, MAP_INNER, LIST_INNER)


REFS = st.binary(min_size=32, max_size=32)


@given(st.lists(json_values(max_leaves=4) | REFS, max_size=3 * FLAT_MAX))
def test_list_nodes_joined_from_parts_are_their_canonical_encoding(entries: list[Any]) -> None:
    pending: dict[bytes, tuple[Kind, bytes]] = {}
    build_list(pending, [canonical(entry, allow_bytes=True) for entry in entries])
    for _, data in pending.values():
        assert encode(decode(data), allow_bytes=True) == data


@given(st.dictionaries(st.text(max_size=8), json_values(max_leaves=4) | REFS, max_size=150))
def test_map_nodes_joined_from_parts_are_their_canonical_encoding(values: dict[str, Any]) -> None:
    pending: dict[bytes, tuple[Kind, bytes]] = {}
    build_map(pending, sorted(canonical(values, allow_bytes=True).items()))
    for _, data in pending.values():
        assert encode(decode(data), allow_bytes=True) == data
