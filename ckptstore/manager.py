"""CheckpointManager: the original skill's Python API, kept for its users.

Code written for the original ``checkpoint`` module keeps working::

    manager = CheckpointManager()
    manager.create_checkpoint(notes="Phase 5 complete", variables={"completed_phase": 5})
    checkpoint = manager.get_latest_checkpoint()
    if checkpoint:
        for key, value in checkpoint.variables.items():
            os.environ[f"CKPT_{key.upper()}"] = str(value)
        print(checkpoint.checkpoint_id, checkpoint.phase.name, len(checkpoint.tasks))
        context = ContextSummarizer(checkpoint).summary("standard").text

and so does subclassing it to add state (the seed's "Adding Custom State Collectors")::

    class MyCheckpointManager(CheckpointManager):
        def create_checkpoint(self, **kwargs):
            custom_vars = kwargs.get("variables", {})
            custom_vars.update({"my_data": "..."})
            kwargs["variables"] = custom_vars
            return super().create_checkpoint(**kwargs)

Every method is a thin wrapper over :class:`~ckptstore.Store`: ``create_checkpoint``
is :meth:`Store.capture <ckptstore.Store.capture>` (the same collectors as ``ckpt
commit``), the loads are :meth:`Store.checkpoint <ckptstore.Store.checkpoint>`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from ckptstore.commits import CommitInfo
from ckptstore.edits import Edits
from ckptstore.errors import NotFound, StoreExists, StoreNotFound
from ckptstore.location import ENV_STORE, STORE_DIR
from ckptstore.store import Store

__all__ = ["CheckpointManager", "CheckpointView", "Record"]


class Record(Mapping[str, Any]):
    """A JSON object read as attributes too: ``phase.name`` as well as ``phase["name"]``.

    A field the object lacks reads as ``None`` through an attribute, as the original
    skill's dataclasses had every field.
    """

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = dict(data)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _wrap(self._data.get(name))

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"Record({self._data!r})"

    def to_dict(self) -> dict[str, Any]:
        """The plain dict."""
        return dict(self._data)


def _wrap(value: Any) -> Any:
    if isinstance(value, dict):
        return Record(value)
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return [Record(v) for v in value]
    return value


class CheckpointView:
    """A checkpoint as the original skill's ``Checkpoint`` object read.

    ``checkpoint_id``, ``created_at`` and ``notes`` come from the commit; every other
    field loads the checkpoint on first use. ``phase``, each task, dependency and
    output are :class:`Record` objects; ``variables`` is a plain dict. ``data`` is
    the checkpoint in the seed's JSON format (what :class:`~ckptstore.ContextSummarizer`
    and :func:`~ckptstore.restore_env` take).
    """

    def __init__(self, commit: CommitInfo, load: Callable[[], dict[str, Any]]) -> None:
        self.commit = commit
        self._load = load
        self._data: dict[str, Any] | None = None

    @property
    def data(self) -> dict[str, Any]:
        """The checkpoint in the seed's JSON format (loaded once)."""
        if self._data is None:
            self._data = self._load()
        return self._data

    @property
    def checkpoint_id(self) -> str:
        """The checkpoint id (``ckpt-...``)."""
        return self.commit.checkpoint_id

    @property
    def created_at(self) -> str:
        """When the checkpoint was made (ISO 8601)."""
        return self.commit.created_at

    @property
    def notes(self) -> str:
        """The checkpoint's notes."""
        return self.commit.notes

    @property
    def variables(self) -> dict[str, Any]:
        """The checkpoint's variables."""
        value = self.data.get("variables")
        return value if isinstance(value, dict) else {}

    @property
    def tasks(self) -> list[Any]:
        """The tasks, each a :class:`Record`."""
        value = self.data.get("tasks")
        return [_wrap(t) for t in value] if isinstance(value, list) else []

    @property
    def dependencies(self) -> list[Any]:
        """The dependencies, each a :class:`Record`."""
        value = self.data.get("dependencies")
        return [_wrap(d) for d in value] if isinstance(value, list) else []

    @property
    def recent_outputs(self) -> list[Any]:
        """The recent outputs, each a :class:`Record`."""
        value = self.data.get("recent_outputs")
        return [_wrap(o) for o in value] if isinstance(value, list) else []

    @property
    def phases_completed(self) -> list[Any]:
        """The numbers of the completed phases."""
        value = self.data.get("phases_completed")
        return value if isinstance(value, list) else []

    def __getattr__(self, name: str) -> Any:
        # phase, active_task_id, agent_id, agent_tier, session_id, content_hash,
        # parent_checkpoint_id, estimated_tokens and any field the format does not name.
        if name.startswith("_"):
            raise AttributeError(name)
        return _wrap(self.data.get(name))

    def to_dict(self) -> dict[str, Any]:
        """A copy of :attr:`data`."""
        return dict(self.data)

    def __repr__(self) -> str:
        return f"CheckpointView({self.checkpoint_id!r})"


