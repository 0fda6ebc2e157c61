"""The collector pipeline: inherit, --state/--merge, flag edits, environment, plugins.

Plugins are real entry points: each test writes a distribution (a module and its
``.dist-info`` with ``entry_points.txt``) to a directory it puts on ``sys.path``.
"""

from __future__ import annotations

import copy
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest

from ckptstore import (
    CollectContext,
    CollectorFailed,
    Edits,
    InvalidCheckpoint,
    InvalidOption,
    InvalidSetting,
    Output,
    Store,
    UnknownTask,
)
from ckptstore.collectors import ENTRY_POINT_GROUP, discover_collectors
from ckptstore.edits import parse_output, parse_task
from ckptstore.merge import merge_partial, validate_partial
from strategies import user_fields

NO_ENV: dict[str, str] = {}


def base_state() -> dict[str, Any]:
    return {
        "phase": {"name": "Phase 5: Agent Bootstrapping", "number": 5, "status": "in_progress"},
        "phases_completed": [1, 2, 3, 4],
        "tasks": [
            {"id": "1", "subject": "one", "status": "completed", "owner": None},
            {"id": "7", "subject": "seven", "status": "pending", "owner": "agent-2"},
            {"id": 9, "subject": "nine (an int id)", "status": "pending"},
        ],
        "active_task_id": "7",
        "dependencies": [
            {"name": "vault", "type": "service", "status": "available", "endpoint": "v:1"}
        ],
        "variables": {"keep": 1, "change": "old"},
        "recent_outputs": [{"type": "evidence", "id": "e1", "success": True}],
        "agent_id": "agent-1",
        "agent_tier": 1,
        "custom": {"x": 1},
    }


def head_id(store: Store, session: str = "main") -> bytes | None:
    return store.refs.session_head(session)


def object_count(store: Store) -> int:
    return sum(1 for _ in store.backend.iter_ids())


# --- merge rules ----------------------------------------------------------------------------


def test_a_partial_state_changes_only_what_it_names_section_by_section() -> None:
    state = base_state()
    partial = validate_partial(
        {
            "phase": {"status": "completed"},
            "tasks": [{"id": "7", "status": "completed"}, {"id": "10", "subject": "new"}],
            "dependencies": [{"name": "vault", "status": "degraded"}, {"name": "redis"}],
            "variables": {"change": "new", "added": None},
            "recent_outputs": [{"type": "log", "id": "e2"}],
            "phases_completed": [1, 2],
            "active_task_id": "10",
            "custom": {"y": 2},
            "checkpoint_id": "ignored",  # store-owned: dropped
        }
    )
    merge_partial(state, partial)
    expected = base_state()
    expected["phase"]["status"] = "completed"
    expected["tasks"][1]["status"] = "completed"
    expected["tasks"].append({"id": "10", "subject": "new"})
    expected["dependencies"][0]["status"] = "degraded"
    expected["dependencies"].append({"name": "redis"})
    expected["variables"].update(change="new", added=None)
    expected["recent_outputs"].append({"type": "log", "id": "e2"})
    expected.update(phases_completed=[1, 2], active_task_id="10", custom={"y": 2})
    assert state == expected


def test_merge_matches_task_ids_as_text_and_null_clears_the_phase() -> None:
    state = base_state()
    merge_partial(
        state, validate_partial({"tasks": [{"id": "9", "status": "done"}], "phase": None})
    )
    assert state["tasks"][2] == {"id": 9, "subject": "nine (an int id)", "status": "done"}
    assert state["phase"] is None
    assert len(state["tasks"]) == 3


@pytest.mark.parametrize(
    ("partial", "field"),
    [
        ({"tasks": [{"status": "completed"}]}, "$.tasks[0].id"),
        ({"tasks": [{"id": None, "status": "x"}]}, "$.tasks[0].id"),
        ({"dependencies": [{"status": "up"}]}, "$.dependencies[0].name"),
        ({"tasks": {"id": "7"}}, "$.tasks"),
        ({"variables": []}, "$.variables"),
        ({"phase": {"number": "five"}}, "$.phase.number"),
        ([1, 2], "$"),
    ],
)
def test_an_invalid_partial_state_is_rejected_and_nothing_is_written(
    store: Store, partial: Any, field: str
) -> None:
    store.commit(base_state())
    head, objects = head_id(store), object_count(store)
    with pytest.raises(InvalidCheckpoint) as caught:
        store.capture(partial, merge=True, source="part.json", environ=NO_ENV)
    assert caught.value.field == field
    assert str(caught.value).startswith("part.json: ")
    assert head_id(store) == head
    assert object_count(store) == objects


