"""fsck: prove the store is intact, or say exactly what is wrong with it.

Every object is read back and checked: it decompresses, its content has the id it is
stored under (which also covers its kind), it is in canonical form, and a tree node or
commit is well formed. Every link is checked to exist: commit → tree and parents,
tree node → children, ref → commit, reflog entry → commit, prune mark → commit and
nearest kept ancestor. A commit with a prune mark may lack its first parent: that is
what pruning does.

Each problem names the object and what references it. The scan runs in one read
snapshot and holds only one batch of objects in memory at a time; when something is
damaged, a second pass finds what references it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any, Final

from ckptstore.backends.base import PruneMark, ReflogEntry
from ckptstore.errors import CorruptObject, MalformedData, ObjectNotFound
from ckptstore.gc import Progress
from ckptstore.graph import references
from ckptstore.objects import Kind
from ckptstore.objectstore import Loaded, ObjectStore
from ckptstore.roots import root_problems

__all__ = ["FsckReport", "Problem", "check_store"]

_BATCH: Final = 2000
_KINDS: Final = {int(kind): kind.label for kind in Kind}
MAX_REFERRERS: Final = 10
"""At most this many referrers are listed per problem (the count is always given)."""


@dataclass(frozen=True, slots=True)
class Problem:
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


@dataclass(frozen=True, slots=True)
class FsckReport:
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


def _batches(ids: Iterable[bytes]) -> Iterator[list[bytes]]:
    it = iter(ids)
    while batch := list(islice(it, _BATCH)):
        yield batch


def _read(objects: ObjectStore, batch: list[bytes]) -> dict[bytes, Loaded | str | _BrokenBase]:
    """Each object of ``batch``, verified (its base chain too), or why it cannot be read."""
    try:
        return dict(objects.read_many(batch, cached=False))
    except (CorruptObject, ObjectNotFound):
        pass
    out: dict[bytes, Loaded | str | _BrokenBase] = {}
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


@dataclass(frozen=True, slots=True)
class _BrokenBase:
    """An object that cannot be read because the object it is stored against cannot."""

    base: bytes


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
    total = sum(k.count for k in backend.usage().kinds.values())
    counts: Counter[str] = Counter()
    corrupt: dict[bytes, str] = {}
    missing = _Referrers()
    trees = _Referrers()  # commit trees, with the commits that name them
    with backend.reading():
        marks = backend.prune_marks()
        refs = backend.list_refs()
        reflog = backend.reflog()
        done = 0
        for batch in _batches(backend.iter_ids()):
            wanted: dict[bytes, list[str]] = {}
            for oid, read in _read(objects, batch).items():
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
            done += len(batch)
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
    for batch in _batches(objects.backend.iter_ids()):
        for oid, read in _read(objects, batch).items():
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
        done += len(batch)
        if progress is not None:
            progress("referrers", done, total)
    return found
