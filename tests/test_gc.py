"""gc: what it deletes, what it keeps (reachable, young, reflog), and that it fails closed.

Objects count as old with ``now=later()`` (every age measured against a time a few
seconds ahead) or, on disk, by moving their ages back with SQL (``backdate``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ckptstore import GCAborted, InvalidOption, Store
from ckptstore.backends.sqlite import SQLiteBackend
from ckptstore.gc import collect_garbage
from ckptstore.refs import SESSION_PREFIX
from storetools import (
    FOREVER,
    all_ids,
    backdate,
    drop_session,
    flip_byte,
    later,
    make_garbage,
    reachable,
    state,
)


def fill(store: Store, count: int = 5) -> list[str]:
    return [store.commit(state(i), session="main").id for i in range(count)]


def test_gc_removes_exactly_what_nothing_reaches(store: Store) -> None:
    kept = fill(store)
    junk = make_garbage(store)
    before = all_ids(store)
    live = reachable(store)
    assert before - live, "the garbage must be something"
    stats = store.gc(grace=0, reflog_expiry=0, now=later())
    assert all_ids(store) == live
    assert stats.objects_removed == len(before - live)
    assert stats.bytes_removed > 0
    assert stats.objects_reachable == len(live)
    # Every entry was older than `now`: the commits, and the drop of the session.
    assert stats.reflog_expired == len(junk) + len(kept) + 1
    assert store.backend.reflog() == []
    for oid in kept:
        assert store.load(oid)["variables"]["step"] == kept.index(oid)
    assert store.fsck().ok


def test_gc_reads_trees_in_batches_not_commit_by_commit(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A session's history is a chain of commits, each naming the next. The mark must
    # not read each commit's tree along with it (batches of a handful of objects, each
    # costing queries and its own pass down the delta chains): the trees wait, and the
    # root trees of all 30 commits are read together.
    fill(store, 30)
    sizes: list[int] = []
    get_objects = store.backend.get_objects

    def spy(ids: list[bytes]) -> object:
        sizes.append(len(ids))
        return get_objects(ids)

    monkeypatch.setattr(store.backend, "get_objects", spy)
    stats = store.gc(grace=0, reflog_expiry=0, now=later())
    assert stats.objects_reachable == len(reachable(store))
    assert max(sizes) >= 30


def test_a_second_gc_right_after_the_first_deletes_nothing(store: Store) -> None:
    fill(store)
    make_garbage(store)
    now = later()
    assert store.gc(grace=0, reflog_expiry=0, now=now).objects_removed > 0
    again = store.gc(grace=0, reflog_expiry=0, now=now)
    assert (again.objects_removed, again.bytes_removed, again.reflog_expired) == (0, 0, 0)
    assert again.objects_reachable == len(all_ids(store))


def test_unexpired_reflog_entries_keep_their_commits(store: Store) -> None:
    fill(store)
    junk = make_garbage(store)
    with_reflog = reachable(store, reflog=True)
    stats = store.gc(grace=0, reflog_expiry=FOREVER, now=later())
    assert all_ids(store) == with_reflog
    assert stats.reflog_expired == 0
    assert store.load(junk[-1])["variables"]["tag"] == "junk"
    store.gc(grace=0, reflog_expiry=0, now=later())
    assert store.objects.missing([bytes.fromhex(j) for j in junk]) == {
        bytes.fromhex(j) for j in junk
    }


def test_young_unreachable_objects_are_kept(store: Store) -> None:
    fill(store)
    make_garbage(store)
    before = all_ids(store)
    stats = store.gc(reflog_expiry=0)  # the default grace period: an hour
    assert stats.objects_removed == 0
    assert stats.objects_young == len(before - reachable(store))
    assert all_ids(store) == before


def test_everything_a_young_object_references_is_kept(store_dir: Path) -> None:
    """A young unreachable tree keeps its old children: a commit may reuse the tree later."""
    with Store.open(store_dir) as store:
        fill(store, 2)
        old = make_garbage(store, "old", count=1, tag="shared")
    backdate(store_dir, 7200)
    with Store.open(store_dir) as store:
        # Same tasks and plan as `old`, one variable different: a new root and a new
        # variables node (young), pointing at old, unreachable task and plan objects.
        young = store.commit({**state(0, tag="shared"), "extra": 1}, session="young").id
        drop_session(store, "young")
        before = all_ids(store)
        stats = store.gc(reflog_expiry=0)
        assert stats.objects_removed > 0  # the old commit and what only it used
        assert store.objects.missing([bytes.fromhex(old[0])]) == {bytes.fromhex(old[0])}
        assert store.load(young)["extra"] == 1  # its whole tree survived
        assert all_ids(store) < before
        assert store.fsck().ok


def test_gc_keeps_what_a_concurrent_commit_reused(store_dir: Path) -> None:
    """A commit lands between gc's first mark and its sweep, reusing garbage."""
    with Store.open(store_dir) as store, Store.open(store_dir) as other:
        fill(store, 2)
        junk = make_garbage(store, count=1, tag="reused")
        reused_tree = bytes.fromhex(store.get_commit(junk[0]).tree)
        landed: list[str] = []

        def commit_meanwhile(phase: str, done: int, total: int | None) -> None:
            if phase == "sweep" and not landed:  # after the first mark, before the lock
                landed.append(other.commit(state(0, tag="reused"), session="late").id)

        stats = store.gc(grace=0, reflog_expiry=0, now=later(), progress=commit_meanwhile)
        assert landed
        assert stats.objects_removed > 0  # the garbage commit itself went
        assert store.objects.missing([bytes.fromhex(junk[0])])
        assert store.get_commit(landed[0]).tree == reused_tree.hex()
        assert store.load(landed[0])["variables"]["tag"] == "reused"
        assert all_ids(store) == reachable(store)
        assert store.fsck().ok