def test_merge_through_capture_updates_task_7_only(store: Store) -> None:
    store.commit(base_state())
    store.capture({"tasks": [{"id": "7", "status": "completed"}]}, merge=True, environ=NO_ENV)
    expected = base_state()
    expected["tasks"][1]["status"] = "completed"
    assert user_fields(store.load()) == expected
    with pytest.raises(InvalidOption, match="needs a partial state"):
        store.capture(merge=True, environ=NO_ENV)


def test_a_full_state_replaces_the_inherited_one_and_flags_apply_on_top(store: Store) -> None:
    store.commit(base_state())
    store.capture(
        {"tasks": [{"id": "a", "status": "pending"}], "variables": {"v": 1}},
        edits=Edits(tasks=(("a", "in_progress"),)),
        variables={"w": 2},
        environ=NO_ENV,
    )
    assert user_fields(store.load()) == {
        "tasks": [{"id": "a", "status": "in_progress"}],
        "variables": {"v": 1, "w": 2},
    }


# --- flag edits -------------------------------------------------------------------------------


def test_phase_edits_start_a_phase_update_it_and_record_completion(store: Store) -> None:
    store.commit(base_state())
    store.capture(edits=Edits(phase_status="completed"), environ=NO_ENV)
    loaded = store.load()
    assert loaded["phase"]["status"] == "completed"
    assert loaded["phases_completed"] == [1, 2, 3, 4, 5]
    info = store.capture(edits=Edits(phase="Phase 6: Hooks", phase_number=6), environ=NO_ENV)
    phase = store.load()["phase"]
    assert phase == {
        "name": "Phase 6: Hooks",
        "number": 6,
        "status": "in_progress",
        "started_at": info.commit.created_at,
    }
    store.capture(edits=Edits(phase="Phase 6: Hooks", phase_status="blocked"), environ=NO_ENV)
    assert store.load()["phase"] == {**phase, "status": "blocked"}  # same name: same phase
    store.capture(edits=Edits(completed_phases=(6,)), environ=NO_ENV)
    assert store.load()["phase"]["status"] == "completed"
    assert store.load()["phases_completed"] == [1, 2, 3, 4, 5, 6]


def test_task_edits_add_set_status_and_pick_the_active_task(store: Store) -> None:
    store.commit(base_state())
    store.capture(
        edits=Edits(
            add_tasks=("write docs", "review"),
            tasks=(("11", "in_progress"), ("1", "reopened")),
            active_task="11",
        ),
        environ=NO_ENV,
    )
    loaded = store.load()
    assert [t["id"] for t in loaded["tasks"]] == ["1", "7", 9, "10", "11"]
    assert loaded["tasks"][3] == {
        "id": "10", "subject": "write docs", "status": "pending", "owner": None,
        "blocks": [], "blocked_by": [],
    }  # fmt: skip
    assert loaded["tasks"][4]["status"] == "in_progress"
    assert loaded["tasks"][0]["status"] == "reopened"
    assert loaded["active_task_id"] == "11"
    store.capture(edits=Edits(active_task="9"), environ=NO_ENV)
    assert store.load()["active_task_id"] == 9  # the task's own id, type kept
    store.capture(edits=Edits(active_task=""), environ=NO_ENV)
    assert store.load()["active_task_id"] is None


@pytest.mark.parametrize(
    "edits",
    [Edits(tasks=(("7", "completed"), ("42", "completed"))), Edits(active_task="42")],
)
def test_an_unknown_task_id_is_an_error_and_nothing_is_written(store: Store, edits: Edits) -> None:
    store.commit(base_state())
    head, objects = head_id(store), object_count(store)
    with pytest.raises(UnknownTask) as caught:
        store.capture(edits=edits, variables={"x": 1}, environ=NO_ENV)
    assert caught.value.task_id == "42"
    assert caught.value.known == ("1", "7", "9")
    assert "'42'" in str(caught.value)
    assert head_id(store) == head
    assert object_count(store) == objects


def test_outputs_and_variables(store: Store) -> None:
    store.commit(base_state())
    info = store.capture(
        edits=Edits(
            outputs=(Output("evidence", "terraform plan", True), Output("log", "x", False))
        ),
        variables={"change": "new"},
        unset=("keep",),
        environ=NO_ENV,
    )
    loaded = store.load()
    assert loaded["variables"] == {"change": "new"}
    first, second = loaded["recent_outputs"][1:]
    assert first["type"] == "evidence"
    assert first["action"] == "terraform plan"
    assert first["success"] is True
    assert first["timestamp"] == info.commit.created_at
    assert first["id"].startswith("evidence-")
    assert second["success"] is False
    assert first["id"] != second["id"]
    with pytest.raises(InvalidCheckpoint, match="not set"):
        store.capture(unset=("keep",), environ=NO_ENV)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("7=completed", ("7", "completed")), ("a=b=c", ("a=b", "c")), (" 7 = done ", ("7", "done"))],
)
def test_parse_task(text: str, expected: tuple[str, str]) -> None:
    assert parse_task(text) == expected


