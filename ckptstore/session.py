"""Auto-checkpoint hooks: the seed's "Auto-Checkpoint Events" as a context manager.

::

    with store.session("agent-1") as s:
        s.checkpoint(notes="starting", variables={"target": "prod"})
        run_phase(5)
        s.on_phase_complete(5)          # notes "Phase 5 complete", completed_phase = 5
        s.on_task_complete("7", "ok")   # task 7 completed, last_task / result set
    # an exception inside the block records a checkpoint with the error, then re-raises

Each hook is one capturing commit (:meth:`ckptstore.Store.capture`): the session's
latest checkpoint plus the hook's changes, the environment, the dependency probes
(unless ``probe=False``) and the plugin collectors. The variables each hook sets are
the seed's, so code written for the original hooks reads the same values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Protocol

from ckptstore.collectors import Captured
from ckptstore.commits import CommitInfo
from ckptstore.edits import COMPLETED, Edits
from ckptstore.errors import InvalidValue
from ckptstore.objects import canonical

__all__ = ["AutoCheckpoint"]


class _Capturing(Protocol):
    """The part of :class:`ckptstore.Store` the hooks use."""

    def capture(
        self,
        state: Mapping[str, Any] | None = None,
        *,
        session: str | None = None,
        merge: bool = False,
        edits: Edits | None = None,
        variables: Mapping[str, Any] | None = None,
        unset: Sequence[str] = (),
        notes: str = "",
        probe: bool = True,
    ) -> Captured: ...


def _json(value: Any) -> Any:
    """``value`` if it can be stored, else its text: a hook never fails on a result."""
    try:
        return canonical(value)
    except InvalidValue:
        return repr(value)


class AutoCheckpoint:
    """Checkpoint hooks bound to one session of a store (``Store.session(name)``)."""

    def __init__(self, store: _Capturing, session: str, *, probe: bool = True) -> None:
        self.store = store
        self.session = session
        self.probe = probe
        self.last: CommitInfo | None = None
        """The newest checkpoint these hooks recorded."""

    def checkpoint(
        self,
        notes: str = "",
        *,
        variables: Mapping[str, Any] | None = None,
        unset: Sequence[str] = (),
        edits: Edits | None = None,
        state: Mapping[str, Any] | None = None,
        merge: bool = False,
    ) -> CommitInfo:
        """Record a checkpoint: the latest plus these changes (see ``Store.capture``)."""
        captured = self.store.capture(
            state, session=self.session, merge=merge, edits=edits, variables=variables,
            unset=unset, notes=notes, probe=self.probe,
        )  # fmt: skip
        self.last = captured.commit
        return captured.commit

    def on_phase_complete(self, phase: int, *, notes: str | None = None) -> CommitInfo:
        """Phase ``phase`` is done: added to ``phases_completed``, ``completed_phase`` set.

        When it is the current phase, its status becomes ``completed``.
        """
        return self.checkpoint(
            notes if notes is not None else f"Phase {phase} complete",
            variables={"completed_phase": phase},
            edits=Edits(completed_phases=(phase,)),
        )

    def on_task_complete(
        self, task_id: str | int, result: Any = None, *, notes: str | None = None
    ) -> CommitInfo:
        """Task ``task_id`` is done: completed, ``last_task`` and ``result`` set.

        A task id the checkpoint lacks only sets the variables, as the seed's hook did.
        """
        return self.checkpoint(
            notes if notes is not None else f"Task {task_id} complete",
            variables={"last_task": _json(task_id), "result": _json(result)},
            edits=Edits(tasks=((str(task_id), COMPLETED),), missing_tasks_ok=True),
        )

    def on_error(self, kind: str, message: str, *, notes: str | None = None) -> CommitInfo:
        """An error happened: ``error_type`` and ``error_msg`` set, notes ``Error: kind``."""
        return self.checkpoint(
            notes if notes is not None else f"Error: {kind}",
            variables={"error_type": kind, "error_msg": message},
        )

    def __enter__(self) -> AutoCheckpoint:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Errors and Ctrl-C are worth a checkpoint; a clean sys.exit is not.
        if exc is None or not isinstance(exc, Exception | KeyboardInterrupt):
            return
        try:
            self.on_error(type(exc).__name__, str(exc))
        except Exception as err:  # the block's exception is the one to see
            exc.add_note(f"ckptstore: no error checkpoint was recorded: {err}")