def test_gc_in_memory_keeps_what_a_concurrent_commit_reused() -> None:
    store = Store.memory()
    fill(store, 2)
    make_garbage(store, count=1, tag="reused")
    landed: list[str] = []

    def commit_meanwhile(phase: str, done: int, total: int | None) -> None:
        if phase == "sweep" and not landed:
            landed.append(store.commit(state(0, tag="reused"), session="late").id)

    store.gc(grace=0, reflog_expiry=0, now=later(), progress=commit_meanwhile)
    assert landed
    assert store.load(landed[0])["variables"]["tag"] == "reused"
    assert store.fsck().ok


def test_gc_fails_closed_when_a_reachable_object_is_missing(store: Store) -> None:
    kept = fill(store)
    make_garbage(store)
    tree = bytes.fromhex(store.get_commit(kept[2]).tree)
    assert store.backend.delete_objects([tree]) == 1
    before, log = all_ids(store), store.backend.reflog()
    with pytest.raises(GCAborted) as caught:
        store.gc(grace=0, reflog_expiry=0, now=later())
    # Whichever gc reads first: the tree, missing, or a newer tree stored as a delta
    # against it, which then reads as stored against nothing.
    if caught.value.object_id == tree.hex():
        assert caught.value.referenced_by == kept[2]
        assert caught.value.problem == "missing"
    else:
        assert "stored against a base that is missing" in caught.value.problem
    assert all_ids(store) == before
    assert store.backend.reflog() == log


def test_gc_fails_closed_when_a_reachable_object_is_damaged(store_dir: Path) -> None:
    with Store.open(store_dir) as store:
        kept = fill(store)
        make_garbage(store)
        tree = bytes.fromhex(store.get_commit(kept[0]).tree)
        before = all_ids(store)
    flip_byte(store_dir, tree, 3)
    with Store.open(store_dir) as store:
        with pytest.raises(GCAborted, match="damaged") as caught:
            store.gc(grace=0, reflog_expiry=0, now=later())
        assert caught.value.object_id == tree.hex()
        assert all_ids(store) == before


def test_dry_run_reports_what_gc_then_does_and_changes_nothing(store: Store) -> None:
    fill(store)
    make_garbage(store)
    before, log = all_ids(store), store.backend.reflog()
    now = later()
    dry = store.gc(grace=0, reflog_expiry=0, now=now, dry_run=True)
    assert dry.dry_run
    assert (all_ids(store), store.backend.reflog()) == (before, log)
    real = store.gc(grace=0, reflog_expiry=0, now=now)
    assert (dry.objects_removed, dry.bytes_removed, dry.reflog_expired) == (
        real.objects_removed,
        real.bytes_removed,
        real.reflog_expired,
    )
    assert dry.objects_reachable == real.objects_reachable


