"""Reading what the user hands the CLI: state files, stdin, --var values.

No typer here: ``ckpt commit`` runs without it (:mod:`ckpt_cli.commit_cmd`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ckptstore.edits import Edits, parse_output, parse_task
from ckptstore.errors import CkptError, InvalidInput
from ckptstore.json_text import parse_json

if TYPE_CHECKING:
    from ckptstore.collectors import Captured
    from ckptstore.store import Store


class BadArgument(InvalidInput):
    """A command-line argument could not be used (exit code 2)."""

    def __init__(self, option: str, problem: str) -> None:
        self.option = option
        self.problem = problem
        super().__init__(f"{option}: {problem}")


def exit_code(err: CkptError) -> int:
    """The exit code of an error ckptstore reports: 2 for bad input, 1 for the rest."""
    return 2 if isinstance(err, InvalidInput) else 1


def read_state(source: str) -> tuple[Any, str]:
    """Read a checkpoint from a file path or ``-`` (stdin); return it and its display name."""
    name = "<stdin>" if source == "-" else source
    try:
        raw = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    except OSError as err:
        raise BadArgument("--state", f"cannot read {name!r}: {err.strerror or err}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise BadArgument(
            "--state", f"{name} is not UTF-8 (bad byte at offset {err.start})"
        ) from None
    try:
        return parse_json(text), name
    except RecursionError:
        raise BadArgument("--state", f"{name} is nested too deeply") from None
    except ValueError as err:
        raise BadArgument("--state", f"{name} is not valid JSON: {err}") from None


def parse_var(key: str, value: str) -> Any:
    """A --var VALUE: JSON when it parses as JSON, else the string itself.

    JSON too deep for the parser is refused rather than kept as a string: the user meant
    a value, and storing its text instead would hide the mistake.
    """
    try:
        return parse_json(value)
    except RecursionError:
        raise BadArgument("--var", f"the value of {key!r} is nested too deeply") from None
    except ValueError:
        return value


def edits_from_flags(
    *,
    phase: str | None,
    phase_number: int | None,
    phase_status: str | None,
    tasks: Sequence[str] | None,
    add_tasks: Sequence[str] | None,
    active_task: str | None,
    outputs: Sequence[str] | None,
) -> Edits:
    """The flag edits of ``ckpt commit`` (raises InvalidOption on malformed syntax)."""
    return Edits(
        phase=phase,
        phase_number=phase_number,
        phase_status=phase_status,
        add_tasks=tuple(add_tasks or ()),
        tasks=tuple(parse_task(t) for t in tasks or ()),
        active_task=active_task,
        outputs=tuple(parse_output(o) for o in outputs or ()),
    )


def pairs(values: Sequence[Sequence[Any]] | None) -> list[tuple[str, str]]:
    """The (KEY, VALUE) pairs of a repeatable two-value option such as ``--var``."""
    found = [tuple(v) for v in values or []]
    if any(len(p) != 2 for p in found):  # pragma: no cover - guards a typer upgrade
        raise RuntimeError("--var values did not arrive as pairs; typer changed under us")
    return [(str(k), str(v)) for k, v in found]


def refuse_redacted(given: Any, opened: Store, source: str) -> None:
    """A state from `load` without --reveal would overwrite secrets with "[redacted]"."""
    variables = given.get("variables") if isinstance(given, dict) else None
    if not isinstance(variables, dict):
        return
    from ckptstore.secrets import REDACTED

    if not any(value == REDACTED for value in variables.values()):
        return  # the common case: no need to read the secret policy
    policy = opened.secrets()
    for name, value in variables.items():
        if value == REDACTED and policy.is_secret(name):
            raise BadArgument(
                "--state",
                f"{source}: variable {name!r} is {REDACTED} (from a `ckpt load` without"
                " --reveal); committing it would replace the secret: load with --reveal,"
                " or leave the variable out",
            )


def report_collector_errors(captured: Captured) -> None:
    """One warning line on stderr per collector that failed (the commit went ahead)."""
    for error in captured.errors:
        print(
            f"warning: collector {error.collector!r} failed ({error.error}); recorded in the"
            " checkpoint's collector_errors",
            file=sys.stderr,
        )
