"""MemoryBackend: the in-memory twin of the SQLite backend, for tests and scratch stores."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager

from ckptstore.backends.base import ReflogEntry, RefUpdate, StoredObject, WriteResult

__all__ = ["MemoryBackend"]


class MemoryBackend:
    """Dicts behind one lock; same semantics as :class:`SQLiteBackend`, no durability."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._objects: dict[bytes, StoredObject] = {}
        self._refs: dict[str, bytes] = {}
        self._reflog: list[ReflogEntry] = []
        self._settings: dict[str, str] = {}
        self._closed = False
        self._read_depth = 0

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
            return {oid: self._objects[oid] for oid in ids if oid in self._objects}

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
            for obj in objects:
                self._objects.setdefault(obj.id, obj)
            now = time.time_ns() // 1000
            for update in updates:
                if update.new is None:
                    self._refs.pop(update.name, None)
                else:
                    self._refs[update.name] = update.new
                self._reflog.append(
                    ReflogEntry(
                        len(self._reflog) + 1,
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

    def reflog(self, name: str | None = None, *, limit: int | None = None) -> list[ReflogEntry]:
        """See :meth:`Backend.reflog`."""
        with self._lock:
            self._check_open()
            entries = [e for e in reversed(self._reflog) if name is None or e.name == name]
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
