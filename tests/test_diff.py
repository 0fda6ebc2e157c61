"""Structural diff: completeness, agreement with naive diffs, and cost at scale."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any
from unittest import mock

import blake3
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ckptstore import Store, listdiff, treediff, treewalk
from ckptstore.backends.memory import MemoryBackend
from ckptstore.diff import Change, align, apply_changes, diff_states
from ckptstore.objects import INT_MAX, INT_MIN, Kind, encode
from ckptstore.objectstore import ObjectStore
from ckptstore.snapshot import write_state
from ckptstore.treediff import diff_trees
from ckptstore.trees import fetch_closure, read_items
from ckptstore.validation import validate_state
from strategies import checkpoints, edited_pairs


def put(store: ObjectStore, state: dict[str, Any]) -> bytes:
    built = write_state(validate_state(state))
    new = store.missing(built.pending)
    store.backend.write(store.prepare({k: built.pending[k] for k in new}))
    return built.root


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


# --- what a diff costs and why it is still right ----------------------------------


class EncodedBytes:
    """Counts the bytes a tree diff encodes to compare entries, by either of its ways."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.total = 0
        canonical = treewalk.pack_canonical

        def counted_canonical(value: Any, **options: Any) -> bytes:
            return self._count(canonical(value, **options))

        monkeypatch.setattr(treewalk, "pack_canonical", counted_canonical)
        packer = treediff.packer

        def counted_packer() -> Callable[[Any], bytes]:
            pack = packer()
            return lambda value: self._count(pack(value))

        monkeypatch.setattr(treediff, "packer", counted_packer)

    def _count(self, data: bytes) -> bytes:
        self.total += len(data)
        return data


def _cut_after(entry: Any) -> bool:
    """Whether a list leaf ends at this inline entry (docs/architecture.md, Trees)."""
    return blake3.blake3(encode(entry)).digest(4)[0] & 31 == 0


def _task_leaves(store: ObjectStore, root: bytes) -> int:
    tasks = dict(zip(*[iter(read_items(store, root))] * 2, strict=True))["tasks"]
    nodes = fetch_closure(store, [tasks], follow_refs=False).values()
    return sum(1 for kind, node in nodes if kind == Kind.TREE and node.is_leaf)


@pytest.mark.parametrize("moves_a_cut", [False, True])
def test_a_diff_of_three_changed_entries_encodes_only_those(
    moves_a_cut: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Entries equal on both sides are told equal without encoding them: ~80 tasks and
    ~60 variables share the changed leaves, and encoding them all cost most of a diff.
    Also when the change moves where a leaf ends (the two trees differ in shape)."""
    old = big_state()
    new = copy.deepcopy(old)
    task = old["tasks"][1234]
    status = next(
        s
        for s in (f"completed-{n}" for n in range(1000))
        if _cut_after({**task, "status": s}) != _cut_after(task) or not moves_a_cut
    )
    new["tasks"][1234]["status"] = status
    new["tasks"][8765]["owner"] = "agent-2"
    new["variables"]["var_0042"] = {"value": -1, "note": "some text"}
    store = ObjectStore(MemoryBackend())
    roots = put(store, old), put(store, new)
    assert (_task_leaves(store, roots[0]) != _task_leaves(store, roots[1])) == moves_a_cut
    encoded = EncodedBytes(monkeypatch)
    changes = diff_trees(store, *roots)
    assert changes == diff_states(validate_state(old), validate_state(new))
    assert len(changes) == 3
    # the three entries, old and new, ~70 bytes a task: ~350 bytes (was ~17 KiB)
    assert encoded.total < 1024, encoded.total


def test_values_equal_in_python_are_told_apart_in_big_trees() -> None:
    old = big_state()
    old["tasks"][1234]["weight"] = 1
    old["tasks"][5000]["flag"] = 1
    old["tasks"][9000]["offset"] = 0.0
    old["variables"]["var_0042"] = 7
    old["variables"]["var_1500"] = {"value": 1500, "note": "some text"}
    new = copy.deepcopy(old)
    new["tasks"][1234]["weight"] = 1.0
    new["tasks"][5000]["flag"] = True
    new["tasks"][9000]["offset"] = -0.0
    new["variables"]["var_0042"] = 7.0
    new["variables"]["var_1500"]["value"] = 1500.0
    store = ObjectStore(MemoryBackend())
    changes = diff_trees(store, put(store, old), put(store, new))
    assert changes == diff_states(validate_state(old), validate_state(new))
    assert [(c.section, c.key) for c in changes] == [
        ("tasks", "1234"), ("tasks", "5000"), ("tasks", "9000"),
        ("variables", "var_0042"), ("variables", "var_1500"),
    ]  # fmt: skip


@st.composite
def replaced_in_place(draw: st.DrawFn) -> tuple[list[Any], list[Any]]:
    """A list long enough to span leaves, and a copy with entries replaced in place,
    often by entries found elsewhere in it or equal in Python only (1, 1.0, True)."""
    pool = [{"id": str(i % 7), "n": n} for i in range(20) for n in (i, float(i), i == 1)]
    old = draw(st.lists(st.sampled_from(pool), min_size=65, max_size=300))
    new = list(old)
    for _ in range(draw(st.integers(1, 4))):
        spot = draw(st.integers(0, len(new) - 1))
        fresh = {"id": "fresh", "n": draw(st.integers(INT_MIN, INT_MAX))}  # what JSON may hold
        new[spot] = draw(st.sampled_from([*pool, fresh]))
    if draw(st.booleans()):  # now and then more than a replacement
        new.insert(draw(st.integers(0, len(new))), draw(st.sampled_from(pool)))
    return old, new


@given(replaced_in_place())
def test_replacements_in_place_are_what_the_full_alignment_finds(
    pair: tuple[list[Any], list[Any]],
) -> None:
    store = ObjectStore(MemoryBackend())
    old, new = ({"tasks": tasks} for tasks in pair)
    roots = put(store, old), put(store, new)
    changes = diff_trees(store, *roots)
    with mock.patch.object(listdiff, "_in_place", return_value=None):
        assert changes == diff_trees(store, *roots)
    assert canonical_state(apply_changes(validate_state(old), changes)) == canonical_state(new)


@given(
    st.lists(st.integers(0, 6), max_size=14),
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, 14), st.integers(0, 9)), max_size=4),
)
def test_the_one_pass_alignment_is_difflibs(old: list[int], edits: list[tuple[int, ...]]) -> None:
    new = list(old)
    for op, spot, value in edits:
        if op == 0 and new:
            new[spot % len(new)] = value
        elif op == 1:
            new.insert(spot % (len(new) + 1), value)
        elif op == 2 and new:
            del new[spot % len(new)]
        elif op == 3 and len(new) > 1:
            new.append(new.pop(spot % len(new)))
    expected = [(i1, i2, j1, j2) for tag, i1, i2, j1, j2 in align(old, new) if tag != "equal"]
    assert listdiff._gaps(list(old), new) == expected  # type: ignore[arg-type]