@pytest.mark.parametrize("text", ["7", "=done", "7=", "", "  =  "])
def test_parse_task_rejects_malformed_text(text: str) -> None:
    with pytest.raises(InvalidOption, match="ID=STATUS"):
        parse_task(text)


def test_parse_output() -> None:
    assert parse_output("evidence:terraform:ok") == Output("evidence", "terraform", True)
    assert parse_output("log:deploy:prod:FAIL") == Output("log", "deploy:prod", False)
    for bad in ("evidence", "evidence:ok", ":x:ok", "e::ok"):
        with pytest.raises(InvalidOption, match="TYPE:ACTION"):
            parse_output(bad)
    with pytest.raises(InvalidOption, match="ok or fail"):
        parse_output("evidence:terraform:maybe")


# --- environment ------------------------------------------------------------------------------


def test_the_environment_sets_agent_and_session(store: Store) -> None:
    store.commit(base_state())
    env = {"CKPT_AGENT_ID": "agent-9", "CKPT_AGENT_TIER": " 3 ", "CKPT_SESSION_ID": "run-2"}
    info = store.capture(variables={"x": 1}, environ=env).commit
    assert info.session == "run-2"
    assert (info.agent_id, info.agent_tier) == ("agent-9", 3)
    loaded = store.load("run-2")
    assert (loaded["agent_id"], loaded["agent_tier"]) == ("agent-9", 3)
    assert loaded["variables"] == {"x": 1}  # a new session starts empty
    explicit = store.capture(session="chosen", environ=env).commit
    assert explicit.session == "chosen"  # --session beats CKPT_SESSION_ID
    with pytest.raises(InvalidSetting, match="CKPT_AGENT_TIER"):
        store.capture(environ={"CKPT_AGENT_TIER": "high"})


def test_a_variables_only_capture_reads_only_the_variables(store: Store) -> None:
    state = base_state()
    state["tasks"] = [{"id": str(i), "subject": f"task {i}" * 5} for i in range(3000)]
    store.commit(state)
    same_agent = {"CKPT_AGENT_ID": "agent-1", "CKPT_AGENT_TIER": "1"}
    store.objects.drop_cache()  # count what each capture reads, not what is cached
    store.objects.stats.reset()
    store.capture(variables={"step": 7}, environ=same_agent)
    assert store.objects.stats.objects_read <= 6  # as `commit --var`: no full load
    store.objects.drop_cache()
    store.objects.stats.reset()
    info = store.capture(variables={"step": 8}, environ={"CKPT_AGENT_ID": "agent-2"}).commit
    assert store.objects.stats.objects_read > 50  # a new agent id: the full path
    assert info.agent_id == "agent-2"
    expected = copy.deepcopy(state)
    expected["variables"]["step"] = 8
    expected["agent_id"] = "agent-2"
    assert user_fields(store.load()) == expected


# --- plugin collectors --------------------------------------------------------------------


PLUGIN = """
import os

class Git:
    name = "git"

    def collect(self, context):
        return {"variables": {"git_branch": "main", "seen_tasks": len(context.state["tasks"]),
                              "session": context.session}}


class Broken:
    name = "broken"

    def collect(self, context):
        raise RuntimeError("no repository here")


class Nonsense:
    name = "nonsense"

    def collect(self, context):
        return {"tasks": "not a list"}


def make_quiet():
    class Quiet:
        name = "quiet"

        def collect(self, context):
            return None
    return Quiet()
"""


