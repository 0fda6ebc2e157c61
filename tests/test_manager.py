"""The seed's Python API: CheckpointManager, its checkpoints, subclassing it to add state.

The code blocks of the seed's "Auto-Checkpoint Events", "Programmatic Restoration" and
"Adding Custom State Collectors" sections run here nearly verbatim.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from ckptstore import CheckpointManager, ContextSummarizer, Store, restore_env
from ckptstore.location import STORE_DIR, STORE_FILE


@pytest.fixture(autouse=True)
def _no_agent_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CKPT_AGENT_ID", "CKPT_AGENT_TIER", "CKPT_SESSION_ID"):
        monkeypatch.delenv(name, raising=False)


def seed_state() -> dict[str, Any]:
    return {
        "phase": {"name": "Phase 5: Agent Bootstrapping", "number": 5, "status": "in_progress"},
        "tasks": [
            {"id": "1", "subject": "Create checkpoint module", "status": "completed"},
            {"id": "2", "subject": "Write the CLI", "status": "in_progress"},
        ],
        "dependencies": [{"name": "vault", "type": "service", "status": "available"}],
        "variables": {"target_env": "production"},
        "agent_id": "my-agent",
        "agent_tier": 1,
    }


def test_a_manager_creates_its_store_where_told(tmp_path: Path) -> None:
    target = tmp_path / "storage"
    with CheckpointManager(target) as manager:
        assert manager.get_latest_checkpoint() is None
        assert manager.list_checkpoints() == []
        created = manager.create_checkpoint(notes="Starting task X")
    assert (target / STORE_FILE).is_file()
    with CheckpointManager(str(target)) as again:  # opens the existing store
        latest = again.get_latest_checkpoint()
        assert latest is not None
        assert latest.checkpoint_id == created.checkpoint_id
        assert latest.notes == "Starting task X"


def test_without_a_path_it_uses_the_nearest_store_or_creates_one_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with CheckpointManager() as manager:
        manager.create_checkpoint(variables={"a": 1})
    assert (tmp_path / STORE_DIR / STORE_FILE).is_file()
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    with CheckpointManager() as manager:  # found upwards, like git
        latest = manager.get_latest_checkpoint()
        assert latest is not None
        assert latest.variables == {"a": 1}


def test_the_seed_auto_checkpoint_events(tmp_path: Path) -> None:
    manager = CheckpointManager(tmp_path / "s")
    manager.store.commit(seed_state())

    def on_phase_complete(phase_num: int) -> None:
        manager.create_checkpoint(
            notes=f"Phase {phase_num} complete", variables={"completed_phase": phase_num}
        )

    def on_task_complete(task_id: str, result: Any) -> None:
        manager.create_checkpoint(variables={"last_task": task_id, "result": result})

    def on_error(error_type: str, message: str) -> None:
        manager.create_checkpoint(
            notes=f"Error: {error_type}",
            variables={"error_type": error_type, "error_msg": message},
        )

    on_phase_complete(5)
    on_task_complete("2", "ok")
    on_error("Timeout", "vault did not answer")
    entries = manager.list_checkpoints()
    assert [e.notes for e in entries] == ["Error: Timeout", "", "Phase 5 complete", ""]
    latest = manager.get_latest_checkpoint()
    assert latest is not None
    assert latest.variables == {
        "target_env": "production", "completed_phase": 5, "last_task": "2", "result": "ok",
        "error_type": "Timeout", "error_msg": "vault did not answer",
    }  # fmt: skip
    assert len(latest.tasks) == 2  # the rest of the checkpoint is inherited
    manager.close()


def test_the_seed_programmatic_restoration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with Store.init(tmp_path / "s") as store:
        info = store.commit(seed_state())
    manager = CheckpointManager(store_path=tmp_path / "s")
    checkpoint = manager.get_latest_checkpoint()

    if checkpoint:
        for key, value in checkpoint.variables.items():
            monkeypatch.setitem(os.environ, f"CKPT_{key.upper()}", str(value))
        summarizer = ContextSummarizer(checkpoint)
        context = summarizer.summary("standard").text
        print(f"Restored from: {checkpoint.checkpoint_id}")
        print(f"Phase: {checkpoint.phase.name if checkpoint.phase else 'Unknown'}")
        print(f"Tasks: {len(checkpoint.tasks)}")

    assert os.environ["CKPT_TARGET_ENV"] == "production"
    assert "Phase 5: Agent Bootstrapping" in context
    assert capsys.readouterr().out.splitlines() == [
        f"Restored from: {info.checkpoint_id}",
        "Phase: Phase 5: Agent Bootstrapping",
        "Tasks: 2",
    ]
    assert checkpoint is not None
    assert restore_env(checkpoint.data).values == {"CKPT_TARGET_ENV": "production"}
    manager.close()


class MyCheckpointManager(CheckpointManager):
    """The seed's "Adding Custom State Collectors" example, verbatim but for the data."""

    def collect_my_state(self) -> dict[str, Any]:
        return {"my_data": "collected"}

    def create_checkpoint(self, **kwargs: Any) -> Any:  # type: ignore[override]
        custom_vars = kwargs.get("variables", {})
        custom_vars.update(self.collect_my_state())
        kwargs["variables"] = custom_vars
        return super().create_checkpoint(**kwargs)


def test_subclassing_adds_custom_state(tmp_path: Path) -> None:
    with MyCheckpointManager(tmp_path / "s") as manager:
        created = manager.create_checkpoint(notes="custom", variables={"own": 1})
        assert created.variables == {"own": 1, "my_data": "collected"}
        assert manager.store.load()["variables"] == {"own": 1, "my_data": "collected"}


def test_checkpoint_objects_read_like_the_originals(tmp_path: Path) -> None:
    with CheckpointManager(tmp_path / "s", session="agent-1") as manager:
        manager.store.commit(seed_state(), session="agent-1")
        first = manager.get_latest_checkpoint()
        manager.create_checkpoint(notes="second")
        latest = manager.get_latest_checkpoint()
        assert first is not None
        assert latest is not None
        assert latest.parent_checkpoint_id == first.checkpoint_id
        assert latest.session_id == "agent-1"
        assert latest.phase.number == 5
        assert latest.phase["status"] == "in_progress"
        assert latest.phase.started_at is None  # a field the phase lacks reads as None
        assert [t.status for t in latest.tasks] == ["completed", "in_progress"]
        assert latest.dependencies[0].name == "vault"
        assert (latest.agent_id, latest.agent_tier) == ("my-agent", 1)
        assert latest.estimated_tokens > 0
        assert latest.to_dict() == manager.store.load("agent-1")
        again = manager.load_checkpoint(first.checkpoint_id)
        assert again is not None
        assert again.variables == first.variables
        assert manager.load_checkpoint("ckpt-20000101-000000-00000000") is None
        assert manager.load_checkpoint("HEAD~1") is not None
        assert [c.notes for c in manager.list_checkpoints(limit=1)] == ["second"]


def test_a_view_loads_the_checkpoint_only_when_a_field_is_read(tmp_path: Path) -> None:
    with CheckpointManager(tmp_path / "s") as manager:
        manager.store.commit(seed_state())
        manager.store.objects.stats.reset()
        latest = manager.create_checkpoint(variables={"x": 1})
        # What the commit wrote is cached: drop it, so that a load shows as reads.
        manager.store.objects.drop_cache()
        read_by_commit = manager.store.objects.stats.objects_read
        assert latest.checkpoint_id.startswith("ckpt-")
        assert manager.store.objects.stats.objects_read == read_by_commit
        assert latest.variables["x"] == 1
        assert manager.store.objects.stats.objects_read > read_by_commit
