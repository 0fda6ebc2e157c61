"""Store statistics: what the store holds, and how much deduplication and compression save.

*Logical bytes* are what the checkpoints would take as JSON files: for each checkpoint
reachable from a ref (every session's history and every tag, each checkpoint once), the
size of what ``load`` returns as compact UTF-8 JSON (``separators=(",", ":")``),
summed. *Unique
bytes* are the canonical bytes of the distinct objects those checkpoints use, *stored
bytes* what those objects occupy compressed. So::

    logical / stored = (logical / unique) * (unique / stored) = dedup * compression

Each object is read once (sizes of shared subtrees are remembered by id), so the cost
grows with the number of distinct objects, not with checkpoints * checkpoint size.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from ckptstore.backends.base import Backend
from ckptstore.commits import CommitInfo, iter_history
from ckptstore.gc import Progress
from ckptstore.objects import Kind, decode_value
from ckptstore.objectstore import ObjectStore
from ckptstore.refs import SESSION_PREFIX, TAG_PREFIX
from ckptstore.trees import LIST_LEAF, MAP_INNER, MAP_LEAF, Node, parse_stored

__all__ = ["LargeEntry", "StoreStats", "collect_stats"]

_BATCH = 2000
_FLATTENED = "meta"  # snapshot.py spreads this root entry's fields over the top level


def json_size(value: Any) -> int:
    """Bytes of ``value`` as compact UTF-8 JSON."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return len(text.encode())


class LargeEntry(NamedTuple):
    """One of the largest values in the store, where it was first found."""

    path: str
    checkpoint_id: str
    object_id: str
    json_bytes: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "path": self.path,
            "checkpoint_id": self.checkpoint_id,
            "object_id": self.object_id,
            "json_bytes": self.json_bytes,
        }


