"""Prune: retention applied to sessions, the history it leaves, and what gc then frees."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ckptstore import EmptySession, InvalidRefName, RetentionPolicy, Store
from ckptstore.retention import CheckpointTime, checkpoint_time
from storetools import all_ids, later, reachable, retention_model, state

DAY0 = datetime(2026, 2, 1, 9, 0, tzinfo=UTC)


def commits(store: Store, session: str, count: int, *, start: int = 0) -> list[str]:
    """``count`` checkpoints, oldest first; their commit ids."""
    return [store.commit(state(start + i), session=session).id for i in range(count)]


def history(store: Store, session: str) -> list[str]:
    return [info.id for info in store.log(session=session, limit=None)]


def prune_now(store: Store, **policy: object) -> object:
    """Prune and let gc take everything unreachable at once."""
    return store.prune(RetentionPolicy(**policy), grace=0, now=later())  # type: ignore[arg-type]


def test_prune_keeps_the_newest_n_of_each_session(store: Store) -> None:
    a = commits(store, "a", 10)
    b = commits(store, "b", 4, start=100)
    report = store.prune(RetentionPolicy(last=3), grace=0, now=later())
    assert report.removed == 7 + 1
    assert history(store, "a") == a[:-4:-1]
    assert history(store, "b") == b[:-4:-1]
    log = store.log(session="a", limit=None)
    assert [e.history_pruned for e in log] == [0, 0, 7]
    assert [e.history_pruned for e in store.log(session="b", limit=None)] == [0, 0, 1]
    gone = {bytes.fromhex(c) for c in a[:7] + b[:1]}
    assert store.objects.missing(gone) == gone
    assert report.gc.objects_removed >= 8
    assert all_ids(store) == reachable(store)
    assert store.fsck().ok
    by_session = {s.session: s for s in report.sessions}
    assert [c.id for c in by_session["a"].removed] == a[6::-1]
    assert [c.reasons for c in by_session["a"].kept] == [("head", "last"), ("last",), ("last",)]


def test_a_kept_checkpoint_loads_exactly_as_before_its_parent_was_pruned(store: Store) -> None:
    ids = commits(store, "main", 6)
    before = {c: store.load(c) for c in ids[-2:]}
    prune_now(store, last=2)
    assert {c: store.load(c) for c in ids[-2:]} == before
    assert before[ids[-2]]["parent_checkpoint_id"] == store.log(limit=None)[-1].parent_checkpoint_id
    assert store.get_commit(ids[-2]).parents == (ids[-3],)  # the commit itself is unchanged


def test_session_heads_and_tagged_checkpoints_are_always_kept(store: Store) -> None:
    ids = commits(store, "main", 8)
    store.tag("release", ids[2])
    report = prune_now(store, last=0)
    assert history(store, "main") == [ids[7], ids[2]]
    assert [e.history_pruned for e in store.log(limit=None)] == [4, 2]
    assert store.load("release")["variables"]["step"] == 2
    kept = report.sessions[0].kept  # type: ignore[attr-defined]
    assert [c.reasons for c in kept] == [("head",), ("tag release",)]
    assert store.fsck().ok


def test_session_option_leaves_the_other_sessions_whole(store: Store) -> None:
    a = commits(store, "a", 5)
    b = commits(store, "b", 5, start=50)
    store.prune(RetentionPolicy(last=1), sessions=["a"], grace=0, now=later())
    assert history(store, "a") == [a[-1]]
    assert history(store, "b") == b[::-1]
    with pytest.raises(EmptySession):
        store.prune(RetentionPolicy(last=1), sessions=["nope"])
    with pytest.raises(InvalidRefName):
        store.prune(RetentionPolicy(last=1), sessions=["bad name"])


def test_a_forked_session_keeps_the_history_it_shares(store: Store) -> None:
    base = commits(store, "a", 6)
    store.fork("b", base[3])
    mine = commits(store, "b", 2, start=90)
    store.prune(RetentionPolicy(last=1), sessions=["a"], grace=0, now=later())
    assert history(store, "a") == [base[5], *base[3::-1]]  # shared with b: kept whole
    assert history(store, "b") == [*mine[::-1], *base[3::-1]]
    for c in history(store, "b"):
        store.load(c)
    assert store.fsck().ok
    prune_now(store, last=1)  # now both: b's history goes, but not a's head
    assert history(store, "a") == [base[5]]
    assert history(store, "b") == [mine[1]]
    assert all_ids(store) == reachable(store)
    assert store.fsck().ok


def test_pruning_again_adds_up_the_pruned_history(store: Store) -> None:
    ids = commits(store, "main", 10)
    prune_now(store, last=6)
    commits(store, "main", 2, start=10)
    prune_now(store, last=3)
    log = store.log(limit=None)
    assert len(log) == 3
    assert log[-1].history_pruned == 9
    assert log[-1].id == ids[-1]
    assert log[-1].parent_checkpoint_id == store.log(limit=None)[-1].parent_checkpoint_id
    assert store.fsck().ok
    assert all_ids(store) == reachable(store)


def test_keep_daily_leaves_gaps_that_log_steps_over(store: Store) -> None:
    ids = []
    for day in range(5):
        for hour in (1, 5, 9):
            when = (DAY0 + timedelta(days=day, hours=hour)).isoformat()
            ids.append(store.commit(state(day * 3 + hour), session="main", created_at=when).id)
    prune_now(store, daily=3)
    newest_of_day = [ids[14], ids[11], ids[8]]
    assert history(store, "main") == newest_of_day
    assert [e.history_pruned for e in store.log(limit=None)] == [2, 2, 8]
    for c in newest_of_day:
        assert store.load(c)["checkpoint_id"].startswith("ckpt-2026020")
    assert store.fsck().ok


def test_dry_run_changes_nothing_and_lists_what_a_real_run_removes(store: Store) -> None:
    commits(store, "main", 7)
    before, log = all_ids(store), store.backend.reflog()
    now = later()
    dry = store.prune(RetentionPolicy(last=2), dry_run=True, grace=0, now=now)
    assert (all_ids(store), store.backend.reflog()) == (before, log)
    assert store.backend.prune_marks() == {}
    real = store.prune(RetentionPolicy(last=2), grace=0, now=now)
    assert dry.dry_run
    assert not real.dry_run
    assert dry.removed == real.removed == 5
    assert [s.to_dict() for s in dry.sessions] == [s.to_dict() for s in real.sessions]
    assert (dry.gc.objects_removed, dry.gc.bytes_removed) == (
        real.gc.objects_removed,
        real.gc.bytes_removed,
    )


def test_pruned_checkpoints_younger_than_the_grace_period_go_later(store: Store) -> None:
    ids = commits(store, "main", 5)
    report = store.prune(RetentionPolicy(last=1))  # default grace: an hour
    assert report.removed == 4
    assert report.gc.objects_removed == 0
    assert report.gc.objects_young > 0
    assert history(store, "main") == [ids[-1]]
    assert store.load(ids[0])["variables"]["step"] == 0  # still there, just unlisted
    assert store.fsck().ok
    store.gc(grace=0, now=later())
    assert store.objects.missing([bytes.fromhex(ids[0])])
    assert store.fsck().ok


def test_default_policy_keeps_fifty(store: Store) -> None:
    ids = commits(store, "main", 53)
    report = store.prune(grace=0, now=later())
    assert report.policy == RetentionPolicy(last=50)
    assert history(store, "main") == ids[:2:-1]


def test_prune_after_gc_on_an_on_disk_store(store_dir: Path) -> None:
    with Store.open(store_dir) as store:
        commits(store, "main", 12)
        prune_now(store, last=4)
    with Store.open(store_dir) as store:  # the prune marks are stored, not cached
        log = store.log(limit=None)
        assert [e.history_pruned for e in log] == [0, 0, 0, 8]
        assert store.fsck().ok


# --- property: what survives is exactly what the policy keeps ----------------------------

POLICIES = st.builds(
    RetentionPolicy,
    last=st.none() | st.integers(0, 5),
    within=st.none() | st.integers(0, 5 * 86400).map(lambda s: timedelta(seconds=s)),
    hourly=st.integers(0, 3),
    daily=st.integers(0, 3),
    weekly=st.integers(0, 2),
)
OFFSETS = st.lists(st.integers(-2 * 86400, 3 * 86400), max_size=8)  # seconds from the last


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    POLICIES,
    st.lists(OFFSETS.filter(bool), min_size=1, max_size=3),
    st.lists(st.tuples(st.integers(0, 2), st.integers(0, 7)), max_size=2),
)
def test_prune_keeps_exactly_what_the_policy_says(
    policy: RetentionPolicy, sessions: list[list[int]], tags: list[tuple[int, int]]
) -> None:
    store = Store.memory()
    chains: dict[str, list[str]] = {}
    for n, offsets in enumerate(sessions):
        moment = DAY0
        for i, offset in enumerate(offsets):
            moment += timedelta(seconds=offset)
            when = moment.isoformat()
            info = store.commit({"variables": {"s": n, "i": i}}, session=f"s{n}", created_at=when)
            chains.setdefault(f"s{n}", []).insert(0, info.id)
    tagged = set()
    for s, i in tags:
        if s < len(chains) and i < len(chains[f"s{s}"]):
            tagged.add(chains[f"s{s}"][i])
            store.tag(f"t{len(tagged)}", chains[f"s{s}"][i], force=True)
    tagged = {info.id for info in store.tags().values()}
    expected = {}
    effective = policy.effective()
    for name, chain in chains.items():
        records = [
            CheckpointTime(bytes.fromhex(c), checkpoint_time(store.get_commit(c).created_at))
            for c in chain
        ]
        keep = {oid.hex() for oid in retention_model(effective, records)}
        expected[name] = [c for c in chain if c in keep or c in tagged or c == chain[0]]

    store.prune(policy, grace=0, now=later())
    for name in chains:
        assert history(store, name) == expected[name]
    survivors = {c for chain in expected.values() for c in chain} | tagged
    for chain in chains.values():
        for c in chain:
            if c in survivors:
                assert store.load(c)["checkpoint_id"].endswith(c[:8])
            else:
                assert store.objects.missing([bytes.fromhex(c)])
    assert store.fsck().ok
    assert all_ids(store) == reachable(store)
    again = store.prune(policy, grace=0, now=later())
    assert again.removed == 0
