"""Auto-checkpoint hooks: ``with store.session(name) as s`` and the seed's three events."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ckptstore import AutoCheckpoint, Edits, Store

STATE: dict[str, Any] = {
    "phase": {"name": "Phase 5", "number": 5, "status": "in_progress"},
    "phases_completed": [1, 2, 3, 4],
    "tasks": [{"id": "7", "subject": "deploy", "status": "in_progress"}],
    "variables": {"target": "prod"},
}


@pytest.fixture(autouse=True)
def _no_agent_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CKPT_AGENT_ID", "CKPT_AGENT_TIER", "CKPT_SESSION_ID"):
        monkeypatch.delenv(name, raising=False)


def deploy(step: int) -> None:
    if step == 3:
        raise ConnectionError("vault is sealed")


def test_the_hooks_record_what_the_seed_hooks_recorded(store: Store) -> None:
    store.commit(STATE, session="agent-1")
    with store.session("agent-1") as s:
        assert isinstance(s, AutoCheckpoint)
        s.on_task_complete("7", {"applied": 3})
        after_task = store.load("agent-1")
        s.on_phase_complete(5)
        s.checkpoint("manual", variables={"note": "hi"}, edits=Edits(add_tasks=("verify",)))
    assert after_task["tasks"][0]["status"] == "completed"
    assert after_task["variables"] == {
        "target": "prod", "last_task": "7", "result": {"applied": 3},
    }  # fmt: skip
    log = store.log(session="agent-1")
    assert [e.notes for e in log] == ["manual", "Phase 5 complete", "Task 7 complete", ""]
    loaded = store.load("agent-1")
    assert loaded["phases_completed"] == [1, 2, 3, 4, 5]
    assert loaded["phase"]["status"] == "completed"
    assert loaded["variables"]["completed_phase"] == 5
    assert loaded["variables"]["note"] == "hi"
    assert loaded["tasks"][-1]["subject"] == "verify"
    assert s.last is not None
    assert s.last.id == log[0].id


def run_agent(store: Store) -> None:
    with store.session("agent-1") as s:
        for step in range(5):
            s.checkpoint(f"step {step}", variables={"step": step})
            deploy(step)


def test_an_exception_in_the_block_is_checkpointed_and_re_raised(store: Store) -> None:
    store.commit(STATE, session="agent-1")
    with pytest.raises(ConnectionError, match="vault is sealed"):
        run_agent(store)
    log = store.log(session="agent-1")
    assert [e.notes for e in log[:3]] == ["Error: ConnectionError", "step 3", "step 2"]
    variables = store.load("agent-1")["variables"]
    assert variables["error_type"] == "ConnectionError"
    assert variables["error_msg"] == "vault is sealed"
    assert variables["step"] == 3  # the error checkpoint builds on the latest


def test_on_error_and_task_ids_the_checkpoint_lacks(store: Store) -> None:
    hooks = store.session("fresh")
    hooks.on_task_complete(42, object())  # no such task, a result that is not JSON
    hooks.on_error("Timeout", "the ledger took too long")
    loaded = store.load("fresh")
    assert loaded["tasks"] == []
    assert loaded["variables"]["last_task"] == 42
    assert loaded["variables"]["result"].startswith("<object object at")
    assert store.log(session="fresh")[0].notes == "Error: Timeout"


def test_a_clean_block_and_sys_exit_add_no_error_checkpoint(store: Store) -> None:
    store.commit(STATE, session="s")
    with store.session("s"):
        pass
    with pytest.raises(SystemExit), store.session("s"):
        raise SystemExit(0)
    assert len(store.log(session="s")) == 1


def test_keyboard_interrupt_is_checkpointed_too(store: Store) -> None:
    store.commit(STATE, session="s")
    with pytest.raises(KeyboardInterrupt), store.session("s"):
        raise KeyboardInterrupt
    assert store.load("s")["variables"]["error_type"] == "KeyboardInterrupt"


class Broken:
    name = "broken"

    def collect(self, context: Any) -> None:
        raise RuntimeError("collector down")


def test_when_the_error_checkpoint_fails_the_original_exception_still_wins(
    store_dir: Path,
) -> None:
    (store_dir / "config.toml").write_text('[collectors]\non_error = "fail"\n')
    with Store.open(store_dir) as store:
        store.commit(STATE, session="s")
        hooks = store.session("s")
        hooks.store = _WithCollector(store, Broken())  # every hook commit now fails
        with pytest.raises(ValueError, match="the real problem") as caught, hooks:
            raise ValueError("the real problem")
        notes = getattr(caught.value, "__notes__", [])
        assert len(notes) == 1
        assert "no error checkpoint was recorded" in notes[0]
        assert "collector 'broken' failed" in notes[0]
        assert len(store.log(session="s")) == 1


class _WithCollector:
    """A store whose captures also run one more collector (as a plugin would)."""

    def __init__(self, store: Store, collector: Any) -> None:
        self.store = store
        self.collector = collector

    def capture(self, *args: Any, **kwargs: Any) -> Any:
        return self.store.capture(*args, collectors=[self.collector], **kwargs)


def test_the_default_session_is_heads(store: Store) -> None:
    store.commit(STATE, session="work")
    assert store.session().session == "work"
    store.session().on_error("E", "m")
    assert store.load("work")["variables"]["error_type"] == "E"