def install_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, entries: dict[str, str]) -> str:
    """Write a distribution with ``ckptstore.collectors`` entry points; put it on sys.path."""
    module = f"ckpt_plugin_{uuid.uuid4().hex[:8]}"
    root = tmp_path / "site"
    dist = root / f"{module}-1.0.dist-info"
    dist.mkdir(parents=True)
    (root / f"{module}.py").write_text(textwrap.dedent(PLUGIN), encoding="utf-8")
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
    lines = [f"{name} = {module}:{target}" for name, target in entries.items()]
    (dist / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n" + "\n".join(lines) + "\n")
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.delitem(sys.modules, module, raising=False)
    return module


def test_no_installed_plugin_is_found_without_importing_importlib_metadata() -> None:
    # importlib.metadata costs ~70 ms per `ckpt` call; without plugins it is never loaded.
    code = (
        "import sys; from ckptstore.collectors import discover_collectors;"
        "print(discover_collectors(), 'importlib.metadata' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["[]", "False"]


def test_plugins_contribute_state_and_a_failing_one_is_recorded_by_name(
    store_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_plugin(
        tmp_path, monkeypatch,
        {"git": "Git", "broken": "Broken", "nonsense": "Nonsense", "quiet": "make_quiet"},
    )  # fmt: skip
    assert [name for name, _ in discover_collectors()] == ["broken", "git", "nonsense", "quiet"]
    with Store.open(store_dir) as store:
        store.commit(base_state(), session="a")
        captured = store.capture(session="a", edits=Edits(add_tasks=("new",)), environ=NO_ENV)
        assert [(e.collector, e.error) for e in captured.errors] == [
            ("broken", "RuntimeError: no repository here"),
            ("nonsense", "InvalidCheckpoint: collector 'nonsense': $.tasks: must be a list of"
             " task objects, not str; fix that field and retry"),
        ]  # fmt: skip
        loaded = store.load("a")
        assert loaded["variables"]["git_branch"] == "main"
        assert loaded["variables"]["seen_tasks"] == 4  # the state so far: flags applied
        assert loaded["variables"]["session"] == "a"
        assert loaded["collector_errors"] == [e.to_dict() for e in captured.errors]
        assert len(loaded["tasks"]) == 4  # the rest of the checkpoint is kept

        (store_dir / "config.toml").write_text('[collectors]\ndisable = ["broken", "nonsense"]\n')
    with Store.open(store_dir) as store:
        captured = store.capture(session="a", environ=NO_ENV)
        assert captured.errors == ()
        assert "collector_errors" not in store.load("a")  # a clean run clears the record


def test_on_error_fail_fails_the_commit_naming_the_collector(
    store_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_plugin(tmp_path, monkeypatch, {"git": "Git", "broken": "Broken"})
    (store_dir / "config.toml").write_text('[collectors]\non_error = "fail"\n')
    with Store.open(store_dir) as store:
        store.commit(base_state())
        head, objects = head_id(store), object_count(store)
        with pytest.raises(CollectorFailed) as caught:
            store.capture(variables={"x": 1}, environ=NO_ENV)
        assert caught.value.collector == "broken"
        assert "no repository here" in str(caught.value)
        assert head_id(store) == head
        assert object_count(store) == objects
        store.capture(variables={"x": 1}, plugins=False, environ=NO_ENV)  # opted out
        assert store.load()["variables"]["x"] == 1


def test_plugins_can_be_switched_off_in_the_config(
    store_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_plugin(tmp_path, monkeypatch, {"git": "Git"})
    (store_dir / "config.toml").write_text("[collectors]\nplugins = false\n")
    with Store.open(store_dir) as store:
        store.capture(variables={"x": 1}, environ=NO_ENV)
        assert store.load()["variables"] == {"x": 1}


def test_a_broken_entry_point_is_a_collector_error(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_plugin(tmp_path, monkeypatch, {"missing": "DoesNotExist", "os": "os"})
    captured = store.capture(variables={"x": 1}, environ=NO_ENV)
    assert [e.collector for e in captured.errors] == ["missing", "os"]
    assert captured.errors[0].error.startswith("AttributeError")
    assert "not a collector" in captured.errors[1].error


class Counter:
    name = "counter"

    def __init__(self) -> None:
        self.calls = 0
        self.contexts: list[CollectContext] = []

    def collect(self, context: CollectContext) -> dict[str, Any]:
        self.calls += 1
        self.contexts.append(context)
        return {"variables": {"counted": self.calls}, "tasks": [{"id": "7", "owner": "me"}]}


def test_collectors_passed_by_the_caller_run_after_the_plugins(store: Store) -> None:
    store.commit(base_state())
    counter = Counter()
    store.capture(collectors=[counter], environ=NO_ENV)
    assert counter.calls == 1
    assert counter.contexts[0].session == "main"
    loaded = store.load()
    assert loaded["variables"]["counted"] == 1
    assert loaded["tasks"][1]["owner"] == "me"


class RacingWriter:
    """While the pipeline runs, another writer commits to the same session."""

    name = "racer"

    def __init__(self, store_dir: Path) -> None:
        self.store_dir = store_dir
        self.calls = 0

    def collect(self, context: CollectContext) -> dict[str, Any]:
        self.calls += 1
        with Store.open(self.store_dir) as other:
            other.commit(variables={"from_the_other_writer": True}, session=context.session)
        return {"variables": {"from_the_plugin": True}}


def test_a_commit_that_loses_a_race_is_rebuilt_on_the_new_head_without_collecting_again(
    store_dir: Path,
) -> None:
    with Store.open(store_dir) as store:
        store.commit(base_state())
        racer = RacingWriter(store_dir)
        info = store.capture(
            edits=Edits(tasks=(("7", "completed"),)), collectors=[racer], environ=NO_ENV
        )
        assert racer.calls == 1  # collected once, applied again on the moved head
        assert info.commit.generation == 3  # on top of the other writer's commit
        loaded = store.load()
        assert loaded["variables"]["from_the_other_writer"] is True
        assert loaded["variables"]["from_the_plugin"] is True
        assert loaded["tasks"][1]["status"] == "completed"
