"""fsck: prove the store is intact, or say exactly what is wrong with it.

Every object is read back and checked: it decompresses, its content has the id it is
stored under (which also covers its kind), it is in canonical form, and a tree node or
commit is well formed. Every link is checked to exist: commit → tree and parents,
tree node → children, ref → commit, reflog entry → commit, prune mark → commit and
nearest kept ancestor. A commit with a prune mark may lack its first parent: that is
what pruning does.

Each problem names the object and what references it. The scan runs in one read
snapshot, one batch of objects at a time; when something is damaged, a second pass
finds what references it.

Objects stored as deltas are verified in storage order, where a base comes before the
objects stored against it: each object is decompressed once, against the bytes of its
base verified just before, which are kept until the last object stored against them is
verified (within ``_HELD_BYTES``). Verifying them in id order instead decoded the whole
base chain again for nearly every object: ten times the work at a million objects.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any, Final, NamedTuple, TypeVar

from ckptstore.backends.base import PruneMark, ReflogEntry, StoredObject
from ckptstore.compression import BASED
from ckptstore.errors import CorruptObject, MalformedData, ObjectNotFound
from ckptstore.gc import Progress
from ckptstore.graph import references
from ckptstore.objects import Kind
from ckptstore.objectstore import Loaded, ObjectStore
from ckptstore.roots import root_problems

__all__ = ["FsckReport", "Problem", "check_store"]

_T = TypeVar("_T")
_BATCH: Final = 2000
_HELD_BYTES: Final = 64 * 1024 * 1024
"""Verified bases kept for the objects stored against them: at most this many bytes."""
_HELD_ENTRY: Final = 320  # besides its bytes, a kept base's id, records and dict slot
_KINDS: Final = {int(kind): kind.label for kind in Kind}
MAX_REFERRERS: Final = 10
"""At most this many referrers are listed per problem (the count is always given)."""


class Problem(NamedTuple):
    """One thing wrong, of a ``kind``: ``corrupt``, ``missing``, or in the wrong place.

    Wrong places: ``not a commit`` (a ref to another kind) and ``not a checkpoint`` (a
    commit's tree that is not shaped as a checkpoint's root).
    """

    kind: str
    object_id: str
    detail: str
    referenced_by: tuple[str, ...] = ()
    referrers: int = 0
    """How many things reference the object (``referenced_by`` lists the first few)."""

    def __str__(self) -> str:
        text = f"{self.kind} object {self.object_id}"
        if self.detail:
            text += f": {self.detail}"
        if self.referenced_by:
            more = self.referrers - len(self.referenced_by)
            text += f" (referenced by {', '.join(self.referenced_by)}"
            text += f" and {more} more)" if more > 0 else ")"
        return text

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "kind": self.kind,
            "object_id": self.object_id,
            "detail": self.detail,
            "referenced_by": list(self.referenced_by),
            "referrers": self.referrers,
        }


class FsckReport(NamedTuple):
    """What fsck checked, and every problem it found (none: the store is intact)."""

    objects: dict[str, int]
    """Objects checked, by kind (``blob``, ``tree``, ``commit``; ``corrupt`` if unreadable)."""
    refs: int
    reflog: int
    prune_marks: int
    problems: list[Problem]

    @property
    def ok(self) -> bool:
        """Whether nothing is wrong."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``--json`` output)."""
        return {
            "ok": self.ok,
            "objects": self.objects,
            "refs": self.refs,
            "reflog": self.reflog,
            "prune_marks": self.prune_marks,
            "problems": [p.to_dict() for p in self.problems],
        }


class _Referrers:
    """What references each problem object: the first few names, and a count."""

    def __init__(self) -> None:
        self.names: dict[bytes, list[str]] = {}
        self.counts: Counter[bytes] = Counter()

    def add(self, oid: bytes, name: str) -> None:
        self.counts[oid] += 1
        names = self.names.setdefault(oid, [])
        if len(names) < MAX_REFERRERS:
            names.append(name)

    def problem(self, kind: str, oid: bytes, detail: str) -> Problem:
        return Problem(kind, oid.hex(), detail, tuple(self.names.get(oid, ())), self.counts[oid])


def _batches(items: Iterable[_T]) -> Iterator[list[_T]]:
    it = iter(items)
    while batch := list(islice(it, _BATCH)):
        yield batch