class StoreStats(NamedTuple):
    """What ``ckpt stats`` reports."""

    sessions: int
    tags: int
    checkpoints: int
    objects: dict[str, dict[str, int]]
    """Every object in the store by kind: ``count``, ``stored_bytes``, ``raw_bytes``."""
    disk_bytes: int
    logical_bytes: int
    unique_bytes: int
    stored_bytes: int
    largest: Sequence[LargeEntry] = ()

    @property
    def dedup_ratio(self) -> float:
        """Logical bytes per unique byte (0 when the store is empty)."""
        return self.logical_bytes / self.unique_bytes if self.unique_bytes else 0.0

    @property
    def compression_ratio(self) -> float:
        """Unique bytes per stored byte (0 when the store is empty)."""
        return self.unique_bytes / self.stored_bytes if self.stored_bytes else 0.0

    @property
    def total_ratio(self) -> float:
        """Logical bytes per stored byte: dedup * compression."""
        return self.logical_bytes / self.stored_bytes if self.stored_bytes else 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``--json`` output)."""
        return {
            "sessions": self.sessions,
            "tags": self.tags,
            "checkpoints": self.checkpoints,
            "objects": self.objects,
            "disk_bytes": self.disk_bytes,
            "logical_bytes": self.logical_bytes,
            "unique_bytes": self.unique_bytes,
            "stored_bytes": self.stored_bytes,
            "dedup_ratio": round(self.dedup_ratio, 3),
            "compression_ratio": round(self.compression_ratio, 3),
            "total_ratio": round(self.total_ratio, 3),
            "largest": [e.to_dict() for e in self.largest],
        }


class _Sizer:
    """JSON sizes of trees, remembered by id; the largest blobs, where first met."""

    def __init__(self, objects: ObjectStore, top: int) -> None:
        self.objects = objects
        self.top = top
        self.collections: dict[bytes, tuple[int, int]] = {}  # tree id -> (items bytes, count)
        self.roots: dict[bytes, tuple[int, int]] = {}  # root id -> (top-level pairs bytes, count)
        self.blobs: dict[bytes, int] = {}  # blob id -> JSON bytes
        self.nodes: dict[bytes, Node] = {}  # loaded, not yet sized
        self.fresh: set[bytes] = set()  # blobs loaded, not yet met on a path
        self.read: set[bytes] = set()  # every tree node and blob loaded
        self.unique = 0
        self.largest: list[tuple[int, str, str, str]] = []
        self.checkpoint = ""

    def _known(self, oid: bytes) -> bool:
        return oid in self.collections or oid in self.blobs or oid in self.nodes

    def load(self, root: bytes) -> None:
        """Read every object under ``root`` not seen before, one batch per level."""
        level = [] if self._known(root) else [root]
        while level:
            found: list[bytes] = []
            for start in range(0, len(level), _BATCH):
                for oid, (kind, data) in self.objects.get_many(
                    level[start : start + _BATCH]
                ).items():
                    self.read.add(oid)
                    self.unique += len(data)
                    if kind == Kind.TREE:
                        node = self.nodes[oid] = parse_stored(oid, data)
                        found.extend(c for c in node.children() if not self._known(c))
                    else:
                        self.blobs[oid] = json_size(decode_value(oid, data))
                        self.fresh.add(oid)
            level = list(dict.fromkeys(c for c in found if not self._known(c)))

    def checkpoint_size(self, info: CommitInfo) -> int:
        """The size of ``load(info)`` as compact JSON."""
        self.checkpoint = info.checkpoint_id
        size, count = self._root(bytes.fromhex(info.tree))
        owned = {
            "checkpoint_id": info.checkpoint_id,
            "created_at": info.created_at,
            "session_id": info.session,
            "content_hash": info.tree,
            "parent_checkpoint_id": info.parent_checkpoint_id,
            "estimated_tokens": info.estimated_tokens,
        }
        for key, value in owned.items():
            size += json_size(key) + 1 + json_size(value) + (1 if count else 0)
            count += 1
        return 2 + size

    def _root(self, root: bytes) -> tuple[int, int]:
        """The top-level fields of a checkpoint: their bytes (with commas) and count."""
        known = self.roots.get(root)
        if known is not None:
            return known
        self.load(root)
        if root not in self.nodes:  # sized before as a subtree: read it again
            self.nodes[root] = parse_stored(root, self.objects.get(root)[1])
        node = self.nodes.pop(root)
        if node.type != MAP_LEAF:  # not a checkpoint root: size it as a plain map
            self.nodes[root] = node
            items, count = self._collection(root, "", 0)
            self.roots[root] = (items, count)
            return self.roots[root]
        size = count = 0
        for key, entry in zip(node.items[0::2], node.items[1::2], strict=True):
            if key == _FLATTENED and isinstance(entry, bytes) and entry not in self.blobs:
                items, n = self._collection(entry, "", 0)
                size, count = size + items - max(n - 1, 0), count + n
            else:
                size, count = size + json_size(key) + 1 + self._entry(entry, key), count + 1
        self.roots[root] = (size + max(count - 1, 0), count)
        return self.roots[root]

    def _entry(self, entry: Any, path: str) -> int:
        if not isinstance(entry, bytes):
            return json_size(entry)
        if entry in self.blobs:
            size = self.blobs[entry]
            if entry in self.fresh:
                self.fresh.discard(entry)
                item = (size, path, self.checkpoint, entry.hex())
                if len(self.largest) < self.top:
                    heapq.heappush(self.largest, item)
                elif self.top:
                    heapq.heappushpop(self.largest, item)
            return size
        items, _ = self._collection(entry, path, 0)
        return 2 + items

    def _collection(self, oid: bytes, path: str, offset: int) -> tuple[int, int]:
        """JSON bytes of a node's items (with the commas between them), and their count.

        ``offset`` is the index of the node's first item within its list.
        """
        known = self.collections.get(oid)
        if known is not None:
            return known
        node = self.nodes.pop(oid)
        items = node.items
        size = 0
        if node.type == MAP_LEAF:
            for key, entry in zip(items[0::2], items[1::2], strict=True):
                where = f"{path}.{key}" if path else key
                size += json_size(key) + 1 + self._entry(entry, where)
            count, parts = len(items) // 2, len(items) // 2
        elif node.type == LIST_LEAF:
            for i, entry in enumerate(items):
                size += self._entry(entry, f"{path}[{offset + i}]")
            count, parts = len(items), len(items)
        else:
            width = 3 if node.type == MAP_INNER else 2
            count, parts = 0, len(items) // width
            for i in range(0, len(items), width):
                child_size, child_count = self._collection(items[i + width - 2], path, offset)
                size, count, offset = size + child_size, count + child_count, offset + child_count
        self.collections[oid] = (size + max(parts - 1, 0), count)
        return self.collections[oid]

    def entries(self) -> list[LargeEntry]:
        return [
            LargeEntry(path, ckpt, oid, size)
            for size, path, ckpt, oid in sorted(self.largest, reverse=True)
        ]


def _commits(objects: ObjectStore, starts: Iterable[bytes]) -> list[CommitInfo]:
    """Every checkpoint reachable from ``starts``, once each."""
    seen: dict[str, CommitInfo] = {}
    for start in starts:
        for info in iter_history(objects, start):
            if info.id in seen:
                break  # the rest of this history was walked from another ref
            seen[info.id] = info
    return list(seen.values())


def _stored_bytes(backend: Backend, content: list[bytes], commits: list[bytes]) -> tuple[int, int]:
    """Bytes at rest of the live objects and every base they need; raw bytes of commits.

    Each object counts once, however many others are stored against it.
    """
    seen: set[bytes] = set()
    stored = commit_raw = 0
    todo = [*content, *commits]
    commit_set = set(commits)
    while todo:
        batch = [oid for oid in dict.fromkeys(todo) if oid not in seen]
        todo = []
        for start in range(0, len(batch), _BATCH):
            for oid, obj in backend.get_objects(batch[start : start + _BATCH]).items():
                seen.add(oid)
                stored += len(obj.data)
                if oid in commit_set:
                    commit_raw += obj.raw_len
                if obj.base is not None and obj.base not in seen:
                    todo.append(obj.base)
    return stored, commit_raw


def collect_stats(
    objects: ObjectStore, *, top: int = 10, progress: Progress | None = None
) -> StoreStats:
    """Count, measure and compare (see the module docstring).

    Args:
        objects: the store's objects (and, through them, its backend).
        top: how many of the largest values to list.
        progress: called as ``("stats", checkpoints done, checkpoints)``.
    """
    backend = objects.backend
    usage = backend.usage()
    kinds = {
        Kind(k).label: {
            "count": u.objects,
            "stored_bytes": u.stored_bytes,
            "raw_bytes": u.raw_bytes,
        }
        for k, u in usage.kinds.items()
    }
    sizer = _Sizer(objects, top)
    with backend.reading():
        refs = backend.list_refs()
        commits = _commits(objects, refs.values())
        logical = 0
        for done, info in enumerate(commits, 1):
            logical += sizer.checkpoint_size(info)
            if progress is not None and (done % 100 == 0 or done == len(commits)):
                progress("stats", done, len(commits))
        commit_ids = [bytes.fromhex(info.id) for info in commits]
        stored, commit_raw = _stored_bytes(backend, list(sizer.read), commit_ids)
        sizer.unique += commit_raw
    return StoreStats(
        sessions=sum(1 for name in refs if name.startswith(SESSION_PREFIX)),
        tags=sum(1 for name in refs if name.startswith(TAG_PREFIX)),
        checkpoints=len(commits),
        objects=kinds,
        disk_bytes=usage.disk_bytes,
        logical_bytes=logical,
        unique_bytes=sizer.unique,
        stored_bytes=stored,
        largest=sizer.entries(),
    )
