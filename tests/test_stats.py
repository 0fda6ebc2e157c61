"""stats: counts, bytes as JSON against bytes stored, and the largest values."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ckptstore import RetentionPolicy, Store
from ckptstore.commits import iter_history
from ckptstore.integrations.lg_threads import (
    EARLY,
    PUT,
    WRITES,
    ThreadIndex,
    event_notes,
    parse_notes,
    parse_session,
    session_name,
    thread_sessions,
)
from storetools import later, make_garbage, publish_event, reachable, state
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


# --- stores written through the LangGraph saver ------------------------------------------


def thread_checkpoints(store: Store) -> set[str]:
    """The commits the saver's own index takes for checkpoints (no LangGraph needed)."""
    index = ThreadIndex(store.objects, store.refs)
    return {
        event.commit.hex()
        for session in thread_sessions(store.refs)
        for event in index.events(session).values()
        if event.kind != EARLY
    }


def every_commit(store: Store) -> set[str]:
    return {info.id for s in store.sessions() for info in store.log(session=s, limit=None)}


def test_langgraph_events_are_not_counted_as_checkpoints(store: Store) -> None:
    store.commit(state(0), session="main")
    store.commit(state(1), session="main")
    values = {"messages": ["hello " * 40], "step": 1}
    publish_event(store, "t", PUT, "c1", values)
    publish_event(store, "t", WRITES, "c1", values, [("messages", "a")])
    publish_event(store, "t", WRITES, "c1", values, [("messages", "a"), ("step", 2)])
    early = [("messages", "early")]
    publish_event(store, "t", EARLY, "c2", writes=early)  # saved before its checkpoint
    publish_event(store, "t", PUT, "c2", {**values, "step": 2}, early)
    publish_event(store, "t", WRITES, "c2", {**values, "step": 2}, [*early, ("x", 1)])
    publish_event(store, "t", PUT, "c3", {**values, "step": 3})
    publish_event(store, "t", EARLY, "c4", writes=[("messages", "never put")])
    publish_event(store, "u/1", PUT, "c1", {"other": "thread"})

    newest = thread_checkpoints(store)
    assert len(newest) == 4  # t: c1, c2, c3 (c4 has only early writes); u/1: c1
    plain = {info.id for info in store.log(session="main", limit=None)}
    stats = store.stats()
    assert stats.checkpoints == len(plain) + len(newest) == 6
    assert stats.events == len(every_commit(store)) - 6 == 5  # one per put_writes call
    assert stats.logical_bytes == sum(compact(store.load(c)) for c in plain | newest)
    # The events' objects are still stored: unique and stored bytes count them.
    rows = store.backend.get_objects(list(reachable(store))).values()
    assert stats.unique_bytes == sum(o.raw_len for o in rows)
    data = stats.to_dict()
    assert (data["checkpoints"], data["events"]) == (6, 5)
    assert data["logical_bytes"] == stats.logical_bytes


def test_a_tag_or_a_copied_thread_names_its_own_checkpoints(store: Store) -> None:
    first = publish_event(store, "t", PUT, "c1", {"n": 1})
    publish_event(store, "t", WRITES, "c1", {"n": 1}, [("n", 2)])
    publish_event(store, "t", PUT, "c2", {"n": 2})
    assert (store.stats().checkpoints, store.stats().events) == (2, 1)
    store.tag("before-writes", first)  # the older state of c1 is pinned: one more checkpoint
    assert (store.stats().checkpoints, store.stats().events) == (3, 0)
    head = store.backend.get_ref("sessions/langgraph/t")
    store.fork("langgraph/copy", "langgraph/t")  # what copy_thread writes: a ref, no commits
    assert (store.stats().checkpoints, store.stats().events) == (3, 0)
    publish_event(store, "copy", WRITES, "c2", {"n": 2}, [("n", 3)])
    # c2 with that write is the copy's state; t's c2 is still t's checkpoint.
    stats = store.stats()
    assert (stats.checkpoints, stats.events) == (4, 0)
    assert store.backend.get_ref("sessions/langgraph/t") == head
    loads = [store.load(c) for c in brute_force(store)[0]]
    assert stats.logical_bytes == sum(compact(c) for c in loads)


def test_notes_that_read_like_an_event_outside_a_langgraph_session(store: Store) -> None:
    for i in range(3):
        store.commit(state(i), session="main", notes=event_notes(WRITES, "c1", f"n{i}"))
    stats = store.stats()
    assert (stats.checkpoints, stats.events) == (3, 0)
    assert stats.to_dict()["events"] == 0


def brute_force(store: Store) -> tuple[set[str], set[str]]:
    """(checkpoints, events): every ref's whole history walked, the saver's rule applied."""
    kinds: dict[str, tuple[str, str] | None] = {}
    current: set[str] = set()
    for head in store.backend.list_refs().values():
        newest: set[str] = set()
        for info in iter_history(store.objects, head):
            parsed = parse_notes(info.notes) if parse_session(info.session) else None
            kinds[info.id] = parsed
            if parsed is not None and parsed[1] not in newest:
                newest.add(parsed[1])
                if parsed[0] != EARLY:
                    current.add(info.id)
    checkpoints = {c for c, parsed in kinds.items() if parsed is None or c in current}
    return checkpoints, set(kinds) - checkpoints


THREADS = st.sampled_from(["a", "b", "c"])
OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("put"), THREADS, st.sampled_from(["1", "2", "3"])),
        st.tuples(st.just("writes"), THREADS, st.sampled_from(["1", "2", "3"])),
        st.tuples(st.just("copy"), THREADS, THREADS),
        st.tuples(st.just("tag"), THREADS, st.integers(0, 4)),
        st.tuples(st.just("plain"), st.integers(0, 3), st.just("")),
    ),
    max_size=30,
)


@given(OPERATIONS)
def test_counts_agree_with_every_history_walked_whole(operations: list[tuple[Any, ...]]) -> None:
    store = Store.memory()
    # Per thread, per checkpoint id: (stored yet, pending writes), as the saver tracks it.
    model: dict[str, dict[str, tuple[bool, list[tuple[str, Any]]]]] = {}
    for n, (op, x, y) in enumerate(operations):
        if op in ("put", "writes"):
            checkpoints = model.setdefault(x, {})
            stored, writes = checkpoints.get(y, (False, []))
            values = {"id": y, "text": f"checkpoint {y} " * 20, "n": n}
            if op == "put":
                publish_event(store, x, PUT, y, values, writes)
                checkpoints[y] = (True, writes)
            else:
                writes = [*writes, (f"ch{n}", "w" * n)]
                publish_event(store, x, WRITES if stored else EARLY, y, values, writes)
                checkpoints[y] = (stored, writes)
        elif op == "copy" and x in model and y not in model:
            store.fork(session_name(y), session_name(x))
            model[y] = {c: (s, list(w)) for c, (s, w) in model[x].items()}
        elif op == "tag" and x in model:
            history = store.log(session=session_name(x), limit=None)
            store.tag(f"t{n}", history[min(y, len(history) - 1)].id)
        elif op == "plain":
            store.commit(state(x), session="main")
    checkpoints, events = brute_force(store)
    stats = store.stats()
    assert (stats.checkpoints, stats.events) == (len(checkpoints), len(events))
    assert stats.logical_bytes == sum(compact(store.load(c)) for c in checkpoints)
