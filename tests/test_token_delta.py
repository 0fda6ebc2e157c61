"""A commit's token estimate counted from its parent's: equal to a full count, cheaper."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ckptstore import Store, token_delta, tokens
from ckptstore.commits import read_commit
from ckptstore.records import forget_all
from ckptstore.snapshot import write_state
from ckptstore.tokens import HEURISTIC, Estimator
from ckptstore.validation import prepare_state
from strategies import edited_pairs, user_fields

NO_ENV: dict[str, str] = {}


def full_count(state: dict[str, Any]) -> int:
    return write_state(prepare_state(state)).tokens


def forget_estimates() -> None:
    """What a fresh process starts with: no estimate and no record remembered."""
    tokens._ENTRY_CACHE.clear()
    tokens._stretches.clear()
    forget_all()


def filler(count: int) -> list[dict[str, Any]]:
    return [
        {"id": f"f{i}", "subject": f"step {i} " * (i % 5), "status": "pending"}
        for i in range(count)
    ]


@given(edited_pairs(), st.integers(0, 160), st.text(min_size=300, max_size=900), st.data())
def test_counting_from_the_parent_gives_the_full_count(
    pair: tuple[dict[str, Any], dict[str, Any]], extra: int, plan: str, data: st.DataObject
) -> None:
    old, new = pair
    # Enough tasks for trees of several levels, and a text long enough to be a blob.
    for state in (old, new):
        state["tasks"] = filler(extra) + list(state.get("tasks", []))
        state.setdefault("variables", {})
    old["variables"]["plan"] = plan
    at = data.draw(st.integers(0, len(plan)))
    new["variables"]["plan"] = data.draw(st.sampled_from([plan, plan[:at] + " edit " + plan[at:]]))
    with Store.memory() as store:
        store.commit(old)
        parent = read_commit(store.objects, store.refs.session_head("main"))
        assert parent.tokenizer == HEURISTIC.name
        assert parent.estimated_tokens == full_count(old)
        if data.draw(st.booleans()):
            forget_estimates()  # the parent's entries are then read back and estimated
        with mock.patch.object(token_delta, "_FEW_UNESTIMATED", -1):  # always by difference
            built = token_delta.write_counted(store.objects, prepare_state(new), parent)
        assert built.tokenizer == HEURISTIC.name
        assert built.tokens == full_count(new)


@pytest.mark.parametrize(("before", "after"), [(40, 400), (63, 66), (600, 6000), (6000, 600)])
def test_trees_that_change_depth_are_counted_right(before: int, after: int) -> None:
    # A leaf one tree holds directly, the other under a new level, is shared all the same.
    with Store.memory() as store:
        store.commit({"tasks": filler(before)})
        parent = read_commit(store.objects, store.refs.session_head("main"))
        forget_estimates()
        new = {"tasks": filler(after)}
        built = token_delta.write_counted(store.objects, prepare_state(new), parent)
        assert built.tokens == full_count(new)


def test_a_commit_estimates_only_the_entries_that_changed() -> None:
    state = {"tasks": filler(300), "variables": {"plan": "line of the plan\n" * 1200}}
    with Store.memory() as store:
        store.capture(state, probe=False, plugins=False, environ=NO_ENV)
        state["tasks"][150]["status"] = "completed"
        forget_estimates()
        store.capture(state, probe=False, plugins=False, environ=NO_ENV)
        # The changed task, and the version it replaces; nothing else (300 without).
        assert len(tokens._ENTRY_CACHE) == 2
        head = store.log(limit=1)[0]
        assert head.estimated_tokens == full_count(state)


def test_a_process_that_remembers_the_estimates_counts_them_without_a_walk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state = {"tasks": filler(300), "variables": {"plan": "line of the plan\n" * 1200}}
    with Store.memory() as store:
        store.capture(state, probe=False, plugins=False, environ=NO_ENV)

        def no_walk(*_: Any) -> None:
            raise AssertionError("walked the trees")

        monkeypatch.setattr(token_delta, "token_change", no_walk)
        state["tasks"][150]["status"] = "completed"
        store.capture(state, probe=False, plugins=False, environ=NO_ENV)
        assert store.log(limit=1)[0].estimated_tokens == full_count(state)


def test_a_parent_counted_by_another_estimator_is_counted_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state: dict[str, Any] = {"tasks": filler(20), "variables": {"a": 1}}
    other = Estimator("other", lambda text: 2 * HEURISTIC.count(text), 4)
    with Store.memory() as store:
        store.capture(state, probe=False, plugins=False, environ=NO_ENV)
        monkeypatch.setattr(token_delta, "estimator", lambda: other)
        monkeypatch.setattr("ckptstore.snapshot.estimator", lambda: other)
        state["variables"]["a"] = 2
        store.capture(state, probe=False, plugins=False, environ=NO_ENV)
        head = read_commit(store.objects, store.refs.session_head("main"))
        assert head.tokenizer == "other"
        assert head.estimated_tokens == full_count(state)  # not the parent's plus a change
        assert head.estimated_tokens > 1.5 * store.log(limit=2)[1].estimated_tokens


def test_a_variable_edit_keeps_the_count_only_on_a_counted_parent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def head(store: Store) -> Any:
        return read_commit(store.objects, store.refs.session_head("main"))

    with Store.memory() as store:
        store.commit({"tasks": filler(5), "variables": {"a": 1}})
        store.commit(variables={"b": "two"})
        assert head(store).tokenizer == HEURISTIC.name
        assert head(store).estimated_tokens == full_count(user_fields(store.load()))
        # Edited under another estimator: the sum mixes two, so it names none...
        other = Estimator("other", HEURISTIC.count, 4)
        monkeypatch.setattr("ckptstore.publish.estimator", lambda: other)
        store.commit(variables={"c": 3})
        assert head(store).tokenizer is None
        monkeypatch.undo()
        # ...and the next full state on it is counted whole, not from that sum.
        state = user_fields(store.load())
        state["variables"]["d"] = 4
        store.capture(state, probe=False, plugins=False, environ=NO_ENV)
        assert head(store).tokenizer == HEURISTIC.name
        assert head(store).estimated_tokens == full_count(state)


def test_fresh_ckpt_processes_record_full_counts(tmp_path: Path) -> None:
    exe = shutil.which("ckpt", path=str(Path(sys.executable).parent))
    assert exe is not None, "the ckpt entry point is not installed beside this Python"
    store = tmp_path / ".ckpt"
    env = {"PATH": str(Path(sys.executable).parent), "HOME": str(tmp_path)}
    subprocess.run([exe, "--store", str(store), "init"], check=True, capture_output=True, env=env)
    state: dict[str, Any] = {"tasks": filler(120), "variables": {"notes": "word " * 900}}
    for step in range(3):
        state["tasks"][step * 40]["status"] = "completed"
        state["variables"]["notes"] += f" step {step}"
        path = tmp_path / f"s{step}.json"
        path.write_text(json.dumps(state), encoding="utf-8")
        subprocess.run(
            [exe, "--store", str(store), "commit", "--state", str(path), "--no-probe"],
            check=True,
            capture_output=True,
            env=env,
        )
    with Store.open(store) as opened:
        for info in opened.log():
            loaded = opened.load(info.checkpoint_id)
            assert info.estimated_tokens == full_count(user_fields(loaded))
