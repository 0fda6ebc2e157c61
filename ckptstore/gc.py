"""Garbage collection: mark what is reachable, sweep the rest, give the space back.

Roots are every ref, every reflog entry younger than the reflog expiry, the store's
current zstd dictionary, and every object younger than the grace period. The mark
follows commits to their tree and parents (a commit whose first parent was pruned
follows its prune mark instead, see :mod:`ckptstore.prune`) and tree nodes to their
children.

Safety under concurrent commits (the argument, in full, is in ``docs/maintenance.md``):

1. The first mark runs without the write lock, in one read snapshot.
2. Then, holding the write lock (:meth:`Backend.exclusive`), gc marks again from the
   roots as they are now. Only what the first mark had not reached is read again, so
   this is quick; no commit can land in between, because commits need the same lock.
   Everything reachable now is marked: either it was reachable (or young) at the first
   mark, or a commit since made it reachable, and that commit's ref (or its reflog
   entry) and its new objects (young) are roots of the second mark.
3. The sweep deletes, in the same transaction, every unmarked object older than the
   grace period. Objects are only ever deleted here, and the marked set is closed
   under references, so a kept object never loses what it references: a commit that
   re-uses an object which exists therefore finds its whole subtree too (and one that
   lost the race finds the object gone, fails its ``require`` check, forgets any cached
   copy and rebuilds).

If the mark meets a missing or damaged object, gc raises :class:`GCAborted` and
deletes nothing (fail closed).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from contextlib import AbstractContextManager
from typing import Any, Final, NamedTuple, TypeAlias

from ckptstore.backends.base import MarkSet, PruneMark
from ckptstore.commit_object import Commit
from ckptstore.decoding import decode_trusted
from ckptstore.dictionary import current_dictionary
from ckptstore.errors import (
    CorruptObject,
    GCAborted,
    InvalidOption,
    MalformedData,
    ObjectNotFound,
)
from ckptstore.graph import commit_links, references
from ckptstore.objects import Kind
from ckptstore.objectstore import Loaded, ObjectStore

__all__ = [
    "DEFAULT_GRACE",
    "DEFAULT_REFLOG_EXPIRY",
    "GCStats",
    "GCView",
    "Progress",
    "collect_garbage",
]

DEFAULT_GRACE: Final = 3600.0
"""Seconds: objects younger than this are never deleted (``--grace``)."""
DEFAULT_REFLOG_EXPIRY: Final = 90 * 86400.0
"""Seconds: reflog entries younger than this keep their commits (``--reflog-expiry``)."""

_BATCH: Final = 2000

Progress: TypeAlias = Callable[[str, int, int | None], None]
"""A progress callback: ``(phase, done, total or None)``.

gc reports ``mark`` (objects marked; total: objects in the store), then ``sweep`` and
``reclaim``. ``mark`` is reported inside a read view (the callback must not write to
the same store handle); ``sweep`` is reported before the write lock is taken.
"""


class GCStats(NamedTuple):
    """What a gc did (or, with ``dry_run``, would do)."""

    objects_removed: int
    bytes_removed: int
    """Stored (compressed) bytes of the removed objects."""
    objects_reachable: int
    """Objects reachable from refs and unexpired reflog entries."""
    objects_young: int
    """Unreachable objects kept because they (or what references them) are too young."""
    reflog_expired: int
    disk_before: int
    disk_after: int
    """Bytes the store occupies (file and WAL) before and after; 0 for memory stores."""
    grace: float
    reflog_expiry: float
    dry_run: bool

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``--json`` output)."""
        return self._asdict()


class GCView(NamedTuple):
    """The store as a prune would leave it, for a dry run: its marks and reflog."""

    prune_marks: Mapping[bytes, PruneMark]
    dropped_reflog: Collection[bytes]


def _check_seconds(option: str, value: object) -> float:
    if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
        raise InvalidOption(option, value, "must be a number of seconds, 0 or more")
    return float(value)