def _read(objects: ObjectStore, batch: list[bytes]) -> dict[bytes, _Read]:
    """Each object of ``batch``, verified (its base chain too), or why it cannot be read."""
    try:
        return dict(objects.read_many(batch, cached=False))
    except (CorruptObject, ObjectNotFound):
        pass
    out: dict[bytes, _Read] = {}
    for oid in batch:  # something in the batch is damaged: find out which, one by one
        try:
            out[oid] = objects.read_many([oid], cached=False)[oid]
        except (CorruptObject, ObjectNotFound) as err:
            if err.object_id == oid.hex():
                if isinstance(err, CorruptObject):
                    out[oid] = err.problem
                continue  # gone meanwhile: a racing gc removed it
            # Readable but for what it is stored against: that one is the problem, and
            # is reported (missing or corrupt) with this object among its referrers.
            row = objects.backend.get_objects([oid]).get(oid)
            if row is not None and row.base is not None:
                out[oid] = _BrokenBase(row.base)
    return out


class _BrokenBase(NamedTuple):
    """An object that cannot be read because the object it is stored against cannot."""

    base: bytes


_Read = Loaded | str | _BrokenBase


@dataclass(slots=True)
class _Held:
    loaded: Loaded
    left: int  # objects stored against it that are still to be verified


class _Bases:
    """Verified objects kept for the objects stored against them, within a byte budget.

    An object is dropped when its last dependent has used it. Over the budget the one
    kept longest goes first: its dependents are far away, or were stored before it
    (then they never come), and reading one of them with its chain costs only time.
    """

    def __init__(self, budget: int) -> None:
        self._held: OrderedDict[bytes, _Held] = OrderedDict()
        self._budget = budget
        self._size = 0

    def keep(self, oid: bytes, loaded: Loaded, dependents: int) -> None:
        if dependents <= 0 or len(loaded.data) + _HELD_ENTRY > self._budget:
            return
        self._held[oid] = _Held(loaded, dependents)
        self._size += len(loaded.data) + _HELD_ENTRY
        while self._size > self._budget:
            _, old = self._held.popitem(last=False)
            self._size -= len(old.loaded.data) + _HELD_ENTRY

    def take(self, oid: bytes) -> Loaded | None:
        """The verified object ``oid`` if kept, counting one of its dependents as done."""
        held = self._held.get(oid)
        if held is None:
            return None
        held.left -= 1
        if held.left <= 0:
            del self._held[oid]
            self._size -= len(held.loaded.data) + _HELD_ENTRY
        return held.loaded


def _verify(objects: ObjectStore, stored: StoredObject, base: Loaded | None) -> Loaded | str:
    """Decompress, re-hash and check one stored object against its verified base.

    The object store's own check (:meth:`ObjectStore.verify`), so fsck and every read
    agree on what intact means.
    """
    try:
        return objects.verify(stored, base)
    except CorruptObject as err:
        return err.problem


def _scan(objects: ObjectStore) -> Iterator[tuple[int, dict[bytes, _Read]]]:
    """Every object read once and verified, batch by batch: (objects read, results).

    A base is verified before the objects stored against it (storage order), and kept
    for them: one decompression per object. An object whose base is not kept (stored
    after it, missing, or let go over the budget) is read with its whole chain
    instead, which also finds out where a broken chain breaks. One whose base is known
    to be unreadable is not read at all: a chain read would only say so again, and a
    damaged dictionary has tens of thousands of dependents.
    """
    bases = _Bases(_HELD_BYTES)
    broken: set[bytes] = set()  # unreadable so far (only as many as the damage)
    stats = objects.stats
    for batch in _batches(objects.backend.scan_objects()):
        stats.read_batches += 1
        out: dict[bytes, _Read] = {}
        strays: dict[bytes, int] = {}
        for stored, dependents in batch:
            stats.objects_read += 1
            stats.bytes_read += len(stored.data)
            base = bases.take(stored.base) if stored.base is not None else None
            if stored.codec in BASED and base is None:
                if stored.base in broken:
                    out[stored.id] = _BrokenBase(stored.base)
                    broken.add(stored.id)
                else:
                    strays[stored.id] = dependents
                continue
            read = _verify(objects, stored, base if stored.codec in BASED else None)
            out[stored.id] = read
            if isinstance(read, Loaded):
                bases.keep(stored.id, read, dependents)
            else:
                broken.add(stored.id)
        if strays:
            for oid, chained in _read(objects, list(strays)).items():
                out[oid] = chained
                if isinstance(chained, Loaded):
                    bases.keep(oid, chained, strays[oid])
                    continue
                broken.add(oid)
                if isinstance(chained, _BrokenBase):
                    broken.add(chained.base)  # missing, or its own chain is broken
        yield len(batch), out


def _links(oid: bytes, kind: Kind, data: bytes, marks: dict[bytes, PruneMark]) -> list[bytes]:
    """What an object must be able to reach (a pruned commit's first parent excepted)."""
    links = references(kind, data, strict=True)
    if kind == Kind.COMMIT and oid in marks and len(links) > 1:
        del links[1]  # [tree, first parent, ...]: the first parent was pruned
    return links


