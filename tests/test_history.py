"""Log filters, per-value history, paths into checkpoints, sessions and tags (library level)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ckptstore import (
    InvalidDuration,
    InvalidPath,
    InvalidRefName,
    PathNotFound,
    RefExists,
    RevisionNotFound,
    Store,
)
from ckptstore.history import parse_moment
from ckptstore.paths import format_path, parse_path
from ckptstore.records import forget_all


def stamp(minutes: int) -> str:
    return (datetime(2026, 1, 23, 12, 0, tzinfo=UTC) + timedelta(minutes=minutes)).isoformat()


@pytest.fixture
def timeline(store: Store) -> Store:
    """Two sessions committed at known times: a0..a4 every 10 minutes, b0..b2 in between."""
    for i in range(5):
        store.commit({"variables": {"i": i}}, session="a", notes=f"a{i}", created_at=stamp(10 * i))
    for i in range(3):
        store.commit(
            {"variables": {"j": i}}, session="b", notes=f"b{i} deploy", created_at=stamp(10 * i + 5)
        )
    return store


def notes(entries: list[Any]) -> list[str]:
    return [e.notes for e in entries]


def test_log_of_all_sessions_is_merged_by_time(timeline: Store) -> None:
    assert notes(timeline.log(all_sessions=True, limit=None)) == [
        "a4", "a3", "b2 deploy", "a2", "b1 deploy", "a1", "b0 deploy", "a0",
    ]  # fmt: skip


def test_log_since_until_and_grep_filter(timeline: Store) -> None:
    since, until = stamp(12), stamp(31)
    assert notes(timeline.log(session="a", since=since, until=until, limit=None)) == ["a3", "a2"]
    assert notes(timeline.log(all_sessions=True, grep="DEPLOY", limit=2)) == [
        "b2 deploy",
        "b1 deploy",
    ]
    now = datetime(2026, 1, 23, 12, 0, tzinfo=UTC) + timedelta(minutes=41)
    assert parse_moment("2m", now=now) == now - timedelta(minutes=2)
    assert notes(timeline.log(session="a", since=parse_moment("12m", now=now), limit=None)) == [
        "a4",
        "a3",
    ]


@pytest.mark.parametrize("bad", ["yesterday", "2x", "", "-3d"])
def test_bad_times_are_rejected(timeline: Store, bad: str) -> None:
    with pytest.raises(InvalidDuration):
        timeline.log(since=bad)


def test_forked_sessions_share_history_and_list_it_once(store: Store) -> None:
    for i in range(3):
        store.commit({"variables": {"i": i}}, session="main")
    before = set(store.backend.iter_ids())
    fork = store.fork("experiment", "HEAD~1")
    assert set(store.backend.iter_ids()) == before  # O(1): only a ref
    store.commit(variables={"x": True}, session="experiment")
    assert len(store.log(all_sessions=True, limit=None)) == 4
    assert [e.id for e in store.log(session="experiment", limit=None)][1:] == [
        fork.id, *[e.id for e in store.log(session="main", limit=None)][2:],
    ]  # fmt: skip
    assert store.load("experiment")["variables"] == {"i": 1, "x": True}
    assert store.load("main")["variables"] == {"i": 2}
    listed = {s.name: s for s in store.session_list()}
    assert listed["main"].head.generation == 3
    assert listed["experiment"].head.generation == 3
    with pytest.raises(RefExists):
        store.fork("experiment")


def test_fork_switch_and_session_errors(store: Store) -> None:
    store.commit({}, session="main")
    store.fork("other", switch=True)
    assert store.current_session == "other"
    store.switch("main")
    assert store.current_session == "main"
    with pytest.raises(RevisionNotFound):
        store.switch("nope")
    with pytest.raises(InvalidRefName):
        store.fork("bad name")


def test_tags_name_checkpoints_and_can_move_only_with_force(store: Store) -> None:
    first = store.commit({"variables": {"v": 1}})
    second = store.commit({"variables": {"v": 2}})
    store.tag("release", first.checkpoint_id)
    assert store.resolve("release") == first.id
    assert store.load("tags/release")["variables"] == {"v": 1}
    with pytest.raises(RefExists):
        store.tag("release")
    store.tag("release", force=True)
    assert store.tags()["release"].id == second.id
    store.delete_tag("release")
    assert store.tags() == {}
    with pytest.raises(RevisionNotFound):
        store.delete_tag("release")


@pytest.fixture
def evolving(store: Store) -> Store:
    """Ten checkpoints; the plan changes at 3 and 7, task 2's status at 5, the phase at 8."""
    state: dict[str, Any] = {
        "phase": {"name": "P1", "number": 1},
        "tasks": [{"id": "1", "status": "pending"}, {"id": "2", "status": "pending"}],
        "variables": {"plan": "v0", "step": 0, "other": 0},
        "agent_tier": 1,
    }
    for i in range(10):
        state["variables"]["step"] = i
        if i in (3, 7):
            state["variables"]["plan"] = f"v{i}"
        if i == 5:
            state["tasks"][1]["status"] = "done"
        if i == 8:
            state["phase"] = {"name": "P2", "number": 2}
        store.commit(state, notes=f"c{i}")
    return store


