"""The storage protocol every backend implements, and the records it exchanges.

A backend stores objects as opaque representations (already compressed; it never
looks inside), refs as names pointing at raw ids, an append-only reflog and a few
string settings. The one compound operation is :meth:`Backend.write`: objects and ref
moves land together or not at all, and each ref move is a compare-and-swap.

Maintenance (``gc``, ``prune``) adds a few more: :meth:`Backend.exclusive` holds the
write lock across several calls, every object remembers when it was last stored (for
gc's grace period), a :class:`MarkSet` marks reachable objects where the backend keeps
them best and sweeps the rest, and :class:`PruneMark` records where pruning cut a
session's history.

``tests/test_backends.py`` holds the contract every implementation must pass.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import NamedTuple, Protocol

__all__ = [
    "Backend",
    "KindUsage",
    "MarkSet",
    "PruneMark",
    "RefUpdate",
    "ReflogEntry",
    "StoredObject",
    "Swept",
    "Usage",
    "WriteResult",
]


class StoredObject(NamedTuple):
    """An object as it rests in a backend: id, kind, codec, uncompressed length, payload.

    ``base`` names the object whose bytes the payload was compressed against (a
    previous version, or a trained dictionary); it must be kept while this one is. Read
    back, ``base`` is None if that object is no longer stored: only damage does that (gc
    keeps bases), and a backend that names bases by row no longer knows the id.
    """

    id: bytes
    kind: int
    codec: int
    raw_len: int
    data: bytes
    base: bytes | None = None


class RefUpdate(NamedTuple):
    """Move ``name`` from ``old`` to ``new`` (``None`` means absent), logging ``message``."""

    name: str
    old: bytes | None
    new: bytes | None
    message: str


class ReflogEntry(NamedTuple):
    """One recorded ref move; ``at`` is microseconds since the Unix epoch (UTC)."""

    seq: int
    name: str
    old: bytes | None
    new: bytes | None
    at: int
    message: str


class WriteResult(NamedTuple):
    """What :meth:`Backend.write` did: ``ok``, or which precondition failed."""

    ok: bool
    conflict: str | None = None
    found: bytes | None = None
    missing: frozenset[bytes] = frozenset()


class PruneMark(NamedTuple):
    """A kept commit whose first parent was pruned: where a session's history was cut.

    ``parent_checkpoint`` is the checkpoint id of the pruned parent (what ``load`` keeps
    reporting as ``parent_checkpoint_id``), ``next`` the nearest kept commit further
    back along first parents (``None``: the history ends here), ``skipped`` how many
    checkpoints were pruned in between.
    """

    id: bytes
    parent_checkpoint: str
    next: bytes | None
    skipped: int


class Swept(NamedTuple):
    """What a sweep removed (or, in a dry run, would remove): objects and stored bytes."""

    objects: int
    bytes: int


class KindUsage(NamedTuple):
    """Totals of one kind of object: how many, stored (compressed) and raw bytes."""

    objects: int
    stored_bytes: int
    raw_bytes: int


class Usage(NamedTuple):
    """Objects by kind, and the bytes the store occupies (its file and WAL; 0 in memory)."""

    kinds: dict[int, KindUsage]
    disk_bytes: int


class MarkSet(Protocol):
    """The set of objects gc has marked reachable, kept where the backend keeps it best.

    Obtained from :meth:`Backend.marks`; valid until that context ends.
    """

    def add(self, ids: Iterable[bytes]) -> list[bytes]:
        """Mark ``ids``; return those that were not marked before, each once."""
        ...

    def sweep(self, before: int, *, dry_run: bool = False) -> Swept:
        """Delete every object not marked and last stored before ``before`` (Unix seconds).

        With ``dry_run`` nothing is deleted; the result says what would be.
        """
        ...


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

    def get_chains(self, ids: Sequence[bytes]) -> dict[bytes, StoredObject]:
        """:meth:`get_objects`, plus the base of every object returned, transitively.

        One round trip for a whole delta chain: a reader resolving versions stored
        against earlier versions would otherwise ask once per link. A base that is not
        stored is simply not in the result.
        """
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

    def scan_objects(self) -> Iterator[tuple[StoredObject, int]]:
        """Yield every stored object, with how many stored objects name it as their base.

        Objects come in the order they were first stored (storing one again does not
        move it), so a base comes before the objects stored against it unless it was
        deleted and stored again. fsck reads the store this way to verify each object
        once, keeping a base's bytes until that many objects have used them.
        """
        ...

    def size_hint(self) -> int:
        """About how many objects are stored: cheap, never below the true count."""
        ...

    def recent_objects(self, limit: int, *, max_raw_len: int) -> list[StoredObject]:
        """The most recently stored objects of at most ``max_raw_len`` bytes, newest first.

        Blobs and commits only (the samples a compression dictionary is trained on).
        """
        ...

    def write(
        self,
        objects: Sequence[StoredObject],
        updates: Sequence[RefUpdate] = (),
        *,
        require: Sequence[bytes] = (),
    ) -> WriteResult:
        """Atomically store ``objects`` and apply ``updates``.

        Nothing is written unless every update's ``old`` matches the ref's current value,
        every id in ``require`` is stored, and every object's ``base`` is stored or comes
        earlier in ``objects``; the result then names what failed.
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

    def reflog(
        self, name: str | None = None, *, limit: int | None = None, since: int | None = None
    ) -> list[ReflogEntry]:
        """Return reflog entries (of one ref, or all; at or after ``since``), newest first."""
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

    # --- maintenance ----------------------------------------------------------------

    def exclusive(self) -> AbstractContextManager[None]:
        """Hold the write lock for a block: no other writer commits until it ends.

        Reads inside see the latest state; writes and deletes inside land together when
        the block ends, or not at all if it raises. Not inside :meth:`reading`.
        """
        ...

    def young_objects(self, since: int) -> list[bytes]:
        """Return the ids of objects stored (or stored again) at or after ``since``.

        ``since`` is in Unix seconds; ages have one-second resolution. Storing an object
        that already exists refreshes its age.
        """
        ...

    def drop_reflog(self, *, before: int | None = None, targets: Collection[bytes] = ()) -> int:
        """Delete reflog entries older than ``before`` (µs) or whose ``new`` is in ``targets``.

        Returns how many entries were deleted.
        """
        ...

    def prune_marks(self, ids: Sequence[bytes] | None = None) -> dict[bytes, PruneMark]:
        """Return the prune marks of ``ids`` (all of them when ``ids`` is ``None``)."""
        ...

    def set_prune_marks(self, marks: Sequence[PruneMark], *, drop: Sequence[bytes] = ()) -> None:
        """Delete the marks of ``drop``, then store ``marks`` (replacing any of the same id)."""
        ...

    def marks(self) -> AbstractContextManager[MarkSet]:
        """A fresh, empty :class:`MarkSet` for one gc run."""
        ...

    def reclaim(self, *, compact: bool = False) -> None:
        """Return the space of deleted objects to the file system (a no-op in memory).

        ``compact`` also rewrites the store so that the free space inside partly used
        pages is returned too; it keeps other writers waiting while it runs.
        """
        ...

    def usage(self) -> Usage:
        """Count objects by kind and measure the space the store occupies."""
        ...