def test_gc_shrinks_the_store_file(store_dir: Path) -> None:
    with Store.open(store_dir) as store:
        store.commit(state(0), session="main")
        for i in range(40):
            big = {f"blob{k}": f"{i}-{k}-" * 400 + bytes(range(i, i + 60)).hex() for k in range(20)}
            store.commit({"variables": big}, session="scratch")
        drop_session(store, "scratch")
        store.backend.reclaim()  # start from a checkpointed, compact file
        size = (store_dir / "store.db").stat().st_size
        stats = store.gc(grace=0, reflog_expiry=0, now=later())
        after = (store_dir / "store.db").stat().st_size
        assert stats.objects_removed > 800
        assert after < size / 4, (size, after)
        assert stats.disk_before >= size
        assert stats.disk_after == after + (store_dir / "store.db-wal").stat().st_size
        assert store.load()["variables"]["step"] == 0


def test_compact_also_frees_garbage_that_shared_pages_with_live_objects(
    store_dir: Path,
) -> None:
    with Store.open(store_dir) as store:
        for i in range(120):  # two sessions, interleaved: their rows share pages
            for session in ("keep", "drop"):
                store.commit({"variables": {"v": f"{session} {i} " * 60}}, session=session)
        drop_session(store, "drop")
        store.gc(grace=0, reflog_expiry=0, now=later())
        incremental = (store_dir / "store.db").stat().st_size
        stats = store.gc(grace=0, reflog_expiry=0, now=later(), compact=True)
        assert stats.objects_removed == 0
        compacted = (store_dir / "store.db").stat().st_size
        assert compacted < incremental * 0.8, (incremental, compacted)
        assert store.load("keep")["variables"]["v"].startswith("keep 119 ")
        assert store.fsck().ok


def test_both_mark_strategies_remove_the_same_objects(store_dir: Path, tmp_path: Path) -> None:
    with Store.open(store_dir) as store:
        fill(store)
        make_garbage(store, count=4)
    twin = tmp_path / "twin"
    shutil.copytree(store_dir, twin)
    now = later()
    results = []
    for directory, strategy in ((store_dir, "sql"), (twin, "python")):
        with Store.open(directory) as store:
            assert isinstance(store.backend, SQLiteBackend)
            backend = store.backend
            stats = collect_garbage(
                store.objects,
                grace=0,
                reflog_expiry=0,
                now=now,
                marks=lambda b=backend, s=strategy: b.marks(strategy=s),  # type: ignore[misc]
            )
            results.append((stats.objects_removed, stats.bytes_removed, all_ids(store)))
    assert results[0] == results[1]
    assert results[0][0] > 0


def test_progress_reports_each_phase(store: Store) -> None:
    fill(store)
    make_garbage(store)
    seen: list[tuple[str, int, int | None]] = []
    store.gc(grace=0, reflog_expiry=0, now=later(), progress=lambda *a: seen.append(a))
    phases = [p for p, _, _ in seen]
    assert phases[0] == "mark"
    assert phases[-2:] == ["sweep", "reclaim"]
    marks = [(done, total) for p, done, total in seen if p == "mark"]
    assert [d for d, _ in marks] == sorted(d for d, _ in marks)
    assert all(total is not None and done <= total for done, total in marks)


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf")])
def test_negative_or_non_finite_ages_are_refused(store: Store, bad: float) -> None:
    with pytest.raises(InvalidOption, match="grace"):
        store.gc(grace=bad)
    with pytest.raises(InvalidOption, match="reflog expiry"):
        store.gc(reflog_expiry=bad)


def test_gc_of_an_empty_store_does_nothing(store: Store) -> None:
    stats = store.gc(grace=0, now=later())
    assert (stats.objects_removed, stats.objects_reachable, stats.objects_young) == (0, 0, 0)


def test_tags_keep_their_checkpoints(store: Store) -> None:
    fill(store)
    junk = make_garbage(store, count=2)
    store.tag("keepme", junk[0])
    store.gc(grace=0, reflog_expiry=0, now=later())
    assert store.load("keepme")["variables"]["tag"] == "junk"
    assert store.objects.missing([bytes.fromhex(junk[1])])
    assert SESSION_PREFIX + "tmp" not in store.backend.list_refs()