def test_history_of_a_variable_lists_only_the_checkpoints_that_changed_it(evolving: Store) -> None:
    found = evolving.history("variables.plan", limit=None)
    assert [f.commit.notes for f in found] == ["c7", "c3", "c0"]
    assert [(c.old, c.new) for f in found for c in f.changes] == [
        ("v3", "v7"),
        ("v0", "v3"),
        (None, "v0"),
    ]
    assert [f.commit.notes for f in evolving.history("tasks.2.status", limit=None)] == ["c5", "c0"]
    assert [f.commit.notes for f in evolving.history("tasks.1", limit=None)] == ["c0"]
    assert [f.commit.notes for f in evolving.history("phase", limit=None)] == ["c8", "c0"]
    assert [f.commit.notes for f in evolving.history("agent_tier", limit=None)] == ["c0"]
    assert [f.commit.notes for f in evolving.history("variables.plan", limit=1)] == ["c7"]


def test_history_skips_unchanged_sections_without_decoding_them(store: Store) -> None:
    big = {
        "tasks": [{"id": str(i), "subject": "x" * 40} for i in range(2_000)],
        "variables": {"n": 0},
    }
    for i in range(30):
        big["variables"]["n"] = i
        store.commit(big)
    store.objects.stats.reset()
    assert store.history("tasks.7", limit=None)[0].commit.generation == 1
    # 30 commits + per commit the two root nodes; the 2,000 tasks are read once (the first)
    assert store.objects.stats.objects_read < 30 * 4 + 2_200


def test_show_reads_one_value_by_path(evolving: Store) -> None:
    assert evolving.show("HEAD", "variables.plan") == "v7"
    assert evolving.show("HEAD~5", "variables.plan") == "v3"
    assert evolving.show("HEAD", "tasks.2.status") == "done"
    assert evolving.show("HEAD", "tasks") == [
        {"id": "1", "status": "pending"},
        {"id": "2", "status": "done"},
    ]
    assert evolving.show("HEAD", "phase.name") == "P2"
    assert evolving.show("HEAD", "agent_tier") == 1
    assert evolving.show("HEAD", "meta.agent_tier") == 1
    assert evolving.show("HEAD", "checkpoint_id").startswith("ckpt-")
    with pytest.raises(PathNotFound, match="known: other, plan, step"):
        evolving.show("HEAD", "variables.nope")
    with pytest.raises(PathNotFound, match="no task"):
        evolving.show("HEAD", "tasks.99")
    with pytest.raises(PathNotFound):
        evolving.show("HEAD", "tasks.1.nope")


