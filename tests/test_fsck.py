"""fsck: a clean store passes; every damaged or missing object is named with its referrers."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from ckptstore import RetentionPolicy, Store, fsck
from ckptstore.backends.base import PruneMark, RefUpdate, StoredObject
from ckptstore.commit_object import Commit
from ckptstore.decoding import decode_trusted
from ckptstore.objects import Kind, encode, object_id
from ckptstore.trees import parse_node
from storetools import (
    all_ids,
    deleted,
    flip_byte,
    later,
    make_garbage,
    state,
    store_again_last,
)


def small_store(store: Store) -> None:
    """Blobs, trees and commits in two sessions, a tag, and some garbage."""
    for i in range(3):
        store.commit(state(i, tasks=4), session="main")
    store.commit(state(9, tasks=3, tag="other"), session="other")
    store.tag("v1", "main~1")
    make_garbage(store, count=1, tag="junk")


def referrers(store: Store) -> dict[bytes, set[str]]:
    """What names each object: other objects (by id), refs and reflog entries."""
    found: dict[bytes, set[str]] = defaultdict(set)
    for oid in store.backend.iter_ids():
        kind, data = store.objects.get(oid)
        if kind == Kind.COMMIT:
            commit = Commit.from_value(decode_trusted(data))
            links = [commit.tree, *commit.parents]
        elif kind == Kind.TREE:
            links = parse_node(data).children()
        else:
            links = []
        for child in links:
            found[child].add(oid.hex())
        base = store.backend.get_objects([oid])[oid].base
        if base is not None:  # stored against another object: that one is needed too
            found[base].add(f"{oid.hex()} (as its base)")
    for name, oid in store.backend.list_refs().items():
        found[oid].add(f"ref {name}")
    for entry in store.backend.reflog():
        if entry.new is not None:
            found[entry.new].add(f"reflog {entry.name}#{entry.seq}")
    return found


def test_a_sound_store_is_ok(store: Store) -> None:
    small_store(store)
    report = store.fsck()
    assert report.ok
    assert report.problems == []
    usage = store.backend.usage().kinds
    assert report.objects == {Kind(k).label: u.objects for k, u in usage.items()}
    assert report.refs == 3
    assert report.reflog == len(store.backend.reflog())
    assert report.to_dict()["ok"] is True


def test_an_empty_store_is_ok(store: Store) -> None:
    report = store.fsck()
    assert report.ok
    assert report.objects == {}


def test_a_flipped_byte_in_any_object_is_reported_with_what_references_it(
    store_dir: Path,
) -> None:
    with Store.open(store_dir) as store:
        small_store(store)
        named = referrers(store)
        ids = sorted(all_ids(store))
    kinds_seen = set()
    for n, oid in enumerate(ids):
        flip_byte(store_dir, oid, n * 7)
        with Store.open(store_dir) as store:
            report = store.fsck()
            kinds_seen.add(store.backend.find_objects(oid, oid, 1)[0][1])
        assert not report.ok
        (problem,) = [p for p in report.problems if p.object_id == oid.hex()]
        assert problem.kind == "corrupt"
        assert set(problem.referenced_by) == named.get(oid, set())
        assert problem.referrers == len(named.get(oid, ()))
        assert oid.hex() in str(problem)
        assert all(p.kind == "corrupt" for p in report.problems)  # nothing else is blamed
        flip_byte(store_dir, oid, n * 7)  # and back
    assert kinds_seen == {int(k) for k in Kind}
    with Store.open(store_dir) as store:
        assert store.fsck().ok


def test_a_deleted_object_is_reported_as_missing_with_its_referrers(store: Store) -> None:
    small_store(store)
    named = referrers(store)
    for oid in sorted(all_ids(store)):
        if oid not in named:
            continue  # unreferenced garbage: deleting it is what gc does
        # Deltas stored against it are reported corrupt (in SQLite they name it by row,
        # and the row is gone); everything else that names it, with the missing object.
        dependents = {r.split()[0] for r in named[oid] if r.endswith("(as its base)")}
        with deleted(store, oid):
            problems = store.fsck().problems
            (problem,) = [p for p in problems if p.object_id == oid.hex()]
            others = [p for p in problems if p is not problem]
            assert problem.kind == "missing"
            assert set(problem.referenced_by) == {
                r for r in named[oid] if not r.endswith("(as its base)")
            }
            assert {(p.kind, p.object_id) for p in others} == {
                ("corrupt", dependent) for dependent in dependents
            }
    assert store.fsck().ok


def test_an_object_that_is_not_in_canonical_form_is_reported(store: Store) -> None:
    small_store(store)
    # 5 as a 64-bit msgpack integer instead of one byte: valid msgpack, not canonical.
    data = b"\xd3" + (5).to_bytes(8, "big")
    oid = object_id(Kind.BLOB, data)
    assert store.backend.write([StoredObject(oid, int(Kind.BLOB), 0, len(data), data)]).ok
    report = store.fsck()
    (problem,) = report.problems
    assert (problem.kind, problem.object_id) == ("corrupt", oid.hex())
    assert "canonical" in problem.detail


def test_refs_must_name_existing_commits(store: Store) -> None:
    small_store(store)
    head = store.get_commit("main")
    tree = bytes.fromhex(head.tree)
    ghost = b"\x01" * 32
    assert store.backend.write(
        [], [RefUpdate("tags/tree", None, tree, "t"), RefUpdate("tags/ghost", None, ghost, "g")]
    ).ok
    problems = {(p.kind, p.object_id): p for p in store.fsck().problems}
    assert len(problems) == 2
    wrong = problems[("not a commit", tree.hex())]
    assert wrong.detail == "it is a tree"
    assert set(wrong.referenced_by) == {"ref tags/tree", f"reflog tags/tree#{seq(store, 'tree')}"}
    missing = problems[("missing", ghost.hex())]
    assert set(missing.referenced_by) == {
        "ref tags/ghost",
        f"reflog tags/ghost#{seq(store, 'ghost')}",
    }


def seq(store: Store, tag: str) -> int:
    return next(e.seq for e in store.backend.reflog(f"tags/{tag}"))


def test_a_pruned_parent_is_not_missing_but_a_broken_prune_mark_is(store: Store) -> None:
    ids = [store.commit(state(i), session="main").id for i in range(5)]
    store.prune(RetentionPolicy(last=2), grace=0, now=later())
    assert store.objects.missing([bytes.fromhex(ids[2])])  # the kept commit's parent
    assert store.fsck().ok
    (mark,) = store.backend.prune_marks().values()
    ghost = b"\x02" * 32
    store.backend.set_prune_marks([PruneMark(mark.id, mark.parent_checkpoint, ghost, 1)])
    (problem,) = store.fsck().problems
    assert (problem.kind, problem.object_id) == ("missing", ghost.hex())
    assert problem.referenced_by == (f"the prune mark of {mark.id.hex()}",)


def test_referrers_beyond_ten_are_counted(store: Store) -> None:
    for i in range(12):
        store.commit({"variables": {"i": i, "shared": "s" * 300}}, session=f"s{i}")
    shared = object_id(Kind.BLOB, encode("s" * 300))
    assert shared in all_ids(store)
    store.backend.delete_objects([shared])
    (problem,) = store.fsck().problems
    assert problem.referrers == 12
    assert len(problem.referenced_by) == 10
    assert str(problem).endswith("and 2 more)")


def test_progress_counts_every_object(store: Store) -> None:
    small_store(store)
    seen: list[tuple[str, int, int | None]] = []
    store.fsck(progress=lambda *a: seen.append(a))
    total = len(all_ids(store))
    assert seen[-1] == ("check", total, total)


@pytest.mark.parametrize("position", [0, 1, 5, 40, 1000])
def test_damage_to_a_big_compressed_object_is_caught_anywhere(
    store_dir: Path, position: int
) -> None:
    with Store.open(store_dir) as store:
        store.commit({"variables": {"text": "lorem ipsum " * 5000}}, session="main")
        big = max(store.backend.iter_ids(), key=lambda o: store.backend.get_objects([o])[o].raw_len)
        assert store.backend.get_objects([big])[big].codec == 1
    flip_byte(store_dir, big, position)
    with Store.open(store_dir) as store:
        (problem,) = store.fsck().problems
        assert (problem.kind, problem.object_id) == ("corrupt", big.hex())


def chained_store(store: Store, versions: int = 40) -> None:
    """One checkpoint committed again and again, a long text edited by small insertions.

    Each version of the text is stored as a delta against the one before, in chains up
    to ``MAX_CHAIN`` deep (the small tree nodes and commits are stored whole).
    """
    text = "".join(
        f"Line {n} of the plan: look, think, act, then write it down.\n" for n in range(600)
    )
    for i in range(versions):
        at = (i * 7919) % len(text)
        text = f"{text[:at]} (revised at step {i}) {text[at:]}"
        store.commit({"variables": {"plan": text, "step": i}}, session="main")


class Decompressions:
    """Counts the decompressions fsck does, apart from those of its root-shape check.

    The root check reads each commit's root node and first section nodes again, through
    the object store (``roots.root_problems``); it is not the scan under test. A delta
    chain decoded in one call counts one decompression per link.
    """

    def __init__(self, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
        self.scan = 0
        self.scan_reads: int | None = None
        self._in_roots = False
        codec, objects = store.objects.codec, store.objects
        decompress, root_problems = codec.decompress, fsck.root_problems
        apply_deltas = codec.apply_deltas

        def counting(*args: Any, **kwargs: Any) -> bytes:
            self.scan += not self._in_roots
            return decompress(*args, **kwargs)

        def roots(*args: Any, **kwargs: Any) -> dict[bytes, str]:
            if self.scan_reads is None:
                self.scan_reads = objects.stats.objects_read
            self._in_roots = True
            try:
                return root_problems(*args, **kwargs)
            finally:
                self._in_roots = False

        def chain(base: bytes, deltas: list[tuple[bytes, int]]) -> bytes:
            self.scan += 0 if self._in_roots else len(deltas)
            return apply_deltas(base, deltas)

        monkeypatch.setattr(codec, "decompress", counting)
        monkeypatch.setattr(codec, "apply_deltas", chain)
        monkeypatch.setattr(fsck, "root_problems", roots)
        objects.drop_cache()
        objects.stats.reset()


def test_fsck_decompresses_and_reads_each_object_once_however_long_its_chains(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    chained_store(store)
    ids = all_ids(store)
    depths = Counter(x.depth for x in store.objects.read_many(ids, cached=False).values())
    assert max(depths) >= 12
    assert sum(n for depth, n in depths.items() if depth) >= 30  # nearly every text version
    # Batches of 8 objects: the store is many batches long, as a store of millions is.
    monkeypatch.setattr(fsck, "_BATCH", 8)
    counted = Decompressions(store, monkeypatch)
    report = store.fsck()
    assert report.ok
    assert sum(report.objects.values()) == len(ids)
    assert counted.scan == len(ids)
    assert counted.scan_reads == len(ids)


def test_with_no_room_for_bases_fsck_reads_chains_and_still_checks_everything(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    chained_store(store, versions=24)
    ids = all_ids(store)
    monkeypatch.setattr(fsck, "_BATCH", 8)
    monkeypatch.setattr(fsck, "_HELD_BYTES", 0)
    counted = Decompressions(store, monkeypatch)
    report = store.fsck()
    assert report.ok
    assert sum(report.objects.values()) == len(ids)
    assert counted.scan > len(ids)  # every delta read with its chain: only slower


def test_a_base_stored_again_after_its_dependents_is_still_checked(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    chained_store(store, versions=24)
    ids = all_ids(store)
    rows = store.backend.get_objects(list(ids))
    bases = [r.base for r in rows.values() if r.codec == 3 and r.base is not None]
    moved = rows[bases[len(bases) // 2]]
    store_again_last(store, moved.id)
    assert next(reversed(list(store.backend.scan_objects())))[0] == moved
    monkeypatch.setattr(fsck, "_BATCH", 8)
    counted = Decompressions(store, monkeypatch)
    report = store.fsck()
    assert report.ok
    assert sum(report.objects.values()) == len(ids)
    # Its dependents were read with their chains; the rest of the store once.
    assert len(ids) < counted.scan < 2 * len(ids)


@pytest.mark.parametrize("budget", [0, 64 << 20])
def test_a_damaged_base_in_the_middle_of_a_chain_is_reported_once_with_its_referrers(
    store_dir: Path, monkeypatch: pytest.MonkeyPatch, budget: int
) -> None:
    monkeypatch.setattr(fsck, "_BATCH", 8)
    monkeypatch.setattr(fsck, "_HELD_BYTES", budget)
    with Store.open(store_dir) as store:
        chained_store(store, versions=24)
        named = referrers(store)
        rows = store.backend.get_objects(list(all_ids(store)))
        # A delta that is itself the base of another, halfway along the text's chain.
        bases = Counter(r.base for r in rows.values() if r.base is not None and r.codec == 3)
        middle = [oid for oid in bases if rows[oid].codec == 3 and rows[oid].raw_len > 10_000]
        victim = middle[len(middle) // 2]
    flip_byte(store_dir, victim, 5)
    with Store.open(store_dir) as store:
        (problem,) = store.fsck().problems
    assert (problem.kind, problem.object_id) == ("corrupt", victim.hex())
    assert set(problem.referenced_by) == named[victim]
    assert any(name.endswith("(as its base)") for name in named[victim])