def check_store(objects: ObjectStore, *, progress: Progress | None = None) -> FsckReport:
    """Check every object, link, ref, reflog entry and prune mark of the store.

    Args:
        objects: the store's objects (and, through them, its backend).
        progress: called as ``("check", done, total)`` per batch, then
            ``("referrers", done, total)`` if a second pass is needed.
    """
    backend = objects.backend
    total = sum(k.objects for k in backend.usage().kinds.values())
    counts: Counter[str] = Counter()
    corrupt: dict[bytes, str] = {}
    missing = _Referrers()
    trees = _Referrers()  # commit trees, with the commits that name them
    with backend.reading():
        marks = backend.prune_marks()
        refs = backend.list_refs()
        reflog = backend.reflog()
        done = 0
        for scanned, reads in _scan(objects):
            wanted: dict[bytes, list[str]] = {}
            for oid, read in reads.items():
                if isinstance(read, _BrokenBase):
                    wanted.setdefault(read.base, []).append(f"{oid.hex()} (as its base)")
                    continue
                if isinstance(read, str):
                    corrupt[oid] = read
                    counts["corrupt"] += 1
                    continue
                kind, data = read.kind, read.data
                counts[kind.label] += 1
                try:
                    links = _links(oid, kind, data, marks)
                    for child in links:
                        wanted.setdefault(child, []).append(oid.hex())
                    if kind == Kind.COMMIT:
                        trees.add(links[0], oid.hex())
                    if read.base is not None:
                        wanted.setdefault(read.base, []).append(f"{oid.hex()} (as its base)")
                except MalformedData as err:
                    corrupt[oid] = f"malformed {err.what}: {err.problem}"
            present = backend.has_objects(list(wanted))
            for child, referrers in wanted.items():
                if child not in present:
                    for referrer in referrers:
                        missing.add(child, referrer)
            done += scanned
            if progress is not None:
                progress("check", done, total)
        roots = _roots(refs, reflog, marks)
        present = backend.has_objects([oid for oid, _ in roots])
        kinds = {oid: backend.find_objects(oid, oid, 1)[0][1] for oid in present}
        wrong = _Referrers()
        for oid, name in roots:
            if oid not in present:
                missing.add(oid, name)
            elif kinds[oid] != Kind.COMMIT:
                wrong.add(oid, name)
        problems = [
            wrong.problem("not a commit", oid, f"it is a {_KINDS.get(kinds[oid], 'bad kind')}")
            for oid in wrong.counts
        ]
        unsound = [oid for oid in trees.counts if oid not in corrupt and oid not in missing.counts]
        for batch in _batches(unsound):
            for oid, why in root_problems(objects, batch).items():
                problems.append(trees.problem("not a checkpoint", oid, why))
        if corrupt:
            named = _find_referrers(objects, corrupt.keys(), marks, roots, progress, total)
            problems += [named.problem("corrupt", oid, why) for oid, why in corrupt.items()]
    problems += [
        missing.problem("missing", oid, "") for oid in missing.counts if oid not in corrupt
    ]
    problems.sort(key=lambda p: (p.kind, p.object_id))
    return FsckReport(dict(counts), len(refs), len(reflog), len(marks), problems)


def _roots(
    refs: dict[str, bytes], reflog: list[ReflogEntry], marks: dict[bytes, PruneMark]
) -> list[tuple[bytes, str]]:
    """Everything outside the objects that names a commit, with a name for messages."""
    roots = [(oid, f"ref {name}") for name, oid in refs.items()]
    roots += [(e.new, f"reflog {e.name}#{e.seq}") for e in reflog if e.new is not None]
    for mark in marks.values():
        roots.append((mark.id, "a prune mark"))
        if mark.next is not None:
            roots.append((mark.next, f"the prune mark of {mark.id.hex()}"))
    return roots


def _find_referrers(
    objects: ObjectStore,
    damaged: Iterable[bytes],
    marks: dict[bytes, PruneMark],
    roots: list[tuple[bytes, str]],
    progress: Progress | None,
    total: int,
) -> _Referrers:
    """A second pass: which objects (and refs, reflog entries, marks) name a damaged one."""
    wanted = set(damaged)
    found = _Referrers()
    for oid, name in roots:
        if oid in wanted:
            found.add(oid, name)
    done = 0
    for scanned, reads in _scan(objects):
        for oid, read in reads.items():
            if isinstance(read, _BrokenBase):
                if read.base in wanted:
                    found.add(read.base, f"{oid.hex()} (as its base)")
                continue
            if isinstance(read, str):
                continue
            if read.base is not None and read.base in wanted:
                found.add(read.base, f"{oid.hex()} (as its base)")
            try:
                links = [] if read.kind == Kind.BLOB else _links(oid, read.kind, read.data, marks)
            except MalformedData:
                continue
            for child in set(links) & wanted:
                found.add(child, oid.hex())
        done += scanned
        if progress is not None:
            progress("referrers", done, total)
    return found