def test_show_descends_large_variable_maps_without_loading_them(store: Store) -> None:
    store.commit({"variables": {f"k{i:05d}": i for i in range(5_000)} | {"a.b": "dotted"}})
    store.objects.stats.reset()
    assert store.show("HEAD", "variables.k04321") == 4321
    assert store.objects.stats.objects_read <= 8
    assert store.show("HEAD", 'variables."a.b"') == "dotted"


@pytest.mark.parametrize(
    ("text", "segments"),
    [("variables.plan", ("variables", "plan")), ('variables."a.b".c', ("variables", "a.b", "c")),
     ('x."q\\"uote"', ("x", 'q"uote')), ("tasks.42.status", ("tasks", "42", "status"))],
)  # fmt: skip
def test_paths_parse_and_format_back(text: str, segments: tuple[str, ...]) -> None:
    assert parse_path(text) == segments
    assert parse_path(format_path(segments)) == segments


@pytest.mark.parametrize("bad", ["", "variables.", ".x", 'variables."open', "a..b"])
def test_malformed_paths_are_rejected(bad: str) -> None:
    with pytest.raises(InvalidPath):
        parse_path(bad)


def test_ancestry_refs_follow_the_log_across_a_prune_cut(store: Store) -> None:
    import time

    from ckptstore import RetentionPolicy

    for i in range(8):
        store.commit(variables={"i": i})
    store.prune(RetentionPolicy(last=3), grace=0, now=time.time() + 5)
    assert store.load("HEAD~2")["variables"] == {"i": 5}
    assert [c.key for c in store.diff("HEAD~2", "HEAD")] == ["i"]
    with pytest.raises(RevisionNotFound, match="pruned"):
        store.load("HEAD~3")


@contextmanager
def inline_max(monkeypatch: pytest.MonkeyPatch, size: int) -> Iterator[None]:
    """Write as an older version did, which inlined values up to ``size`` bytes only.

    The record memo is emptied on the way in and out: it remembers how a record was
    written, and the size is a constant of the format everywhere but here.
    """
    forget_all()
    with monkeypatch.context() as patch:
        patch.setattr("ckptstore.tree_build.INLINE_MAX", size)
        yield
    forget_all()


def test_values_written_inline_or_as_blobs_compare_equal(monkeypatch: pytest.MonkeyPatch) -> None:
    """How small a value must be to live inline changed once (32 -> 256 bytes): the same
    state written both ways diffs empty, and a value's history skips the change."""
    state = {
        "tasks": [{"id": str(i), "subject": f"task {i} of a long session", "status": "pending"}
                  for i in range(80)],
        "variables": {f"v{i}": "x" * 60 for i in range(70)},
    }  # fmt: skip
    store = Store.memory()
    with inline_max(monkeypatch, 32):
        old = store.commit(state)
    new = store.commit(state)
    assert old.tree != new.tree  # the records are blobs in one, inline in the other
    assert store.diff(old.id, new.id) == []
    assert store.load(old.id)["tasks"] == store.load(new.id)["tasks"]
    assert [h.commit.id for h in store.history("tasks.5")] == [old.id]
    assert [h.commit.id for h in store.history("variables.v3")] == [old.id]
    state["tasks"][5]["status"] = "completed"
    (change,) = store.diff(new.id, store.commit(state).id)
    assert (change.key, change.field, change.new) == ("5", "status", "completed")


def test_a_list_mixing_both_forms_diffs_by_value(monkeypatch: pytest.MonkeyPatch) -> None:
    """An entry inserted before records written in the other form: one addition, no moves."""
    state = {"tasks": [{"id": str(i), "subject": "x" * 50} for i in range(40)]}
    store = Store.memory()
    with inline_max(monkeypatch, 32):
        old = store.commit(state)
    state["tasks"].insert(3, {"id": "new", "subject": "y"})
    (change,) = store.diff(old.id, store.commit(state).id)
    assert (change.op, change.key, change.new_index) == ("added", "new", 3)
