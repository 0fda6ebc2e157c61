"""The record memo: records seen before are neither walked nor encoded again, and the
memo never changes what is written, what is accepted, or what callers get back."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from enum import IntEnum
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ckptstore import InvalidCheckpoint, Store
from ckptstore import records as records_module
from ckptstore.objects import canonical, pack_as_given, pack_canonical
from ckptstore.records import _Generations, check_record, encoded_record, forget_all
from ckptstore.snapshot import write_state
from ckptstore.validation import fresh_fields, prepare_state, validate_state
from strategies import checkpoints, json_values


@pytest.fixture(autouse=True)
def empty_memo() -> None:
    forget_all()


def counting_walks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the path of every record the memo sends the long way (the canonical walk)."""
    walked: list[str] = []
    real: Callable[..., Any] = canonical

    def counted(value: Any, **kwargs: Any) -> Any:
        walked.append(kwargs["root"])
        return real(value, **kwargs)

    monkeypatch.setattr(records_module, "canonical", counted)
    return walked


def long_state(tasks: int = 120) -> dict[str, Any]:
    return {
        "phase": {"name": "build", "number": 2, "status": "active"},
        "tasks": [
            {"id": f"T{i:03d}", "subject": f"task {i}", "status": "pending", "blocks": []}
            for i in range(tasks)
        ],
        "dependencies": [{"name": "db", "status": "up", "last_checked": "t0"}],
        "variables": {"plan": "step\n" * 4000, "count": 3, "cfg": {"b": 1, "a": [1, 2]}},
        "recent_outputs": [{"type": "file", "id": f"o{i}"} for i in range(20)],
    }


# A state pinned before the memo existed: its root id must never move.
PINNED_ROOT = "8170576b74dfab8a9f2d682839e65b17ae99da8a57b3d67b46b116d4f908db58"


def pinned_state() -> dict[str, Any]:
    return {
        "phase": {"name": "build", "number": 2, "status": "active"},
        "phases_completed": ["plan"],
        "tasks": [
            {
                "id": f"T{i:03d}",
                "subject": f"task {i}",
                "status": ["pending", "done"][i % 2],
                "blocks": [],
                "blocked_by": [f"T{i - 1:03d}"] if i else [],
            }
            for i in range(150)
        ],
        "active_task_id": "T007",
        "dependencies": [{"name": "db", "status": "up", "last_checked": "2026-11-25T10:00:00Z"}],
        "variables": {
            **{f"v{i:02d}": i * 1.5 for i in range(70)},
            "plan": "step\n" * 400,
            "nested": {"b": [1, 2.0, True, None], "a": -0.0},
        },
        "recent_outputs": [{"type": "file", "id": f"o{i}", "success": True} for i in range(20)],
        "agent_id": "a1",
        "agent_tier": 2,
        "extra_field": {"z": 1, "y": [2]},
    }


def test_the_root_id_of_a_pinned_state_is_the_same_from_the_memo_and_without_it() -> None:
    """Chunked lists, inner nodes, a blob, inline records: ids as before the memo."""
    first = write_state(prepare_state(pinned_state()))
    again = write_state(prepare_state(pinned_state()))  # every record from the memo
    plain = write_state(validate_state(pinned_state()))  # canonical values, encoded here
    assert first.root.hex() == again.root.hex() == plain.root.hex() == PINNED_ROOT
    assert first.pending.keys() == again.pending.keys() == plain.pending.keys()
    assert first.tokens == again.tokens == plain.tokens == 5361


