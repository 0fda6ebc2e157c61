"""The Store facade: round trips, deduplication, incremental commits, refs and races."""

from __future__ import annotations

import copy
import json
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given

from ckptstore import (
    AmbiguousRevision,
    CorruptObject,
    EmptySession,
    InvalidCheckpoint,
    InvalidRefName,
    InvalidRevision,
    RevisionNotFound,
    Store,
)
from ckptstore import trees as trees_module
from ckptstore.backends.base import RefUpdate, StoredObject, WriteResult
from ckptstore.objects import Kind
from ckptstore.snapshot import write_state
from ckptstore.trees import CHUNK_MAX
from ckptstore.validation import validate_state
from strategies import checkpoints, user_fields

CHECKPOINT_ID = re.compile(r"ckpt-\d{8}-\d{6}-[0-9a-f]{8}")


def seed_state(n_tasks: int = 300) -> dict[str, Any]:
    """A checkpoint shaped like the seed's example, with ``n_tasks`` tasks."""
    return {
        "phase": {"name": "Phase 5: Agent Bootstrapping", "number": 5, "status": "in_progress"},
        "phases_completed": [1, 2, 3, 4],
        "tasks": [
            {"id": str(i), "subject": f"Task number {i}", "status": "pending", "owner": None,
             "blocks": [], "blocked_by": []}
            for i in range(n_tasks)
        ],
        "active_task_id": "2",
        "dependencies": [
            {"name": "vault", "type": "service", "status": "available",
             "endpoint": "https://127.0.0.1:8200", "last_checked": "2026-01-23T12:00:00+00:00"}
        ],
        "variables": {"custom_key": "custom_value", "step": 1},
        "recent_outputs": [{"type": "evidence", "id": "evd-1", "action": "terraform",
                            "success": True, "timestamp": "2026-01-23T11:30:00+00:00"}],
        "agent_id": "my-agent",
        "agent_tier": 1,
    }  # fmt: skip


def count_objects(store: Store) -> dict[Kind, int]:
    counts = dict.fromkeys(Kind, 0)
    for oid in store.backend.iter_ids():
        counts[Kind(store.backend.get_objects([oid])[oid].kind)] += 1
    return counts


@given(checkpoints())
def test_load_returns_what_was_committed_in_memory(state: dict[str, Any]) -> None:
    with Store.memory() as store:
        info = store.commit(state)
        assert user_fields(store.load(info.checkpoint_id)) == state


