"""The storage protocol every backend implements, and the records it exchanges.

A backend stores objects as opaque representations (already compressed; it never
looks inside), refs as names pointing at raw ids, an append-only reflog and a few
string settings. The one compound operation is :meth:`Backend.write`: objects and ref
moves land together or not at all, and each ref move is a compare-and-swap.

``tests/test_backends.py`` holds the contract every implementation must pass.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["Backend", "RefUpdate", "ReflogEntry", "StoredObject", "WriteResult"]


@dataclass(frozen=True, slots=True)
class StoredObject:
    """An object as it rests in a backend: id, kind, codec, uncompressed length, payload."""

    id: bytes
    kind: int
    codec: int
    raw_len: int
    data: bytes


@dataclass(frozen=True, slots=True)
class RefUpdate:
    """Move ``name`` from ``old`` to ``new`` (``None`` means absent), logging ``message``."""

    name: str
    old: bytes | None
    new: bytes | None
    message: str


@dataclass(frozen=True, slots=True)
class ReflogEntry:
    """One recorded ref move; ``at`` is microseconds since the Unix epoch (UTC)."""

    seq: int
    name: str
    old: bytes | None
    new: bytes | None
    at: int
    message: str


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What :meth:`Backend.write` did: ``ok``, or which precondition failed."""

    ok: bool
    conflict: str | None = None
    found: bytes | None = None
    missing: frozenset[bytes] = field(default_factory=frozenset)


class Backend(Protocol):
    """Objects, refs, reflog and settings, with atomic multi-part writes."""

    @property
    def location(self) -> str:
        """Where the data lives, for messages (a path, or ``:memory:``)."""
        ...

    def reading(self) -> AbstractContextManager[None]:
        """A consistent read view: every read inside sees the same committed state.

        Views nest. Calling :meth:`write` inside one is a programming error.
        """
        ...

    def get_objects(self, ids: Sequence[bytes]) -> dict[bytes, StoredObject]:
        """Return the stored objects among ``ids``; absent ids are simply not in the result."""
        ...

    def has_objects(self, ids: Sequence[bytes]) -> set[bytes]:
        """Return the subset of ``ids`` that is stored."""
        ...

    def find_objects(self, low: bytes, high: bytes, limit: int) -> list[tuple[bytes, int]]:
        """Return up to ``limit`` ``(id, kind)`` pairs with ``low <= id <= high``, in id order."""
        ...

    def iter_ids(self) -> Iterator[bytes]:
        """Yield every stored object id."""
        ...

    def write(
        self,
        objects: Sequence[StoredObject],
        updates: Sequence[RefUpdate] = (),
        *,
        require: Sequence[bytes] = (),
    ) -> WriteResult:
        """Atomically store ``objects`` and apply ``updates``.

        Nothing is written unless every update's ``old`` matches the ref's current value
        and every id in ``require`` is stored; the result then names what failed.
        Storing an object that already exists is not an error (content addressing makes
        it the same object). Each applied update appends one reflog entry.
        """
        ...

    def delete_objects(self, ids: Sequence[bytes]) -> int:
        """Delete the given objects; return how many existed."""
        ...

    def get_ref(self, name: str) -> bytes | None:
        """Return the id a ref points at, or ``None``."""
        ...

    def list_refs(self, prefix: str = "") -> dict[str, bytes]:
        """Return every ref whose name starts with ``prefix``."""
        ...

    def reflog(self, name: str | None = None, *, limit: int | None = None) -> list[ReflogEntry]:
        """Return reflog entries (of one ref, or all), newest first."""
        ...

    def get_setting(self, key: str) -> str | None:
        """Return a store setting, or ``None``."""
        ...

    def set_setting(self, key: str, value: str) -> None:
        """Store a setting (durably, at once)."""
        ...

    def close(self) -> None:
        """Release the backend's resources; further calls are errors."""
        ...
