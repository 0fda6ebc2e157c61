"""stats: counts, bytes as JSON against bytes stored, and the largest values."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ckptstore import RetentionPolicy, Store
from storetools import later, make_garbage, reachable, state
from strategies import checkpoints


def compact(value: object) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(checkpoints(max_tasks=70), min_size=1, max_size=4), st.booleans())
def test_logical_bytes_are_the_checkpoints_as_json(states: list[dict], fork: bool) -> None:
    store = Store.memory()
    for i, given_state in enumerate(states):
        store.commit(given_state, session="a", notes=f"n{i}")
    if fork:
        store.fork("b", "a")
        store.commit(variables={"forked": True}, session="b")
    everything = {info.id for s in store.sessions() for info in store.log(session=s, limit=None)}
    stats = store.stats()
    assert stats.checkpoints == len(everything)
    assert stats.logical_bytes == sum(compact(store.load(c)) for c in everything)


def with_bases(store: Store, ids: set[bytes]) -> set[bytes]:
    """``ids`` and, transitively, the objects they are stored against."""
    out, frontier = set(ids), list(ids)
    while frontier:
        rows = store.backend.get_objects(frontier).values()
        frontier = list({o.base for o in rows if o.base is not None and o.base not in out})
        out.update(frontier)
    return out


def test_counts_and_ratios(store: Store) -> None:
    for i in range(40):
        store.commit(state(i, tasks=60), session="main")
    store.fork("side", "main~5")
    store.commit(state(100), session="side")
    store.tag("v1", "main~3")
    make_garbage(store, count=2)
    stats = store.stats()
    assert (stats.sessions, stats.tags, stats.checkpoints) == (2, 1, 41)
    usage = store.backend.usage().kinds
    assert stats.objects == {
        {1: "blob", 2: "tree", 3: "commit"}[k]: {
            "count": u.objects,
            "stored_bytes": u.stored_bytes,
            "raw_bytes": u.raw_bytes,
        }
        for k, u in usage.items()
    }
    live = reachable(store)
    rows = store.backend.get_objects(list(live)).values()
    assert stats.unique_bytes == sum(o.raw_len for o in rows)
    # Stored bytes also count what the live objects are compressed against (each once).
    needed = with_bases(store, live)
    assert needed >= live
    stored_rows = store.backend.get_objects(list(needed)).values()
    assert stats.stored_bytes == sum(len(o.data) for o in stored_rows)
    # 41 checkpoints of 60 tasks, one changing each time: the task records live inline in
    # leaves, so a changed leaf repeats its unchanged records (little dedup of raw bytes)
    # and is stored as a delta against the leaf it replaces (compression takes it back).
    assert stats.dedup_ratio > 1
    assert stats.compression_ratio > 4
    assert stats.total_ratio > 8
    assert abs(stats.total_ratio - stats.dedup_ratio * stats.compression_ratio) < 1e-6
    data = stats.to_dict()
    assert data["checkpoints"] == 41
    assert data["disk_bytes"] == store.backend.usage().disk_bytes


def test_largest_values_name_their_path(store: Store) -> None:
    big = {"lines": ["x" * 50] * 200}
    store.commit(
        {
            "variables": {"big": big, "small": "y" * 60},
            "tasks": [{"id": "1", "subject": "z" * 900}],
        },
        session="main",
    )
    store.commit(variables={"other": 1}, session="main")
    top = store.stats(top=2).largest
    assert [(e.path, e.json_bytes) for e in top] == [
        ("variables.big", compact(big)),
        ("tasks[0]", compact({"id": "1", "subject": "z" * 900})),
    ]
    assert top[0].checkpoint_id == store.log()[0].checkpoint_id  # met first, newest first
    assert store.stats(top=0).largest == []


def test_stats_count_only_what_prune_kept(store: Store) -> None:
    for i in range(10):
        store.commit(state(i), session="main")
    store.prune(RetentionPolicy(last=3), grace=0, now=later())
    stats = store.stats()
    assert stats.checkpoints == 3
    assert stats.logical_bytes == sum(compact(store.load(i.id)) for i in store.log(limit=None))


def test_an_empty_store(store: Store) -> None:
    stats = store.stats()
    assert (stats.checkpoints, stats.logical_bytes, stats.stored_bytes) == (0, 0, 0)
    assert (stats.dedup_ratio, stats.compression_ratio, stats.total_ratio) == (0.0, 0.0, 0.0)
