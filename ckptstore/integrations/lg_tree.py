"""Reading LangGraph checkpoints out of event trees (the layout is in ``langgraph.py``).

Objects never change once written, so what is read (tree nodes, write records, decoded
metadata) is remembered by id in small bounded caches: the saver re-reads only what it
has not seen.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, NamedTuple

from ckptstore.commits import read_commit
from ckptstore.integrations.lg_values import Cache, ValueCodec
from ckptstore.objectstore import ObjectStore
from ckptstore.tree_build import build_list, build_map
from ckptstore.trees import Entry, Pending, fetch_closure, read_items, resolve

__all__ = ["Loaded", "TreeReader"]

CACHE_SIZE: Final = 4096


class Loaded(NamedTuple):
    """One LangGraph checkpoint as read from its tree."""

    checkpoint: dict[str, Any]
    metadata: dict[str, Any]
    parent: str | None
    writes: list[tuple[str, str, Any]]


class TreeReader:
    """Reads event trees (and commit generations) through caches keyed by object id."""

    def __init__(self, objects: ObjectStore, codec: ValueCodec) -> None:
        self.objects = objects
        self.codec = codec
        self._items: Cache[bytes, list[Any]] = Cache(CACHE_SIZE)
        self._values: Cache[bytes, Any] = Cache(CACHE_SIZE)
        self._generations: Cache[bytes, int] = Cache(CACHE_SIZE)

    def _flat(self, oid: bytes) -> list[Any]:
        found = self._items.get(oid)
        return found if found is not None else self._items.put(oid, read_items(self.objects, oid))

    def build_map(self, pending: Pending, items: Mapping[str, Entry]) -> bytes:
        """Build a map tree of ``items`` (see :func:`ckptstore.trees.build_map`), remembered."""
        flat = [x for key in sorted(items) for x in (key, items[key])]
        oid = build_map(pending, [(key, items[key]) for key in sorted(items)])
        self._items.put(oid, flat)
        return oid

    def build_list(self, pending: Pending, entries: list[Entry]) -> bytes:
        """Build a list tree of ``entries`` (see :func:`ckptstore.trees.build_list`), remembered."""
        oid = build_list(pending, entries)
        self._items.put(oid, list(entries))
        return oid

    def map(self, oid: bytes) -> dict[str, Entry]:
        """The entries of the map tree ``oid``, by key."""
        flat = self._flat(oid)
        return {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}

    def list(self, oid: bytes) -> list[Entry]:
        """The entries of the list tree ``oid``, in order."""
        return list(self._flat(oid))

    def root(self, tree: bytes) -> dict[str, Entry]:
        """The root entries of an event tree: ``meta``, and ``variables`` unless early writes."""
        return self.map(tree)

    def value(self, entry: Entry) -> Any:
        """The value of an entry, decoded (a reference is read once, then remembered)."""
        if not isinstance(entry, bytes):
            return self.codec.decode(entry)
        found = self._values.get(entry)
        if found is not None:
            return found
        loaded = fetch_closure(self.objects, [entry])
        return self._values.put(entry, self.codec.decode(resolve(loaded, entry)))

    def meta(self, tree: bytes) -> dict[str, Entry]:
        """The ``meta`` entries of an event tree."""
        return self.map(self.root(tree)["meta"])

    def metadata(self, tree: bytes) -> dict[str, Any]:
        """The LangGraph metadata of the checkpoint in an event tree."""
        value: dict[str, Any] = self.value(self.meta(tree)["metadata"])
        return value

    def channels(self, tree: bytes) -> tuple[dict[str, Entry], dict[str, Any]]:
        """A checkpoint's channel entries and channel versions, for reuse by its child."""
        root = self.root(tree)
        versions: dict[str, Any] = self.value(self.map(root["meta"])["channel_versions"])
        return self.map(root["variables"]), versions

    def write_order(self, record: bytes) -> tuple[str, str, int]:
        """A write record's ``(task_path, task_id, idx)``: LangGraph's ``writes_sort_key``."""
        fields = self.map(record)
        return (
            self.value(fields["task_path"]),
            self.value(fields["task_id"]),
            self.value(fields["idx"]),
        )

    def write_key(self, record: bytes) -> tuple[str, int]:
        """A write record's ``(task_id, idx)``: what makes a write the same write."""
        _, task_id, idx = self.write_order(record)
        return task_id, idx

    def checkpoint(self, tree: bytes) -> Loaded:
        """Read the whole checkpoint of an event tree, one batch per tree level."""
        loaded = fetch_closure(self.objects, [tree])
        root = resolve(loaded, tree)
        meta = root["meta"]
        decode = self.codec.decode
        checkpoint: dict[str, Any] = decode(meta["checkpoint"])
        checkpoint["channel_values"] = {
            channel: decode(value) for channel, value in root.get("variables", {}).items()
        }
        checkpoint["channel_versions"] = decode(meta["channel_versions"])
        checkpoint["versions_seen"] = decode(meta["versions_seen"])
        writes = [
            (record["task_id"], record["channel"], decode(record["value"]))
            for record in meta.get("pending_writes", [])
        ]
        return Loaded(checkpoint, decode(meta["metadata"]), decode(meta["parent"]), writes)

    def generation(self, commit: bytes) -> int:
        """A commit's generation (its position in its session's log)."""
        found = self._generations.get(commit)
        if found is None:
            found = self._generations.put(commit, read_commit(self.objects, commit).generation)
        return found

    def remember_generation(self, commit: bytes, generation: int) -> None:
        """Note the generation of a commit just written."""
        self._generations.put(commit, generation)
