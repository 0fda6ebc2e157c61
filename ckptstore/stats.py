"""Store statistics: what the store holds, and how much deduplication and compression save.

*Checkpoints* are the commits reachable from a ref (every session's history and every
tag), each counted once, except the LangGraph saver's *events* that are not a
checkpoint (:mod:`ckptstore.event_commits`): the saver writes one commit per call, and
the newest event of a checkpoint id in a log is that checkpoint, its pending writes
included. So in a log the saver wrote, an event counts as a checkpoint when some ref's
history has no newer event of its checkpoint id and it is not writes that came before
their checkpoint (``early-writes``): what LangGraph's ``list`` returns, each state once.
The other events (in a thread without tags or copies, one per ``put_writes`` call) are
counted as ``events``.

*Logical bytes* are what the checkpoints would take as JSON files: for each checkpoint,
the size of what ``load`` returns as compact UTF-8 JSON (``separators=(",", ":")``),
summed; the events, states a checkpoint went through on its way, add nothing. *Unique
bytes* are the canonical bytes of the distinct objects every reachable commit uses,
events included (what gc keeps), *stored bytes* what those objects occupy compressed.
So::

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
from ckptstore.decoding import decode_value
from ckptstore.event_commits import EARLY, parse_event
from ckptstore.gc import Progress
from ckptstore.objects import Kind
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
    """Commits reachable from refs, each once, but the LangGraph events below."""
    objects: dict[str, dict[str, int]]
    """Every object in the store by kind: ``count``, ``stored_bytes``, ``raw_bytes``."""
    disk_bytes: int
    logical_bytes: int
    """The checkpoints as JSON (events excluded): see the module docstring."""
    unique_bytes: int
    stored_bytes: int
    largest: Sequence[LargeEntry] = ()
    events: int = 0
    """LangGraph events that are not a checkpoint (superseded states, early writes)."""

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
            "events": self.events,
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

    def include(self, root: bytes) -> None:
        """Read the objects under ``root`` (for unique and stored bytes) without sizing it."""
        if root not in self.roots:
            self.load(root)

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


def _commits(objects: ObjectStore, starts: Iterable[bytes]) -> tuple[list[CommitInfo], set[str]]:
    """Every commit reachable from ``starts`` (once each), and the events that are checkpoints.

    An event is a checkpoint if it is the newest event of its checkpoint id in some
    start's history and not ``early-writes``. A walk stops where it meets a commit an
    earlier walk read, unless that walk had met, above that commit, events of checkpoint
    ids this one has not: below, the newest event of each of those ids is still a
    checkpoint seen from here (a tag on an older event, a copied thread), so the walk
    goes on until it has met them all. In a store without events no walk goes further
    than the first commit read before.
    """
    seen: dict[str, tuple[int, int]] = {}  # commit id -> (walk, position in it)
    met: list[dict[str, int]] = []  # per walk: checkpoint id -> position of its newest event
    found: list[CommitInfo] = []
    current: set[str] = set()
    for walk, start in enumerate(starts):
        newest: dict[str, int] = {}
        met.append(newest)
        pending: set[str] | None = None  # ids still looked for below a commit read before
        for position, info in enumerate(iter_history(objects, start)):
            if pending is None:
                if info.id in seen:
                    earlier, at = seen[info.id]
                    pending = {c for c, p in met[earlier].items() if p < at} - newest.keys()
                    if not pending:
                        break  # the rest of this history was walked from another ref
                else:
                    seen[info.id] = (walk, position)
                    found.append(info)
            event = parse_event(info.session, info.notes)
            if event is None:
                continue
            kind, checkpoint = event
            if pending is not None:
                if checkpoint not in pending:
                    continue
                pending.discard(checkpoint)
            elif checkpoint in newest:
                continue
            else:
                newest[checkpoint] = position
            if kind != EARLY:
                current.add(info.id)
            if pending is not None and not pending:
                break
    return found, current


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
        progress: called as ``("stats", commits done, commits)`` (checkpoints, then events).
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
        commits, current = _commits(objects, refs.values())
        checkpoints: list[CommitInfo] = []
        events: list[CommitInfo] = []
        for info in commits:
            superseded = info.id not in current and parse_event(info.session, info.notes)
            (events if superseded else checkpoints).append(info)
        logical = 0
        for done, info in enumerate(checkpoints, 1):
            logical += sizer.checkpoint_size(info)
            if progress is not None and (done % 100 == 0 or done == len(commits)):
                progress("stats", done, len(commits))
        for done, info in enumerate(events, len(checkpoints) + 1):
            sizer.include(bytes.fromhex(info.tree))
            if progress is not None and (done % 100 == 0 or done == len(commits)):
                progress("stats", done, len(commits))
        commit_ids = [bytes.fromhex(info.id) for info in commits]
        stored, commit_raw = _stored_bytes(backend, list(sizer.read), commit_ids)
        sizer.unique += commit_raw
    return StoreStats(
        sessions=sum(1 for name in refs if name.startswith(SESSION_PREFIX)),
        tags=sum(1 for name in refs if name.startswith(TAG_PREFIX)),
        checkpoints=len(checkpoints),
        objects=kinds,
        disk_bytes=usage.disk_bytes,
        logical_bytes=logical,
        unique_bytes=sizer.unique,
        stored_bytes=stored,
        largest=sizer.entries(),
        events=len(events),
    )
