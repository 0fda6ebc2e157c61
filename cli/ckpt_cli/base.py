"""What every ``ckpt`` command shares: the typer app, common options, the error edge.

Errors are mapped to exit codes in one place (:func:`handle_errors`): bad input exits 2,
anything else ckptstore reports (missing store, unknown ref, corruption) exits 1, and
neither prints a traceback.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional, ParamSpec, TypeVar

import typer
from typer.core import TyperCommand

from ckptstore import CkptError, InvalidInput, Store

app = typer.Typer(
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


def pairs(values: list[Any] | None) -> list[tuple[str, str]]:
    pairs = [tuple(v) for v in values or []]
    if any(len(p) != 2 for p in pairs):  # pragma: no cover - guards a typer upgrade
        raise RuntimeError("--var values did not arrive as pairs; typer changed under us")
    return [(str(k), str(v)) for k, v in pairs]


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except CkptError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(2 if isinstance(err, InvalidInput) else 1) from None

    return wrapper


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False))


def open_store(ctx: typer.Context, store: Path | None) -> Store:
    return Store.open(store or (ctx.obj or {}).get("store"))


@app.callback()
def _main(ctx: typer.Context, store: GlobalStoreOpt = None) -> None:
    ctx.obj = {"store": store}
