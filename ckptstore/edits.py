"""Edits: the explicit changes ``ckpt commit`` flags ask for, as data applied to a state.

==========================  ================================================================
flag                        effect on the checkpoint
==========================  ================================================================
``--phase NAME``            a phase of another name starts: ``{name, number, status:
                            "in_progress", started_at: now}``; the same name keeps the phase
``--phase-number N``        ``phase.number`` (a phase object is created if there is none)
``--phase-status S``        ``phase.status``; ``completed`` also adds the phase's number to
                            ``phases_completed``
``--task-add SUBJECT``      appends ``{id, subject, status: "pending", owner: null, blocks:
                            [], blocked_by: []}``; the id is one more than the largest
                            numeric id (ids are compared as text, ``7`` matches ``"7"``)
``--task ID=STATUS``        the ``status`` of the task(s) with that id; an unknown id is
                            an error
``--active-task ID``        ``active_task_id`` (the task must exist; ``""`` clears it)
``--output TYPE:ACTION:R``  appends ``{type, id, action, success: R == "ok", timestamp}``
``--var KEY VALUE``         ``variables[KEY] = VALUE``
``--unset-var KEY``         removes ``variables[KEY]`` (an error if it is not set)
==========================  ================================================================

They apply in that order, so ``--task-add X --task 8=in_progress`` can start the task
it adds. :meth:`Edits.apply` changes a state in place and raises before anything is
written when an edit cannot apply.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final, NamedTuple

from ckptstore.errors import InvalidCheckpoint, InvalidOption, UnknownTask

__all__ = ["COMPLETED", "Edits", "Output", "parse_output", "parse_task", "task_key"]

COMPLETED: Final = "completed"
_RESULTS: Final = {"ok": True, "fail": False}


def task_key(value: Any) -> str | None:
    """A task id as text, so ``7`` and ``"7"`` name the same task (``None``: no id)."""
    if isinstance(value, bool) or value is None:
        return None
    return str(value) if isinstance(value, str | int) else None


class Output(NamedTuple):
    """One ``--output TYPE:ACTION:ok|fail``: a recent output to append."""

    type: str
    action: str
    success: bool


def parse_task(text: str) -> tuple[str, str]:
    """``ID=STATUS`` → ``(id, status)`` (the last ``=`` splits, so ids may hold one).

    Raises:
        InvalidOption: if the text is not ``ID=STATUS`` with both parts non-empty.
    """
    task_id, sep, status = text.rpartition("=")
    if not sep or not task_id.strip() or not status.strip():
        raise InvalidOption("--task", text, "must be ID=STATUS, e.g. --task 7=completed")
    return task_id.strip(), status.strip()


def parse_output(text: str) -> Output:
    """``TYPE:ACTION:ok|fail`` → an :class:`Output` (ACTION may itself contain ``:``).

    Raises:
        InvalidOption: if the text does not have that shape.
    """
    kind, sep, rest = text.partition(":")
    action, sep2, result = rest.rpartition(":")
    if not sep or not sep2 or not kind.strip() or not action.strip():
        raise InvalidOption(
            "--output", text, "must be TYPE:ACTION:ok|fail, e.g. --output evidence:terraform:ok"
        )
    if result.strip().lower() not in _RESULTS:
        raise InvalidOption("--output", text, f"the result must be ok or fail, not {result!r}")
    return Output(kind.strip(), action.strip(), _RESULTS[result.strip().lower()])


class Edits(NamedTuple):
    """Changes to apply to a checkpoint (see the module docstring for each).

    ``completed_phases`` adds phase numbers to ``phases_completed`` (and completes the
    current phase when it has one of those numbers). ``missing_tasks_ok`` skips
    ``tasks`` entries whose id the checkpoint lacks instead of failing (the
    auto-checkpoint hooks use it: a hook must not break the agent).
    """

    phase: str | None = None
    phase_number: int | None = None
    phase_status: str | None = None
    add_tasks: tuple[str, ...] = ()
    tasks: tuple[tuple[str, str], ...] = ()
    active_task: str | None = None
    outputs: tuple[Output, ...] = ()
    variables: Mapping[str, Any] = MappingProxyType({})
    unset: tuple[str, ...] = ()
    completed_phases: tuple[int, ...] = ()
    missing_tasks_ok: bool = False

    def only_variables(self) -> bool:
        """Whether these edits touch nothing but ``variables`` (the cheap commit path)."""
        return (
            self.phase is None
            and self.phase_number is None
            and self.phase_status is None
            and not self.completed_phases
            and not self.add_tasks
            and not self.tasks
            and self.active_task is None
            and not self.outputs
        )

    def with_variables(self, variables: Mapping[str, Any], unset: Sequence[str] = ()) -> Edits:
        """These edits plus more variables to set and unset."""
        return self._replace(variables={**self.variables, **variables}, unset=(*self.unset, *unset))

    def apply(self, state: dict[str, Any], *, now: str) -> None:
        """Apply the edits to ``state`` in place; ``now`` stamps new phases and outputs.

        Raises:
            UnknownTask: ``tasks`` or ``active_task`` names a task id the state lacks.
            InvalidCheckpoint: a variable to unset is not set, or the state's phase or
                task list is not an object / a list.
        """
        self._apply_phase(state, now)
        if self.add_tasks or self.tasks or self.active_task is not None:
            self._apply_tasks(state)
        if self.outputs:
            outputs = _list(state, "recent_outputs")
            stamp = _stamp(now)
            for output in self.outputs:
                outputs.append(
                    {
                        "type": output.type,
                        "id": f"{output.type}-{stamp}-{os.urandom(3).hex()}",
                        "action": output.action,
                        "success": output.success,
                        "timestamp": now,
                    }
                )
        if self.variables or self.unset:
            variables = state.get("variables")
            if variables is None:
                variables = state["variables"] = {}
            if not isinstance(variables, dict):
                raise InvalidCheckpoint("$.variables", "is not an object, so it cannot be edited")
            variables.update(self.variables)
            for name in self.unset:
                if name not in variables:
                    raise InvalidCheckpoint(
                        f"$.variables.{name}", "is not set, so it cannot be unset"
                    )
                del variables[name]

    def _apply_phase(self, state: dict[str, Any], now: str) -> None:
        if self.completed_phases:
            phase = state.get("phase")
            done = _list(state, "phases_completed")
            for number in self.completed_phases:
                if number not in done:
                    done.append(number)
                if isinstance(phase, dict) and phase.get("number") == number:
                    state["phase"] = {**phase, "status": COMPLETED}
        if self.phase is None and self.phase_number is None and self.phase_status is None:
            return
        phase = state.get("phase")
        if phase is not None and not isinstance(phase, dict):
            raise InvalidCheckpoint("$.phase", "is not an object, so it cannot be edited")
        if self.phase is not None and (phase is None or phase.get("name") != self.phase):
            phase = {"name": self.phase, "number": None, "status": "in_progress", "started_at": now}
        elif phase is None:
            phase = {}
        else:
            phase = dict(phase)
        if self.phase_number is not None:
            phase["number"] = self.phase_number
        if self.phase_status is not None:
            phase["status"] = self.phase_status
        state["phase"] = phase
        current = phase.get("number")
        if phase.get("status") == COMPLETED and isinstance(current, int):
            done = _list(state, "phases_completed")
            if current not in done:
                done.append(current)

    def _apply_tasks(self, state: dict[str, Any]) -> None:
        tasks = _list(state, "tasks")
        for subject in self.add_tasks:
            tasks.append(
                {
                    "id": _next_id(tasks),
                    "subject": subject,
                    "status": "pending",
                    "owner": None,
                    "blocks": [],
                    "blocked_by": [],
                }
            )
        by_id: dict[str, list[dict[str, Any]]] = {}
        for task in tasks:
            if isinstance(task, dict) and (key := task_key(task.get("id"))) is not None:
                by_id.setdefault(key, []).append(task)
        for task_id, status in self.tasks:
            found = by_id.get(task_id)
            if not found:
                if self.missing_tasks_ok:
                    continue
                raise UnknownTask(task_id, list(by_id))
            for task in found:
                task["status"] = status
        if self.active_task is not None:
            if self.active_task == "":
                state["active_task_id"] = None
            elif self.active_task in by_id:
                state["active_task_id"] = by_id[self.active_task][0]["id"]
            else:
                raise UnknownTask(self.active_task, list(by_id), option="--active-task")


def _list(state: dict[str, Any], name: str) -> list[Any]:
    value = state.get(name)
    if value is None:
        value = state[name] = []
    if not isinstance(value, list):
        raise InvalidCheckpoint(f"$.{name}", "is not a list, so it cannot be edited")
    return value


def _next_id(tasks: list[Any]) -> str:
    keys = {task_key(t.get("id")) for t in tasks if isinstance(t, dict)}
    numbers = [int(k) for k in keys if k is not None and k.isascii() and k.isdigit()]
    candidate = max(numbers, default=0) + 1
    while str(candidate) in keys:
        candidate += 1
    return str(candidate)


def _stamp(now: str) -> str:
    try:
        return datetime.fromisoformat(now).strftime("%Y%m%d-%H%M%S")
    except ValueError:
        return "00000000-000000"
