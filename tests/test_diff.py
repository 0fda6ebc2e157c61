"""Structural diff: completeness, agreement with naive diffs, and cost at scale."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ckptstore import Store
from ckptstore.backends.memory import MemoryBackend
from ckptstore.diff import Change, apply_changes, diff_states
from ckptstore.objects import encode
from ckptstore.objectstore import ObjectStore
from ckptstore.snapshot import validate_state, write_state
from ckptstore.treediff import diff_trees
from strategies import KEYS, checkpoints, json_values


def put(store: ObjectStore, state: dict[str, Any]) -> bytes:
    built = write_state(validate_state(state))
    new = store.missing(built.pending)
    store.backend.write(store.prepare({k: built.pending[k] for k in new}))
    return built.root


@st.composite
def edited_pairs(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """A checkpoint and a version of it with a few realistic edits."""
    old = draw(checkpoints(max_tasks=30))
    new = copy.deepcopy(old)
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(
            st.sampled_from(["task", "insert", "delete", "move", "var", "unset", "out", "meta"])
        )
        tasks = new.setdefault("tasks", [])
        if kind == "task" and tasks:
            task = tasks[draw(st.integers(0, len(tasks) - 1))]
            name = draw(st.sampled_from(["status", "owner", "subject", "extra"]))
            values = json_values(3) if name == "extra" else st.none() | st.text(max_size=8)
            task[name] = draw(values)
        elif kind == "insert":
            tasks.insert(
                draw(st.integers(0, len(tasks))),
                {"id": draw(st.text("abc", min_size=1, max_size=3))},
            )
        elif kind == "delete" and tasks:
            del tasks[draw(st.integers(0, len(tasks) - 1))]
        elif kind == "move" and len(tasks) > 1:
            tasks.append(tasks.pop(draw(st.integers(0, len(tasks) - 2))))
        elif kind == "var":
            new.setdefault("variables", {})[draw(KEYS)] = draw(json_values(4))
        elif kind == "unset" and new.get("variables"):
            del new["variables"][draw(st.sampled_from(sorted(new["variables"])))]
        elif kind == "out":
            outputs = new.setdefault("recent_outputs", [])
            new["recent_outputs"] = [*outputs[1:], draw(json_values(3))]
        elif kind == "meta":
            new["agent_tier"] = draw(st.none() | st.integers(0, 5))
    return old, new


def canonical_state(state: dict[str, Any]) -> bytes:
    return encode(validate_state(state))


@given(edited_pairs())
def test_applying_the_diff_to_the_old_state_gives_the_new_one(
    pair: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    old, new = (validate_state(s) for s in pair)
    assert canonical_state(apply_changes(old, diff_states(old, new))) == canonical_state(new)


@given(checkpoints(), checkpoints())
def test_applying_the_diff_works_for_unrelated_states(a: dict[str, Any], b: dict[str, Any]) -> None:
    old, new = validate_state(a), validate_state(b)
    assert canonical_state(apply_changes(old, diff_states(old, new))) == canonical_state(new)


@given(checkpoints())
def test_a_state_has_no_diff_with_itself(state: dict[str, Any]) -> None:
    canon = validate_state(state)
    assert diff_states(canon, canon) == []
    store = ObjectStore(MemoryBackend())
    root = put(store, state)
    assert diff_trees(store, root, root) == []


@given(edited_pairs())
def test_the_tree_walk_finds_exactly_the_state_diff(
    pair: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    store = ObjectStore(MemoryBackend())
    roots = [put(store, s) for s in pair]
    assert diff_trees(store, *roots) == diff_states(*(validate_state(s) for s in pair))


@given(checkpoints(), checkpoints())
def test_the_tree_walk_agrees_on_unrelated_states(a: dict[str, Any], b: dict[str, Any]) -> None:
    store = ObjectStore(MemoryBackend())
    assert diff_trees(store, put(store, a), put(store, b)) == diff_states(
        validate_state(a), validate_state(b)
    )


def _naive_by_key(old: dict[str, Any], new: dict[str, Any]) -> set[str]:
    """The keys whose values differ, compared dict by dict (the independent oracle)."""
    return {
        k
        for k in old.keys() | new.keys()
        if k not in old or k not in new or encode(old[k]) != encode(new[k])
    }


@given(edited_pairs())
def test_changed_variables_and_meta_fields_agree_with_a_naive_dict_diff(
    pair: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    old, new = (validate_state(s) for s in pair)
    changes = diff_states(old, new)
    reported = {c.key for c in changes if c.section == "variables" and c.key is not None}
    whole = any(c.section == "variables" and c.key is None for c in changes)
    if not whole:
        assert reported == _naive_by_key(old.get("variables", {}), new.get("variables", {}))
    meta_fields = ("agent_id", "agent_tier", "active_task_id", "phases_completed")
    naive_meta = {
        f
        for f in meta_fields
        if (f in old) != (f in new) or (f in old and encode(old[f]) != encode(new[f]))
    }
    assert {c.key for c in changes if c.section == "meta"} >= naive_meta


def _unique_tasks(n: int) -> list[dict[str, Any]]:
    return [{"id": str(i), "subject": f"task {i}", "status": "pending"} for i in range(n)]


@given(st.data())
def test_changed_task_ids_agree_with_a_naive_by_id_diff(data: st.DataObject) -> None:
    old = {"tasks": _unique_tasks(data.draw(st.integers(1, 60)))}
    new = copy.deepcopy(old)
    for task in data.draw(st.lists(st.sampled_from(new["tasks"]), max_size=5, unique_by=id)):
        task["status"] = data.draw(st.sampled_from(["pending", "in_progress", "completed"]))
    changes = diff_states(old, new)
    naive = {o["id"] for o, n in zip(old["tasks"], new["tasks"], strict=True) if o != n}
    assert {c.key for c in changes} == naive
    assert all(c.op == "changed" and c.field == "status" for c in changes)


def test_each_section_reports_what_the_seed_promises() -> None:
    old = {
        "phase": {"name": "P5", "number": 5, "status": "in_progress"},
        "tasks": [
            {"id": "1", "status": "pending", "owner": None},
            {"id": "2", "status": "pending"},
        ],
        "dependencies": [{"name": "vault", "status": "available", "last_checked": "t1"}],
        "variables": {"keep": 1, "edit": "a", "drop": True},
        "recent_outputs": [{"id": "o1"}, {"id": "o2"}],
        "agent_tier": 1,
        "custom": "x",
    }
    new = copy.deepcopy(old)
    new["phase"]["status"] = "completed"
    new["tasks"][0].update(status="in_progress", owner="agent-7")
    new["tasks"].append({"id": "3", "status": "pending"})
    del new["tasks"][1]
    new["dependencies"][0].update(status="unavailable", last_checked="t2")
    new["variables"].update(edit="b", added=[1])
    del new["variables"]["drop"]
    new["recent_outputs"] = [{"id": "o2"}, {"id": "o3"}]
    new["agent_tier"] = 2
    del new["custom"]
    got = {(c.section, c.op, c.key, c.field, _j(c.old), _j(c.new)) for c in diff_states(old, new)}
    assert got == {
        ("phase", "changed", None, "status", '"in_progress"', '"completed"'),
        ("tasks", "changed", "1", "status", '"pending"', '"in_progress"'),
        ("tasks", "changed", "1", "owner", "null", '"agent-7"'),
        ("tasks", "removed", "2", None, '{"id": "2", "status": "pending"}', "null"),
        ("tasks", "added", "3", None, "null", '{"id": "3", "status": "pending"}'),
        ("dependencies", "changed", "vault", "status", '"available"', '"unavailable"'),
        ("dependencies", "changed", "vault", "last_checked", '"t1"', '"t2"'),
        ("variables", "changed", "edit", None, '"a"', '"b"'),
        ("variables", "added", "added", None, "null", "[1]"),
        ("variables", "removed", "drop", None, "true", "null"),
        ("recent_outputs", "removed", None, None, '{"id": "o1"}', "null"),
        ("recent_outputs", "added", None, None, "null", '{"id": "o3"}'),
        ("meta", "changed", "agent_tier", None, "1", "2"),
        ("meta", "removed", "custom", None, '"x"', "null"),
    }


def _j(value: Any) -> str:
    import json

    return json.dumps(value, sort_keys=True)


def test_a_moved_task_is_one_moved_record_and_types_are_told_apart() -> None:
    old = {"tasks": _unique_tasks(3), "variables": {"n": 1}}
    new = {"tasks": [old["tasks"][2], old["tasks"][0], old["tasks"][1]], "variables": {"n": 1.0}}
    changes = diff_states(old, new)
    assert Change("tasks", "moved", "2", None, old["tasks"][2], old["tasks"][2], 2, 0) in changes
    assert Change("variables", "changed", "n", None, 1, 1.0) in changes


def test_json_form_follows_the_documented_schema() -> None:
    added = Change("variables", "added", "x", None, None, 5).to_dict()
    removed = Change("tasks", "removed", "1", None, {"id": "1"}, None, 0, None).to_dict()
    assert added == {"section": "variables", "op": "added", "key": "x", "field": None, "new": 5}
    assert removed == {
        "section": "tasks", "op": "removed", "key": "1", "field": None,
        "old": {"id": "1"}, "old_index": 0,
    }  # fmt: skip


def big_state() -> dict[str, Any]:
    return {
        "tasks": [{"id": str(i), "subject": f"task number {i}", "status": "pending", "owner": None}
                  for i in range(10_000)],
        "variables": {f"var_{i:04d}": {"value": i, "note": "some text"} for i in range(2_000)},
        "dependencies": [{"name": "vault", "status": "available"}],
    }  # fmt: skip


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_big_state_commit_writes_little_and_diff_reads_little(kind: str, tmp_path: Any) -> None:
    store = Store.memory() if kind == "memory" else Store.init(tmp_path / ".ckpt")
    state = big_state()
    first = store.commit(state)
    state["tasks"][1234]["status"] = "completed"
    state["tasks"][8765]["owner"] = "agent-2"
    state["variables"]["var_0042"] = {"value": -1}
    store.objects.stats.reset()
    second = store.commit(state)
    stats = store.objects.stats
    assert stats.bytes_written < 64 * 1024, stats
    assert stats.objects_written <= 20, stats

    store.objects.stats.reset()
    changes = store.diff(first.checkpoint_id, second.checkpoint_id)
    assert {(c.section, c.key, c.field) for c in changes} == {
        ("tasks", "1234", "status"), ("tasks", "8765", "owner"), ("variables", "var_0042", None),
    }  # fmt: skip
    # ~12,000 objects per checkpoint; the walk opens only the changed paths
    assert store.objects.stats.objects_read <= 40, store.objects.stats
    store.close()


def test_diff_compares_states_not_ancestry() -> None:
    store = Store.memory()
    store.commit({"variables": {"a": 1}}, session="one")
    store.commit({"variables": {"a": 2}}, session="two")
    assert store.diff("one", "two") == [Change("variables", "changed", "a", None, 1, 2)]
    assert store.diff("two", "two") == []