class _Marker:
    """Marks objects reachable from roots, reading each newly marked object once."""

    def __init__(
        self,
        objects: ObjectStore,
        marks: MarkSet,
        prune_marks: Mapping[bytes, PruneMark],
        progress: Progress | None,
        total: int | None,
    ) -> None:
        self.objects = objects
        self.marks = marks
        self.prune_marks = prune_marks
        self.progress = progress
        self.total = total
        self.marked = 0

    def mark(self, roots: Iterable[bytes], referenced_by: str) -> int:
        """Mark ``roots`` and everything they reach; return how many were new."""
        before = self.marked
        new = self.marks.add(roots)
        self.marked += len(new)
        self._drain([(oid, referenced_by) for oid in new])
        return self.marked - before

    def _drain(self, stack: list[tuple[bytes, str]]) -> None:
        # A history is a chain, each commit naming the next: read commits as they come
        # (a few at a time) and gather trees and blobs into batches of _BATCH. Read
        # along with each commit, they came ~9 to a batch, each batch paying its own
        # queries and its own pass down the delta chains (docs/maintenance.md).
        later: list[tuple[bytes, str]] = []
        while stack or later:
            pending = stack if stack else later
            batch = pending[-_BATCH:]
            del pending[-_BATCH:]
            loaded = self._load(batch)
            found: dict[bytes, tuple[str, bool]] = {}
            for oid, _ in batch:
                item = loaded[oid]
                tree, links = self._links(oid, item.kind, item.data)
                for child in links:
                    found.setdefault(child, (oid.hex(), child != tree))
                if item.base is not None:  # what it is compressed against must stay too
                    found.setdefault(item.base, (f"{oid.hex()} (as its base)", False))
            new = self.marks.add(found)
            self.marked += len(new)
            for oid in new:
                referrer, is_commit = found[oid]
                (stack if is_commit else later).append((oid, referrer))
            if self.progress is not None:
                self.progress("mark", self.marked, self.total)

    def _load(self, batch: list[tuple[bytes, str]]) -> dict[bytes, Loaded]:
        try:
            return self.objects.read_many([oid for oid, _ in batch], cached=False)
        except ObjectNotFound as err:
            problem, bad = "missing", err.object_id
        except CorruptObject as err:
            problem, bad = f"damaged ({err.problem})", err.object_id
        referrer = next((ref for oid, ref in batch if oid.hex() == bad), None)
        if referrer is None:  # not one of the batch: what one of them is stored against
            rows = self.objects.backend.get_objects([oid for oid, _ in batch])
            user = next((r.id.hex() for r in rows.values() if r.base and r.base.hex() == bad), None)
            referrer = f"{user} (as its base)" if user else "an object stored against it"
        raise GCAborted(bad, problem, referrer)

    def _links(self, oid: bytes, kind: Kind, data: bytes) -> tuple[bytes | None, list[bytes]]:
        """What an object references; for a commit, its tree first (the rest are commits)."""
        try:
            if kind == Kind.COMMIT:
                commit = Commit.from_value(decode_trusted(data))
                return commit.tree, commit_links(commit, self.prune_marks.get(oid))
            return None, references(kind, data)
        except MalformedData as err:
            raise GCAborted(oid.hex(), f"damaged ({err.problem})", "its own content") from None


def _mark_roots(
    marker: _Marker,
    now: float,
    young_since: int,
    reflog_expiry: float,
    view: GCView | None,
) -> tuple[int, int]:
    """Mark from refs, unexpired reflog entries and objects stored since ``young_since``.

    Returns how many objects were newly marked as reachable and as young.
    """
    backend = marker.objects.backend
    reachable = 0
    for name, oid in backend.list_refs().items():
        reachable += marker.mark([oid], name)
    dropped = frozenset(view.dropped_reflog) if view is not None else frozenset()
    entries = backend.reflog(since=_reflog_since(now, reflog_expiry))
    reachable += marker.mark(
        (e.new for e in entries if e.new is not None and e.new not in dropped), "reflog"
    )
    dictionary = current_dictionary(marker.objects)
    if dictionary is not None and backend.has_objects([dictionary]):
        # Commits compress small records with it: kept even while nothing uses it yet.
        reachable += marker.mark([dictionary], "the store's zstd dictionary")
    young = marker.mark(backend.young_objects(young_since), "an object within the grace period")
    return reachable, young


