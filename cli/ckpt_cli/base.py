"""What every ``ckpt`` command shares: the typer app, common options, the error edge.

Errors are mapped to exit codes by one rule (``inputs.exit_code``), applied here by
:func:`handle_errors` and, for the typer-free commit, by ``ckpt_cli.main``: bad input
exits 2, anything else ckptstore reports (missing store, unknown ref, corruption) exits
1, and neither prints a traceback.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional, ParamSpec, TypeVar

import typer
from typer.core import TyperCommand, TyperGroup

from ckpt_cli.inputs import exit_code
from ckptstore import CkptError, NotFound, Store

# click's exception base class, reached through typer's public re-export: typer
# vendors click in some releases and depends on it in others.
_CLICK_ERROR: type[Exception] = next(
    cls for cls in typer.BadParameter.__mro__ if cls.__name__ == "ClickException"
)


class _OneLineErrors(TyperGroup):
    """Usage errors print as one ``error:`` line (exit 2), like every other error."""

    def main(  # type: ignore[override]
        self, args: Any = None, prog_name: Any = None, complete_var: Any = None,
        standalone_mode: bool = True, **extra: Any,
    ) -> Any:  # fmt: skip
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            result = super().main(args, prog_name, complete_var, False, **extra)
        except _CLICK_ERROR as err:
            if type(err).__name__ == "NoArgsIsHelpError":  # bare `ckpt`: show the help
                typer.echo(err.ctx.get_help(), err=True)  # type: ignore[attr-defined]
            else:
                ctx = getattr(err, "ctx", None)
                hint = f"; see `{ctx.command_path} --help`" if ctx is not None else ""
                message = err.format_message().rstrip(".")  # type: ignore[attr-defined]
                typer.echo(f"error: {message}{hint}", err=True)
            sys.exit(err.exit_code)  # type: ignore[attr-defined]
        except typer.Abort:
            typer.echo("aborted", err=True)
            sys.exit(1)
        # In non-standalone mode click returns an Exit's code instead of exiting.
        sys.exit(result if isinstance(result, int) else 0)


app = typer.Typer(
    cls=_OneLineErrors,
    name="ckpt",
    help="Content-addressed checkpoints for AI-agent sessions: commit, load, log.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,
)

P = ParamSpec("P")
R = TypeVar("R")

_STORE_HELP = (
    "Store directory (default: $CKPT_STORE, else the nearest .ckpt at or above the current"
    " directory)."
)
# The env var is read by the group-level option only: `ckpt --store A cmd` and
# `ckpt cmd --store A` both beat CKPT_STORE, and a command-level --store beats both.
GlobalStoreOpt = Annotated[
    Optional[Path],  # noqa: UP045 - typer reads the annotation at runtime
    typer.Option("--store", envvar="CKPT_STORE", help=_STORE_HELP, show_default=False),
]
StoreOpt = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option("--store", help=_STORE_HELP, show_default=False),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
RevealOpt = Annotated[
    bool, typer.Option("--reveal", help="Show secret variables' values instead of [redacted].")
]
SessionOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--session",
        "-s",
        envvar="CKPT_SESSION",
        help="Session name (default: HEAD's).",
        show_default=False,
    ),
]


class PairedOptions(TyperCommand):
    """A command whose ``--var`` takes two values (KEY VALUE), repeatable."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if param.name == "var":
                param.nargs = 2


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except CkptError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(exit_code(err)) from None

    return wrapper


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False))


def open_store(ctx: typer.Context, store: Path | None) -> Store:
    return Store.open(store or (ctx.obj or {}).get("store"))


@app.callback()
def _main(ctx: typer.Context, store: GlobalStoreOpt = None) -> None:
    ctx.obj = {"store": store}


def variables_of(opened: Store, ref: str) -> dict[str, Any]:
    """The variables of checkpoint ``ref`` (empty if there is none): what redaction masks."""
    try:
        found = opened.show(ref, "variables")
    except NotFound:
        return {}
    return found if isinstance(found, dict) else {}