def _open_or_create(store_path: str | os.PathLike[str] | None) -> Store:
    """The store at ``store_path`` (else ``CKPT_STORE``, else the nearest ``.ckpt``).

    A missing store is created, as the original skill created its storage directory.
    """
    try:
        return Store.open(store_path)
    except StoreNotFound:
        if store_path is not None:
            target = Path(store_path)
        elif os.environ.get(ENV_STORE):
            target = Path(os.environ[ENV_STORE])
        else:
            target = Path.cwd() / STORE_DIR
        try:
            return Store.init(target)
        except StoreExists:  # another process created it meanwhile
            return Store.open(target)


class CheckpointManager:
    """The original skill's checkpoint manager, over a ckptstore store.

    ``store_path`` is a store directory (created if missing); without it the store is
    ``CKPT_STORE`` or the nearest ``.ckpt`` at or above the current directory (created
    in the current directory if there is none). ``session`` defaults to HEAD's;
    ``probe=False`` skips the dependency probes on each checkpoint.
    """

    def __init__(
        self,
        store_path: str | os.PathLike[str] | None = None,
        *,
        session: str | None = None,
        probe: bool = True,
    ) -> None:
        self.store = _open_or_create(store_path)
        self.session = session
        self.probe = probe

    def create_checkpoint(
        self,
        notes: str = "",
        variables: Mapping[str, Any] | None = None,
        *,
        state: Mapping[str, Any] | None = None,
        merge: bool = False,
        edits: Edits | None = None,
        unset: Sequence[str] = (),
    ) -> CheckpointView:
        """Capture a checkpoint: the latest plus these changes, like ``ckpt commit``."""
        captured = self.store.capture(
            state, session=self.session, merge=merge, edits=edits, variables=variables,
            unset=unset, notes=notes, probe=self.probe,
        )  # fmt: skip
        return self._view(captured.commit)

    def get_latest_checkpoint(self) -> CheckpointView | None:
        """The session's newest checkpoint, or ``None`` when it has none."""
        return self.load_checkpoint(f"sessions/{self.session}" if self.session else "HEAD")

    def load_checkpoint(self, checkpoint_id: str) -> CheckpointView | None:
        """The checkpoint a REF names (a checkpoint id, ``HEAD~2``...), or ``None``."""
        try:
            info = self.store.get_commit(checkpoint_id)
        except NotFound:
            return None
        return self._view(info)

    def list_checkpoints(self, limit: int = 20) -> list[CommitInfo]:
        """The session's checkpoints, newest first (``[]`` when it has none)."""
        try:
            return self.store.log(session=self.session, limit=limit)
        except NotFound:
            return []

    def _view(self, info: CommitInfo) -> CheckpointView:
        return CheckpointView(info, lambda: self.store.load(info.id))

    def close(self) -> None:
        """Close the store."""
        self.store.close()

    def __enter__(self) -> CheckpointManager:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