def _reflog_since(now: float, reflog_expiry: float) -> int:
    return int((now - reflog_expiry) * 1_000_000)


def collect_garbage(
    objects: ObjectStore,
    *,
    grace: float = DEFAULT_GRACE,
    reflog_expiry: float = DEFAULT_REFLOG_EXPIRY,
    dry_run: bool = False,
    now: float | None = None,
    progress: Progress | None = None,
    view: GCView | None = None,
    marks: Callable[[], AbstractContextManager[MarkSet]] | None = None,
    compact: bool = False,
) -> GCStats:
    """Delete every object nothing reaches, expire old reflog entries, reclaim space.

    Args:
        objects: the store's objects (and, through them, its backend).
        grace: seconds; objects stored more recently are kept with all they reference.
        reflog_expiry: seconds; younger reflog entries keep their commits alive, older
            ones are deleted.
        dry_run: only count what would go.
        now: the time ages are measured against (default: the clock).
        progress: called as the work proceeds (see :data:`Progress`).
        view: for a dry run only: pretend the store has these prune marks and lacks
            these reflog entries (what ``prune --dry-run`` reports).
        marks: where to keep the marks (default: the backend's choice).
        compact: rewrite the store file afterwards, so that the space of deleted
            objects that shared pages with live ones is returned too (SQLite
            ``VACUUM``; commits wait while it runs).

    Raises:
        GCAborted: a reachable object is missing or damaged; nothing was deleted.
        InvalidOption: ``grace`` or ``reflog_expiry`` is negative or not a number.
    """
    grace = _check_seconds("grace", grace)
    reflog_expiry = _check_seconds("reflog expiry", reflog_expiry)
    if view is not None and not dry_run:
        raise ValueError("a GCView is for dry runs only")
    backend = objects.backend
    now = time.time() if now is None else now
    # Ages have one-second resolution: an object stored at second `before - 1` was
    # stored at least `grace` seconds ago; one stored at second `before` may not be.
    before = math.floor(now - grace)
    # Objects stored after this second were stored after the first mark began.
    started = math.floor(time.time())
    usage = backend.usage()
    total = sum(kind.objects for kind in usage.kinds.values())
    with (marks or backend.marks)() as marked:
        with backend.reading():
            prune_marks = view.prune_marks if view is not None else backend.prune_marks()
            marker = _Marker(objects, marked, prune_marks, progress, total)
            reachable, young = _mark_roots(marker, now, before, reflog_expiry, view)
        if dry_run:
            swept = marked.sweep(before, dry_run=True)
            since = _reflog_since(now, reflog_expiry)
            expired = sum(1 for e in backend.reflog() if e.at < since)
            return GCStats(
                swept.objects, swept.bytes, reachable, young, expired,
                usage.disk_bytes, usage.disk_bytes, grace, reflog_expiry, True,
            )  # fmt: skip
        if progress is not None:
            progress("sweep", 0, None)
        with backend.exclusive():
            marker.prune_marks = backend.prune_marks()
            marker.progress = None  # keep the write lock as short as possible
            # Objects young at the first mark were marked then; only what was stored
            # since needs a look (re-stored objects have their age refreshed).
            since = max(before, started)
            more_reachable, more_young = _mark_roots(marker, now, since, reflog_expiry, None)
            swept = marked.sweep(before)
            expired = backend.drop_reflog(before=_reflog_since(now, reflog_expiry))
            stale = list(marker.prune_marks)
            gone = set(stale) - backend.has_objects(stale)
            if gone:
                backend.set_prune_marks([], drop=sorted(gone))
    if progress is not None:
        progress("reclaim", 0, None)
    if swept.objects or expired or compact:
        backend.reclaim(compact=compact)
    return GCStats(
        swept.objects, swept.bytes, reachable + more_reachable, young + more_young, expired,
        usage.disk_bytes, backend.usage().disk_bytes, grace, reflog_expiry, False,
    )  # fmt: skip
