"""``ckpt commit`` without typer: the command agents run from hooks, so it must start fast.

Importing typer and building its command costs ~45 ms before any work, more than the
commit itself. So :func:`ckpt_cli.main` hands a ``commit`` (or ``now``) argument list to
:func:`parse` first: it reads the options of :data:`OPTIONS` exactly as click would
(``--opt VALUE``, ``--opt=VALUE``, the next argument taken as the value whatever it looks
like, the last of a repeated single option winning, empty environment variables
ignored), and gives up — returning None — on anything else: ``--help``, an unknown
option, a positional argument, a missing value, a value that does not convert. The typer
command then runs and reports it with its usual message, so the two paths differ only
in speed. ``basic.commit`` (the typer command) and this path both call :func:`run`;
``tests/test_commit_cmd.py`` keeps :data:`OPTIONS` equal to the typer command's options.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from ckptstore.store import Store

__all__ = ["OPTIONS", "parse", "run"]

# option spelling -> (parameter, values taken (0 for a flag), repeatable, int value)
OPTIONS: Final[dict[str, tuple[str, int, bool, bool]]] = {
    "--state": ("state", 1, False, False),
    "--var": ("var", 2, True, False),
    "--secret-var": ("secret_var", 2, True, False),
    "--merge": ("merge", 0, False, False),
    "--phase": ("phase", 1, False, False),
    "--phase-number": ("phase_number", 1, False, True),
    "--phase-status": ("phase_status", 1, False, False),
    "--task": ("task", 1, True, False),
    "--task-add": ("task_add", 1, True, False),
    "--active-task": ("active_task", 1, False, False),
    "--output": ("output", 1, True, False),
    "--unset-var": ("unset_var", 1, True, False),
    "--no-probe": ("no_probe", 0, False, False),
    "--notes": ("notes", 1, False, False),
    "-m": ("notes", 1, False, False),
    "--session": ("session", 1, False, False),
    "-s": ("session", 1, False, False),
    "--json": ("as_json", 0, False, False),
    "--store": ("store", 1, False, False),
}
COMMANDS: Final = ("commit", "now")


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _parse_options(args: Sequence[str]) -> dict[str, Any] | None:
    values: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        name, eq, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        spec = OPTIONS.get(name)
        if spec is None:
            return None  # --help, --, an unknown option, a positional argument: typer's job
        dest, nargs, repeat, is_int = spec
        if nargs == 0:
            if eq:
                return None  # click refuses a value given to a flag
            values[dest] = True
            continue
        if eq:
            if nargs != 1:
                return None
            taken = [inline]
        else:
            if i + nargs > len(args):
                return None
            taken = list(args[i : i + nargs])
            i += nargs
        value: Any = tuple(taken) if nargs > 1 else taken[0]
        if is_int:
            value = _int(value)
            if value is None:
                return None
        if repeat:
            values.setdefault(dest, []).append(value)
        else:
            values[dest] = value
    return values


def parse(argv: Sequence[str], environ: Any = None) -> dict[str, Any] | None:
    """The keyword arguments of :func:`run` for a ``ckpt`` argument list, or None.

    ``argv`` is everything after the program name: group options (``--store``), the
    command, its options. None means "not a commit this parser handles": let typer run.
    """
    env = os.environ if environ is None else environ
    group_store: str | None = None
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        name, eq, inline = argv[i].partition("=")
        if name != "--store":
            return None
        if eq:
            group_store, i = inline, i + 1
        elif i + 1 < len(argv):
            group_store, i = argv[i + 1], i + 2
        else:
            return None
    if i >= len(argv) or argv[i] not in COMMANDS:
        return None
    values = _parse_options(argv[i + 1 :])
    if values is None:
        return None
    if "session" not in values and env.get("CKPT_SESSION"):  # click ignores it when empty
        values["session"] = env["CKPT_SESSION"]
    store = values.pop("store", None) or group_store or env.get("CKPT_STORE") or None
    values["store"] = Path(store) if store is not None else None
    return values


def run(
    *,
    store: Path | None = None,
    state: str | None = None,
    var: Sequence[Sequence[str]] | None = None,
    secret_var: Sequence[Sequence[str]] | None = None,
    merge: bool = False,
    phase: str | None = None,
    phase_number: int | None = None,
    phase_status: str | None = None,
    task: Sequence[str] | None = None,
    task_add: Sequence[str] | None = None,
    active_task: str | None = None,
    output: Sequence[str] | None = None,
    unset_var: Sequence[str] | None = None,
    no_probe: bool = False,
    notes: str = "",
    session: str | None = None,
    as_json: bool = False,
    opened: Store | None = None,
    autostart: bool = False,
) -> None:
    """Capture a checkpoint and print its id (or, with ``as_json``, the commit as JSON).

    ``autostart``: no ``ckpt serve`` answered for this commit; if the store's config
    says ``[serve] auto = true``, one is started in the background for the next.

    Raises:
        CkptError: the input is not valid (InvalidInput) or the store refused it;
            nothing is written.
    """
    from ckpt_cli.inputs import (
        BadArgument,
        edits_from_flags,
        pairs,
        parse_var,
        read_state,
        refuse_redacted,
        report_collector_errors,
    )
    from ckptstore.store import Store

    edits = edits_from_flags(
        phase=phase, phase_number=phase_number, phase_status=phase_status, tasks=task,
        add_tasks=task_add, active_task=active_task, outputs=output,
    )  # fmt: skip
    given, source = read_state(state) if state is not None else (None, "")
    if merge and given is None:
        raise BadArgument("--merge", "needs a partial state: --state FILE --merge (or -)")
    variables = {key: parse_var(key, value) for key, value in pairs(var)}
    secrets = dict(pairs(secret_var))
    for key in secrets.keys() & variables.keys():
        raise BadArgument("--secret-var", f"{key!r} is also given with --var; give it once")
    variables.update(secrets)
    # ``opened``: the store ``ckpt serve`` keeps open (it is ``store``), not closed here.
    with nullcontext(opened) if opened is not None else Store.open(store) as target:
        if given is not None:
            refuse_redacted(given, target, source)
        captured = target.capture(
            given, session=session, merge=merge, edits=edits, variables=variables,
            unset=unset_var or (), notes=notes, source=source, secret=sorted(secrets),
            probe=not no_probe,
        )  # fmt: skip
        autostart = autostart and target.config.serve_auto and target.path is not None
        where = str(target.path)
    report_collector_errors(captured)
    if as_json:
        sys.stdout.write(json.dumps(captured.to_dict(), indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(captured.commit.checkpoint_id + "\n")
    if autostart:
        _start_server(where)


def _start_server(store: str) -> None:
    """Start the store's ``ckpt serve`` for the commits to come; a failure only warns."""
    from ckpt_cli.serve_client import server_starting, start_server

    try:
        if not server_starting(store):
            start_server(store)
    except (OSError, NotImplementedError, ImportError) as err:  # a platform without them
        print(f"warning: could not start ckpt serve for {store}: {err}", file=sys.stderr)