def test_a_state_committed_before_walks_only_its_changed_records(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    walked = counting_walks(monkeypatch)
    store = Store.memory()
    state = long_state()
    store.commit(state)
    assert len(walked) == 120 + 1 + 3 + 20  # every record once
    walked.clear()
    state["tasks"][7]["status"] = "done"
    state["variables"]["count"] = 4
    store.commit(state)
    # The plan (20,000 characters, over VALUE_MAX) is walked every time: it is one part,
    # and looking it up would cost more than the walk.
    assert walked == ["$.tasks[7]", "$.variables.count", "$.variables.plan"]
    assert store.load()["tasks"][7]["status"] == "done"


def test_a_record_that_broke_a_rule_is_not_remembered_as_checked() -> None:
    store = Store.memory()
    bad = {"id": "T1", "status": 5}  # a status must be a string
    for _ in range(2):
        with pytest.raises(InvalidCheckpoint) as err:
            store.commit({"tasks": [bad]})
        assert err.value.field == "$.tasks[0].status"
    # Valid as a variable (any JSON value): remembered there, still refused as a task.
    store.commit({"variables": {"x": bad}})
    with pytest.raises(InvalidCheckpoint):
        store.commit({"tasks": [bad]})
    # A state that fails elsewhere remembers none of its records either.
    with pytest.raises(InvalidCheckpoint):
        store.commit({"tasks": [{"id": "T2"}], "agent_tier": "high"})
    with pytest.raises(InvalidCheckpoint):
        store.commit({"tasks": [{"id": "T2", "blocks": "T1"}], "agent_tier": "high"})
    assert len(store.log()) == 1


def test_what_validate_state_returns_is_the_callers_own() -> None:
    first = validate_state(long_state())
    first["tasks"][0]["status"] = "changed"
    first["variables"]["cfg"]["a"].append(3)
    second = validate_state(long_state())
    assert second["tasks"][0]["status"] == "pending"
    assert second["variables"]["cfg"] == {"a": [1, 2], "b": 1}


def test_a_prepared_state_gives_a_fresh_copy_each_time() -> None:
    # A capture keeps the prepared state and makes values of it for each build (a
    # commit that loses a race builds again): one build's edits must not reach the next.
    state = long_state()
    state["phase"] = {"name": "build", "number": 1}
    prepared = prepare_state(state)
    first = fresh_fields(prepared)
    first["tasks"][0]["status"] = "changed"
    first["variables"]["cfg"]["a"].append(3)
    first["phase"]["number"] = 2
    second = fresh_fields(prepared)
    assert second == validate_state(state)
    assert (second["tasks"][0]["status"], second["phase"]["number"]) == ("pending", 1)
    assert write_state(prepare_state(second)).root == write_state(prepared).root


class Level(IntEnum):
    LOW = 1


LOOKALIKES: list[Any] = [
    1,
    1.0,
    True,
    0.0,
    -0.0,
    0,
    False,
    None,
    "1",
    [1],
    (1,),
    {"a": 1, "b": 2},
    {"b": 2, "a": 1},
    OrderedDict([("b", 2), ("a", 1)]),
    Level.LOW,
    {"x": Level.LOW},
    {"x": (1, 2)},
    2**64 - 1,
]


@pytest.mark.parametrize("twice", [False, True])
def test_records_that_look_alike_keep_their_own_canonical_form(twice: bool) -> None:
    """1, 1.0 and True are equal in Python but not in a checkpoint; key order is not."""
    for value in LOOKALIKES * (2 if twice else 1):
        record, key, _ = check_record(b"v", value, "$.x")
        assert record == encoded_record(pack_canonical(canonical(value))), value
        if key is not None:
            records_module.remember([(key, record)])
    # Exact JSON types are keyed; tuples and subclasses are not (they take the walk).
    assert pack_as_given((1,)) is None
    assert pack_as_given(Level.LOW) is None
    assert pack_as_given(OrderedDict(a=1)) is None


@given(st.lists(json_values(), max_size=6))
def test_memoised_records_match_the_long_way(values: list[Any]) -> None:
    for value in values + values:
        record, key, _ = check_record(b"o", value, "$.x")
        assert record == encoded_record(pack_canonical(canonical(value, depth=2)))
        if key is not None:
            records_module.remember([(key, record)])


@given(checkpoints())
def test_prepared_states_write_what_canonical_states_write(state: dict[str, Any]) -> None:
    expected = write_state(validate_state(state))
    for _ in range(2):
        assert write_state(prepare_state(state)).root == expected.root


def test_values_the_memo_cannot_key_take_the_long_way_and_are_refused_the_same() -> None:
    """Not packable as given: over-deep, too big an integer, a lone surrogate, a tuple."""
    deep: Any = "x"
    for _ in range(300):
        deep = [deep]
    cases = [
        (deep, "nested deeper than 256 levels"),
        (2**64, "outside the 64-bit range"),
        ("\ud800", "not valid Unicode"),
        (float("nan"), "not a JSON number"),
    ]
    for value, problem in cases:
        for _ in range(2):
            with pytest.raises(InvalidCheckpoint) as err:
                prepare_state({"recent_outputs": [value]})
            assert err.value.field.startswith("$.recent_outputs[0]")
            assert problem in err.value.problem
    assert (
        prepare_state({"tasks": ({"id": 1},)})["tasks"]
        == prepare_state({"tasks": [{"id": 1}]})["tasks"]
    )


def test_the_memo_is_bounded_by_bytes() -> None:
    memo = _Generations(limit=1000)
    for i in range(100):
        memo.put(b"k%03d" % i + b"x" * 96, (b"p" * 10, None, i))
    assert memo.size <= 1000
    assert len(memo.newer) + len(memo.older) <= 2 * 1000 // 110 + 2
    newest = b"k099" + b"x" * 96
    assert memo.get(newest) == (b"p" * 10, None, 99)
    assert memo.get(b"k000" + b"x" * 96) is None  # dropped with an older generation


def test_a_state_checked_again_in_canonical_form_walks_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``capture`` checks the given state, edits the canonical values, checks again."""
    walked = counting_walks(monkeypatch)
    state = long_state()
    state["tasks"] = [dict(reversed(task.items())) for task in state["tasks"]]  # unsorted
    canon = validate_state(state)
    walked.clear()
    again = prepare_state(canon)
    assert walked == ["$.variables.plan"]  # over VALUE_MAX: never remembered
    assert again == prepare_state(state)


@pytest.mark.parametrize(
    ("state", "field"),
    [
        ({"tasks": [{"id": "a", "subject": "\ud800"}]}, "$.tasks[0].subject"),
        ({"variables": {"x": {"y": "\udfff"}}}, "$.variables.x.y"),
        ({"phase": {"name": "\ud800"}}, "$.phase.name"),
        ({"agent_id": "\ud800"}, "$.agent_id"),
    ],
)
def test_a_lone_surrogate_is_a_bad_field_of_the_state_wherever_it_is(
    state: dict[str, Any], field: str
) -> None:
    """Found when checking, not when writing: the error names the file and the field."""
    with pytest.raises(InvalidCheckpoint) as err:
        prepare_state(state, source="state.json")
    assert (err.value.field, err.value.source) == (field, "state.json")
    assert "lone surrogate" in err.value.problem
