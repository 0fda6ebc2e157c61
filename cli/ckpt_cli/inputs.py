"""Reading what the user hands the CLI: state files, stdin, --var values."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer

from ckptstore import InvalidInput
from ckptstore.collectors import Captured
from ckptstore.edits import Edits, parse_output, parse_task


class BadArgument(InvalidInput):
    """A command-line argument could not be used (exit code 2)."""

    def __init__(self, option: str, problem: str) -> None:
        self.option = option
        self.problem = problem
        super().__init__(f"{option}: {problem}")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r} in a JSON object")
        out[key] = value
    return out


def parse_json(text: str) -> Any:
    """Strict JSON: no NaN/Infinity, no duplicate keys."""
    return json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_unique_keys)


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


def report_collector_errors(captured: Captured) -> None:
    """One warning line on stderr per collector that failed (the commit went ahead)."""
    for error in captured.errors:
        typer.echo(
            f"warning: collector {error.collector!r} failed ({error.error}); recorded in the"
            " checkpoint's collector_errors",
            err=True,
        )