@given(checkpoints())
def test_load_returns_what_was_committed_on_disk(state: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        with Store.init(Path(tmp) / ".ckpt") as store:
            store.commit(state)
        with Store.open(Path(tmp)) as store:
            assert user_fields(store.load()) == state


def test_store_owned_fields_are_set_at_commit(store: Store) -> None:
    state = seed_state(3)
    state.update(checkpoint_id="bogus", content_hash="bogus", estimated_tokens=-5)
    first = store.commit(state, session="agent-1")
    second = store.commit(state, session="agent-1", notes="again")
    loaded = store.load()
    assert CHECKPOINT_ID.fullmatch(loaded["checkpoint_id"])
    assert loaded["checkpoint_id"] == second.checkpoint_id
    assert loaded["checkpoint_id"].endswith(second.id[:8])
    assert loaded["parent_checkpoint_id"] == first.checkpoint_id
    assert loaded["content_hash"] == second.tree == first.tree
    assert loaded["session_id"] == "agent-1"
    assert loaded["created_at"] == second.created_at
    assert loaded["estimated_tokens"] == second.estimated_tokens > 0
    assert list(loaded)[:3] == ["checkpoint_id", "created_at", "session_id"]


def test_changing_one_task_of_300_adds_only_its_tree_path_and_a_commit(store: Store) -> None:
    state = seed_state(300)
    store.commit(state)
    before = count_objects(store)
    store.objects.stats.reset()
    state["tasks"][150]["status"] = "completed"
    store.commit(state)
    after = count_objects(store)
    added = {kind: after[kind] - before[kind] for kind in Kind}
    # A task record is small enough to live inline in its leaf (no blob of its own);
    # trees: that leaf, the tasks node above it, the checkpoint root.
    assert added == {Kind.BLOB: 0, Kind.TREE: 3, Kind.COMMIT: 1}
    written = store.objects.stats.bytes_written
    json_size = len(json.dumps(state).encode())
    # Mostly the rewritten leaf, stored as a delta against the leaf it replaces.
    assert written < json_size * 0.05, (written, json_size)
    assert user_fields(store.load())["tasks"][150]["status"] == "completed"


def test_an_identical_state_records_a_commit_but_writes_no_blob_or_tree(store: Store) -> None:
    state = seed_state(50)
    first = store.commit(state)
    before = count_objects(store)
    second = store.commit(state)
    after = count_objects(store)
    assert second.id != first.id
    assert second.parents == (first.id,)
    assert {k: after[k] - before[k] for k in Kind} == {Kind.BLOB: 0, Kind.TREE: 0, Kind.COMMIT: 1}


def test_incremental_commit_keeps_the_state_and_reads_only_the_variables(store: Store) -> None:
    state = seed_state(5_000)
    store.commit(state)
    store.objects.stats.reset()
    info = store.commit(variables={"step": 7, "plan": "a plan " * 50})
    # root node + variable tree node + parent commit (+ the parent of the result)
    assert store.objects.stats.objects_read <= 5
    loaded = user_fields(store.load())
    expected = copy.deepcopy(state)
    expected["variables"].update(step=7, plan="a plan " * 50)
    assert loaded == expected
    full = write_state(validate_state(expected))
    assert info.estimated_tokens == full.tokens
    assert info.tree == full.root.hex()


def test_unset_removes_variables_and_refuses_unknown_names(store: Store) -> None:
    store.commit(seed_state(2))
    store.commit(unset=["custom_key"], variables={"new": [1, 2]})
    assert store.load()["variables"] == {"new": [1, 2], "step": 1}
    with pytest.raises(InvalidCheckpoint, match="not set"):
        store.commit(unset=["nope"])
    with pytest.raises(InvalidCheckpoint, match="not set"):
        store.commit(seed_state(2), unset=["nope"])


def test_first_commit_of_a_new_session_starts_from_an_empty_checkpoint(store: Store) -> None:
    store.commit(variables={"a": 1}, session="fresh")
    loaded = user_fields(store.load("fresh"))
    assert loaded["variables"] == {"a": 1}
    assert loaded["tasks"] == []
    assert loaded["phase"] is None


def test_session_comes_from_the_argument_else_head_never_from_the_state(store: Store) -> None:
    assert store.current_session == "main"
    store.commit({"session_id": "ignored"}, session="first")
    assert store.current_session == "first"  # HEAD followed: main was empty
    store.commit({"session_id": "ignored"}, session="explicit")
    store.commit({"session_id": "ignored"})
    assert store.sessions().keys() == {"first", "explicit"}
    assert len(store.log(session="first")) == 2
    assert store.load("explicit")["session_id"] == "explicit"


def test_a_loaded_checkpoint_committed_back_after_a_fork_lands_in_the_fork(store: Store) -> None:
    for n in range(3):
        store.commit({"variables": {"n": n}}, session="main")
    store.fork("exp", "HEAD~1", switch=True)
    state = store.load()
    state["variables"]["n"] = 99
    store.commit(state)
    assert store.load("exp")["variables"] == {"n": 99}
    assert store.load("main")["variables"] == {"n": 2}


def test_revisions_resolve_in_every_form(store: Store) -> None:
    a = store.commit(variables={"n": 1}, session="s1")
    b = store.commit(variables={"n": 2}, session="s1")
    c = store.commit(variables={"n": 3}, session="s1")
    for ref, expected in [
        ("HEAD", c), ("HEAD~1", b), ("HEAD^", b), ("HEAD~~", a), ("HEAD~2", a),
        ("s1", c), ("s1~1", b), ("sessions/s1~2", a), (b.checkpoint_id, b),
        (b.id, b), (b.id[:10], b), (f"{c.checkpoint_id}~1", b),
    ]:  # fmt: skip
        assert store.resolve(ref) == expected.id, ref
    with pytest.raises(RevisionNotFound, match="s1"):
        store.resolve("nope")
    with pytest.raises(RevisionNotFound, match="only 2"):
        store.resolve("HEAD~3")
    with pytest.raises(InvalidRevision):
        store.resolve("~1")
    wrong_time = "ckpt-19990101-000000-" + b.id[:8]
    with pytest.raises(RevisionNotFound, match="another timestamp"):
        store.resolve(wrong_time)
    with pytest.raises(RevisionNotFound, match="tree"):
        store.resolve(c.tree[:12])


def test_a_full_id_names_its_commit_before_any_ref(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = store.commit(variables={"n": 1}).id
    store.commit(variables={"n": 2}, session=first)  # a session named like a commit id
    assert store.resolve(first) == first  # as git takes a full object name first
    assert store.resolve(f"sessions/{first}") != first
    store.commit(variables={"n": 3}, session=first[:12])
    assert store.resolve(first[:12]) != first  # a short id is a name first, as before
    # A full id whose commit is cached is resolved without reading refs or objects.
    store.load(first)

    def refuse(*args: object, **kwargs: object) -> None:
        pytest.fail("the backend was read")

    for name in ("get_ref", "find_objects", "get_objects", "get_chains"):
        monkeypatch.setattr(store.backend, name, refuse)
    assert store.resolve(first) == first


def test_an_ambiguous_short_id_lists_the_candidates(store: Store) -> None:
    seen: dict[str, str] = {}
    for n in range(2_000):
        oid = store.commit(variables={"n": n}).id
        if oid[:4] in seen:
            with pytest.raises(AmbiguousRevision) as info:
                store.resolve(oid[:4])
            assert set(info.value.candidates) == {oid, seen[oid[:4]]}
            return
        seen[oid[:4]] = oid
    pytest.fail("no two of 2,000 commits shared a 4-hex prefix")


def test_empty_store_errors_say_what_to_do(store: Store) -> None:
    with pytest.raises(EmptySession, match="ckpt commit"):
        store.load()
    with pytest.raises(EmptySession):
        store.log()


@pytest.mark.parametrize(
    "name",
    [
        "a..b",
        "/x",
        "x/",
        "has space",
        "tab\there",
        "x" * 201,
        "HEAD",
        "a~1",
        "a:b",
        ".hidden",
        "x.lock",
    ],
)
def test_invalid_session_names_are_rejected_before_writing(store: Store, name: str) -> None:
    with pytest.raises(InvalidRefName):
        store.commit({}, session=name)
    assert list(store.backend.iter_ids()) == []


def test_log_walks_first_parents_newest_first(store: Store) -> None:
    infos = [store.commit(variables={"n": n}, notes=f"note {n}") for n in range(30)]
    log = store.log(limit=None)
    assert [e.id for e in log] == [i.id for i in reversed(infos)]
    assert [e.notes for e in store.log(limit=3)] == ["note 29", "note 28", "note 27"]
    assert log[0].parent_checkpoint_id == infos[-2].checkpoint_id
    assert log[-1].parent_checkpoint_id is None
    assert [e.id for e in store.log(infos[10].checkpoint_id, limit=2)] == [
        infos[10].id,
        infos[9].id,
    ]


def test_load_reads_a_tree_in_one_batch_per_level(store: Store) -> None:
    store.commit(seed_state(3_000))
    store.objects.drop_cache()
    store.objects.stats.reset()
    store.load()
    # commit, root, sections, task nodes (2 levels; the tasks live inline in the
    # leaves): a handful of round trips, independent of the number of tasks.
    assert store.objects.stats.read_batches <= 8
    assert store.objects.stats.objects_read > 3_000 // CHUNK_MAX
    store.objects.stats.reset()
    store.load()  # objects are immutable: a second load is served from the cache
    assert store.objects.stats.objects_read == 0


def test_a_load_decodes_each_leaf_once(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """A leaf read for a load alone hands its parsed records over: no second decode."""
    state = seed_state(1_000)
    state["variables"] = {f"v{i}": i for i in range(100)}
    store.commit(state)
    decoded: list[bytes] = []
    for name in ("decode_trusted", "decode_again"):
        real = getattr(trees_module, name)
        monkeypatch.setattr(
            trees_module, name, lambda data, real=real: decoded.append(data) or real(data)
        )
    for attempt in range(2):  # cold (a fresh process), then with what that load remembered
        if attempt == 0:
            trees_module._PARSED.clear()
        store.objects.drop_cache()
        decoded.clear()
        loaded = store.load()
        assert len(decoded) > 1_000 // CHUNK_MAX
        assert len(decoded) == len(set(decoded)), f"attempt {attempt}: a node decoded twice"
        assert loaded["tasks"] == user_fields(state)["tasks"]
        loaded["tasks"][0]["status"] = "changed"  # the caller's own, not a remembered node's
    assert store.load()["tasks"][0]["status"] == state["tasks"][0]["status"]


def test_a_codec_that_corrupts_its_output_fails_the_commit_before_anything_is_visible(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.commit(seed_state(3))
    ids_before = set(store.backend.iter_ids())
    head_before = store.resolve()
    real = store.objects.codec.compress

    def broken(data: bytes) -> tuple[int, bytes]:
        codec, payload = real(data)
        return codec, payload[:-1] + bytes([payload[-1] ^ 1])

    monkeypatch.setattr(store.objects.codec, "compress", broken)
    with pytest.raises(CorruptObject, match="round-trip"):
        store.commit(seed_state(4))
    assert set(store.backend.iter_ids()) == ids_before
    assert store.resolve() == head_before


def test_a_commit_that_loses_a_race_is_rebuilt_on_the_new_head(store: Store) -> None:
    store.commit(variables={"n": 0})
    real_write = store.backend.write
    raced: list[str] = []

    def racing_write(
        objects: list[StoredObject], updates: list[RefUpdate], *, require: list[bytes] = ()
    ) -> WriteResult:
        if not raced:  # another writer gets in first, once
            raced.append("")
            store.backend.write = real_write  # type: ignore[method-assign]
            raced[0] = Store(store.backend).commit(variables={"other": True}).id
        return real_write(objects, updates, require=require)

    store.backend.write = racing_write  # type: ignore[method-assign]
    mine = store.commit(variables={"n": 1})
    assert mine.parents == (raced[0],)
    assert store.load()["variables"] == {"n": 1, "other": True}
    entries = store.backend.reflog("sessions/main")
    assert [e.new.hex() for e in entries if e.new] == [mine.id, raced[0], entries[-1].new.hex()]


def test_a_reused_object_deleted_before_the_write_is_written_again(store: Store) -> None:
    state = seed_state(100)
    store.commit(state)
    real_write = store.backend.write
    deleted: list[int] = []

    def collecting_write(
        objects: list[StoredObject], updates: list[RefUpdate], *, require: list[bytes] = ()
    ) -> WriteResult:
        if not deleted:  # a concurrent gc removes what this commit meant to reuse
            deleted.append(store.backend.delete_objects(list(require)))
        return real_write(objects, updates, require=require)

    store.backend.write = collecting_write  # type: ignore[method-assign]
    state["tasks"][0]["status"] = "completed"
    store.commit(state, session="other")
    assert deleted[0] > 0
    assert user_fields(store.load("other")) == state


def test_a_loaded_checkpoint_is_the_callers_to_change(tmp_path: Path) -> None:
    """Tree nodes are remembered across reads; what a read returns must not alias them."""
    with Store.init(tmp_path / ".ckpt") as store:
        store.commit({"phases_completed": [1, 2], "variables": {"small": {"a": [1]}}})
        first = store.load()
        first["phases_completed"].append(3)
        first["variables"]["small"]["a"].append(2)
        shown = store.show("HEAD", "variables.small")
        shown["a"].append(9)
        again = store.load()
        assert again["phases_completed"] == [1, 2]
        assert again["variables"]["small"] == {"a": [1]}
        assert store.show("HEAD", "variables.small") == {"a": [1]}


def test_loaded_records_come_in_the_seed_field_order_and_belong_to_the_caller() -> None:
    # Storage sorts keys; a load puts the seed's fields first, in its order, then the
    # rest: for inline records and for records big enough to be blobs alike.
    store = Store.memory()
    small = {"status": "pending", "zeta": [1, {"b": 2}], "subject": "s", "id": 1}
    big = {"blocked_by": [], "subject": "x" * 400, "id": 2, "extra": True, "status": "done"}
    state = {
        "phase": {"status": "in_progress", "name": "Build", "number": 1},
        "tasks": [small, big],
        "recent_outputs": [{"success": True, "type": "test", "action": "unit", "id": "o1"}],
    }
    store.commit(state)
    loaded = store.load()
    assert list(loaded["phase"]) == ["name", "number", "status"]
    assert [list(t) for t in loaded["tasks"]] == [
        ["id", "subject", "status", "zeta"],
        ["id", "subject", "status", "blocked_by", "extra"],
    ]
    assert list(loaded["recent_outputs"][0]) == ["type", "id", "action", "success"]
    assert loaded["tasks"] == [small, big]
    loaded["tasks"][0]["zeta"][1]["b"] = 99  # the caller's copy, not the store's
    loaded["phase"]["name"] = "changed"
    again = store.load()
    assert again["tasks"][0]["zeta"] == [1, {"b": 2}]
    assert again["phase"]["name"] == "Build"


def test_loaded_records_are_never_shared_even_where_the_store_shares_them() -> None:
    # 256 equal records: the list is cut into leaves of at most 128 entries, so the same
    # leaf comes twice (or, should the record's hash mark a boundary, 256 times). Every
    # record has exactly the seed's task fields (the one-step ordering path).
    record = {"id": "t", "subject": "s", "status": "pending", "owner": "o", "blocks": [],
              "blocked_by": ["u"]}  # fmt: skip
    store = Store.memory()
    info = store.commit({"tasks": [record] * 256})
    for _ in range(2):  # the first load parses the leaves, the second finds them known
        tasks = store.load(info.checkpoint_id)["tasks"]
        assert tasks == [record] * 256
        assert list(tasks[0]) == list(record)
        assert len({id(t["blocked_by"]) for t in tasks}) == 256
        tasks[0]["blocked_by"].append("changed")
    other = store.commit({"tasks": [record] * 255 + [dict(record, id="x")]})
    assert store.diff(info.checkpoint_id, other.checkpoint_id)  # remembers the nodes
    tasks = store.load(info.checkpoint_id)["tasks"]
    assert len({id(t["blocked_by"]) for t in tasks}) == 256
    assert tasks[0]["blocked_by"] == ["u"]


def test_a_commit_reads_nothing_back_that_the_previous_commit_wrote() -> None:
    # The next commit pairs its objects with the parent's and deltas against them; the
    # parent's were written by this process, so they come from its cache.
    store = Store.memory()
    state = seed_state(300)
    state["variables"] = {"plan": "step one of the plan; " * 400, "n": 0}
    store.commit(state)
    for n in range(1, 4):
        state["tasks"][n * 7]["status"] = "completed"
        state["variables"]["plan"] += f" step {n} added."
        state["variables"]["n"] = n
        store.objects.stats.reset()
        store.commit(state)
        assert store.objects.stats.objects_read == 0, store.objects.stats
        assert store.objects.stats.objects_written >= 4  # deltas of the changed nodes
    assert store.load()["variables"]["n"] == 3
    assert Store(store.backend).load() == store.load()


def test_a_commit_parses_each_of_its_new_tree_nodes_at_most_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The delta pairing and the check of what the new nodes link to share one parse."""
    store = Store.memory()
    state = seed_state(300)
    store.commit(state)
    parsed: list[bytes] = []
    real = trees_module.decode_trusted  # what parsing a node decodes with, however reached

    def counted(data: bytes) -> Any:
        parsed.append(data)
        return real(data)

    monkeypatch.setattr(trees_module, "decode_trusted", counted)
    for n in range(1, 4):
        state["tasks"][n * 50]["status"] = "completed"
        parsed.clear()
        store.commit(state)
        assert parsed, "the commit parsed no node at all: the test no longer sees parsing"
        assert len(parsed) == len(set(parsed)), f"{len(parsed) - len(set(parsed))} parsed twice"
