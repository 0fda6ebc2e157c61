"""MemoryBackend: the in-memory twin of the SQLite backend, for tests and scratch stores."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from ckptstore.backends.base import (
    KindUsage,
    PruneMark,
    ReflogEntry,
    RefUpdate,
    StoredObject,
    Swept,
    Usage,
    WriteResult,
)

__all__ = ["MemoryBackend"]


class MemoryBackend:
    """Dicts behind one lock; same semantics as :class:`SQLiteBackend`, no durability."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._objects: dict[bytes, StoredObject] = {}
        self._ages: dict[bytes, int] = {}  # id -> Unix seconds it was last stored
        self._refs: dict[str, bytes] = {}
        self._reflog: list[ReflogEntry] = []
        self._reflog_seq = 0
        self._settings: dict[str, str] = {}
        self._prune_marks: dict[bytes, PruneMark] = {}
        self._closed = False
        self._read_depth = 0
        self._exclusive_depth = 0

    @property
    def location(self) -> str:
        """Always ``:memory:``."""
        return ":memory:"

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("MemoryBackend is closed")

    @contextmanager
    def _reading(self) -> Iterator[None]:
        self._read_depth += 1
        try:
            yield
        finally:
            self._read_depth -= 1

    def reading(self) -> AbstractContextManager[None]:
        """Each read is consistent under the lock; this only tracks nesting."""
        return self._reading()

    def get_objects(self, ids: Sequence[bytes]) -> dict[bytes, StoredObject]:
        """See :meth:`Backend.get_objects`."""
        with self._lock:
            self._check_open()
            return {oid: self._found(self._objects[oid]) for oid in ids if oid in self._objects}

    def _found(self, stored: StoredObject) -> StoredObject:
        """``stored`` as read back: a base deleted meanwhile (damage) is no base, as in SQLite."""
        if stored.base is None or stored.base in self._objects:
            return stored
        return stored._replace(base=None)

    def get_chains(self, ids: Sequence[bytes]) -> dict[bytes, StoredObject]:
        """See :meth:`Backend.get_chains`."""
        with self._lock:
            self._check_open()
            out: dict[bytes, StoredObject] = {}
            todo = list(ids)
            while todo:
                oid = todo.pop()
                stored = self._objects.get(oid)
                if stored is not None and oid not in out:
                    out[oid] = self._found(stored)
                    if stored.base is not None:
                        todo.append(stored.base)
            return out

    def has_objects(self, ids: Sequence[bytes]) -> set[bytes]:
        """See :meth:`Backend.has_objects`."""
        with self._lock:
            self._check_open()
            return {oid for oid in ids if oid in self._objects}

    def find_objects(self, low: bytes, high: bytes, limit: int) -> list[tuple[bytes, int]]:
        """See :meth:`Backend.find_objects`."""
        with self._lock:
            self._check_open()
            hits = sorted(oid for oid in self._objects if low <= oid <= high)
            return [(oid, self._objects[oid].kind) for oid in hits[:limit]]

    def iter_ids(self) -> Iterator[bytes]:
        """See :meth:`Backend.iter_ids`."""
        with self._lock:
            self._check_open()
            ids = list(self._objects)
        yield from ids

    def scan_objects(self) -> Iterator[tuple[StoredObject, int]]:
        """See :meth:`Backend.scan_objects` (insertion order is the order of storing)."""
        with self._lock:
            self._check_open()
            objects = list(self._objects.values())
        dependents = Counter(o.base for o in objects if o.base is not None)
        for stored in objects:
            yield self._found(stored), dependents[stored.id]

    def size_hint(self) -> int:
        """See :meth:`Backend.size_hint`."""
        with self._lock:
            self._check_open()
            return len(self._objects)

    def recent_objects(self, limit: int, *, max_raw_len: int) -> list[StoredObject]:
        """See :meth:`Backend.recent_objects` (insertion order is storage order)."""
        with self._lock:
            self._check_open()
            found = [
                self._found(o)
                for o in reversed(self._objects.values())
                if o.raw_len <= max_raw_len and o.kind in (1, 3)
            ]
        return found[:limit]

    def write(
        self,
        objects: Sequence[StoredObject],
        updates: Sequence[RefUpdate] = (),
        *,
        require: Sequence[bytes] = (),
    ) -> WriteResult:
        """See :meth:`Backend.write`."""
        with self._lock:
            self._check_open()
            if self._read_depth:
                raise RuntimeError("write() inside reading(): finish reading first")
            for update in updates:
                current = self._refs.get(update.name)
                if current != update.old:
                    return WriteResult(ok=False, conflict=update.name, found=current)
            missing = frozenset(oid for oid in require if oid not in self._objects)
            if missing:
                return WriteResult(ok=False, missing=missing)
            coming: set[bytes] = set()
            for obj in objects:
                if (
                    obj.base is not None
                    and obj.base not in self._objects
                    and obj.base not in coming
                ):
                    return WriteResult(ok=False, missing=frozenset({obj.base}))
                coming.add(obj.id)
            now = time.time_ns() // 1000
            for obj in objects:
                self._objects.setdefault(obj.id, obj)
                # Like SQLite: storing an object again refreshes its age (gc's grace period).
                self._ages[obj.id] = now // 1_000_000
            for update in updates:
                if update.new is None:
                    self._refs.pop(update.name, None)
                else:
                    self._refs[update.name] = update.new
                self._reflog_seq += 1
                self._reflog.append(
                    ReflogEntry(
                        self._reflog_seq,
                        update.name,
                        update.old,
                        update.new,
                        now,
                        update.message,
                    )
                )
            return WriteResult(ok=True)

    def delete_objects(self, ids: Sequence[bytes]) -> int:
        """See :meth:`Backend.delete_objects`."""
        with self._lock:
            self._check_open()
            for oid in ids:
                self._ages.pop(oid, None)
            return sum(self._objects.pop(oid, None) is not None for oid in ids)

    def get_ref(self, name: str) -> bytes | None:
        """See :meth:`Backend.get_ref`."""
        with self._lock:
            self._check_open()
            return self._refs.get(name)

    def list_refs(self, prefix: str = "") -> dict[str, bytes]:
        """See :meth:`Backend.list_refs`."""
        with self._lock:
            self._check_open()
            return {n: v for n, v in sorted(self._refs.items()) if n.startswith(prefix)}

    def reflog(
        self, name: str | None = None, *, limit: int | None = None, since: int | None = None
    ) -> list[ReflogEntry]:
        """See :meth:`Backend.reflog`."""
        with self._lock:
            self._check_open()
            entries = [
                e
                for e in reversed(self._reflog)
                if (name is None or e.name == name) and (since is None or e.at >= since)
            ]
            return entries if limit is None else entries[:limit]

    def get_setting(self, key: str) -> str | None:
        """See :meth:`Backend.get_setting`."""
        with self._lock:
            self._check_open()
            return self._settings.get(key)

    def set_setting(self, key: str, value: str) -> None:
        """See :meth:`Backend.set_setting`."""
        with self._lock:
            self._check_open()
            self._settings[key] = value

    def close(self) -> None:
        """Mark the backend closed; the data is dropped with the object."""
        self._closed = True

    # --- maintenance ----------------------------------------------------------------

    def _state(self) -> tuple[Any, ...]:
        return (
            dict(self._objects),
            dict(self._ages),
            dict(self._refs),
            list(self._reflog),
            dict(self._settings),
            dict(self._prune_marks),
        )

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        with self._lock:
            self._check_open()
            if self._read_depth:
                raise RuntimeError("exclusive() inside reading(): finish reading first")
            saved = self._state() if self._exclusive_depth == 0 else None
            self._exclusive_depth += 1
            try:
                yield
            except BaseException:
                if saved is not None:
                    (
                        self._objects,
                        self._ages,
                        self._refs,
                        self._reflog,
                        self._settings,
                        self._prune_marks,
                    ) = saved
                raise
            finally:
                self._exclusive_depth -= 1

    def exclusive(self) -> AbstractContextManager[None]:
        """See :meth:`Backend.exclusive`: holds the lock; an exception restores the state."""
        return self._exclusive()

    def young_objects(self, since: int) -> list[bytes]:
        """See :meth:`Backend.young_objects`."""
        with self._lock:
            self._check_open()
            return [oid for oid, age in self._ages.items() if age >= since]

    def drop_reflog(self, *, before: int | None = None, targets: Collection[bytes] = ()) -> int:
        """See :meth:`Backend.drop_reflog`."""
        doomed = set(targets)
        with self._lock:
            self._check_open()
            kept = [
                e
                for e in self._reflog
                if not ((before is not None and e.at < before) or (e.new in doomed))
            ]
            dropped = len(self._reflog) - len(kept)
            self._reflog = kept
            return dropped

    def prune_marks(self, ids: Sequence[bytes] | None = None) -> dict[bytes, PruneMark]:
        """See :meth:`Backend.prune_marks`."""
        with self._lock:
            self._check_open()
            if ids is None:
                return dict(self._prune_marks)
            return {oid: self._prune_marks[oid] for oid in ids if oid in self._prune_marks}

    def set_prune_marks(self, marks: Sequence[PruneMark], *, drop: Sequence[bytes] = ()) -> None:
        """See :meth:`Backend.set_prune_marks`."""
        with self._lock:
            self._check_open()
            for oid in drop:
                self._prune_marks.pop(oid, None)
            for mark in marks:
                self._prune_marks[mark.id] = mark

    @contextmanager
    def _marks(self) -> Iterator[_SetMarks]:
        self._check_open()
        yield _SetMarks(self)

    def marks(self) -> AbstractContextManager[_SetMarks]:
        """See :meth:`Backend.marks`: a Python set."""
        return self._marks()

    def reclaim(self, *, compact: bool = False) -> None:
        """Nothing to give back: deleted objects are freed with the dict entries."""
        self._check_open()

    def usage(self) -> Usage:
        """See :meth:`Backend.usage`; ``disk_bytes`` is 0."""
        kinds: dict[int, KindUsage] = {}
        with self._lock:
            self._check_open()
            for obj in self._objects.values():
                old = kinds.get(obj.kind, KindUsage(0, 0, 0))
                kinds[obj.kind] = KindUsage(
                    old.objects + 1, old.stored_bytes + len(obj.data), old.raw_bytes + obj.raw_len
                )
        return Usage(dict(sorted(kinds.items())), 0)


class _SetMarks:
    """A mark set for the memory backend: a Python set."""

    def __init__(self, backend: MemoryBackend) -> None:
        self._backend = backend
        self._marked: set[bytes] = set()

    def add(self, ids: Iterable[bytes]) -> list[bytes]:
        """See :meth:`MarkSet.add`."""
        new = [oid for oid in dict.fromkeys(ids) if oid not in self._marked]
        self._marked.update(new)
        return new

    def sweep(self, before: int, *, dry_run: bool = False) -> Swept:
        """See :meth:`MarkSet.sweep`."""
        backend = self._backend
        with backend._lock:
            backend._check_open()
            doomed = [
                oid
                for oid, age in backend._ages.items()
                if age < before and oid not in self._marked
            ]
            size = sum(len(backend._objects[oid].data) for oid in doomed)
            if not dry_run:
                backend.delete_objects(doomed)
        return Swept(len(doomed), size)
