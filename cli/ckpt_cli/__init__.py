"""The ``ckpt`` command-line interface of ckptstore."""

from __future__ import annotations

import sys
from importlib import import_module

TYPE_CHECKING = False  # typing itself costs a commit handed to `ckpt serve` ~3 ms
if TYPE_CHECKING:
    from typing import Any, Final

COMMANDS: Final = {
    "init": "basic", "commit": "basic", "now": "basic", "load": "basic", "show": "basic",
    "log": "basic", "list": "basic", "demo": "basic",
    "diff": "history", "session": "history", "tag": "history",
    "prune": "maintenance", "gc": "maintenance", "fsck": "maintenance", "stats": "maintenance",
    "summary": "summarize", "restore": "summarize",
    "deps": "capture", "import": "capture", "export": "capture",
    "serve": "serve",
}  # fmt: skip
"""Which module defines each command (``tests/test_cli.py`` keeps it true)."""

_GLOBAL_WITH_VALUE: Final = ("--store",)


def _command(argv: list[str]) -> str | None:
    """The command a ``ckpt`` argument list runs (after the group's own options)."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in _GLOBAL_WITH_VALUE:
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


def _fast_commit(argv: list[str], *, autostart: bool = False) -> bool:
    """Run ``ckpt commit`` without typer when :mod:`ckpt_cli.commit_cmd` can parse it.

    ``autostart``: no server answered, so the commit may start one (``[serve] auto``).
    """
    from ckpt_cli.commit_cmd import parse, run

    values = parse(argv)
    if values is None:
        return False
    from ckpt_cli.inputs import exit_code
    from ckptstore.errors import CkptError

    try:
        run(**values, autostart=autostart)
    except CkptError as err:  # the edge of ckpt_cli.base.handle_errors, without typer
        print(f"error: {err}", file=sys.stderr)
        sys.exit(exit_code(err))
    return True


def _served(argv: list[str]) -> tuple[bool, bool]:
    """Run a commit through the store's ``ckpt serve``, if one runs and takes it.

    Returns whether it ran there, and whether no server answered.
    """
    from ckpt_cli.serve_client import Unanswered, forward

    try:
        code, absent = forward(argv)
    except Unanswered as err:
        print(
            f"error: the ckpt server closed the connection before answering ({err}); the"
            " commit may or may not have landed: see `ckpt log`",
            file=sys.stderr,
        )
        sys.exit(1)
    if code is None:
        return False, absent
    if code:
        sys.exit(code)
    return True, False


def main() -> None:
    """Entry point of the ``ckpt`` console script.

    typer builds every registered command on each run, which costs time in proportion
    to their number; a command is started from agent hooks, so only the module that
    defines it is imported (``ckpt --help`` and unknown commands load them all), and
    ``commit`` usually runs without typer at all.
    """
    command = _command(sys.argv[1:])
    absent = False
    if command in ("commit", "now"):
        served, absent = _served(sys.argv[1:])
        if served:
            return
    if _fast_commit(sys.argv[1:], autostart=absent):  # not a commit it can parse: typer's
        return
    module = COMMANDS.get(command or "")
    import_module(f"ckpt_cli.{module}" if module else "ckpt_cli.commands")
    from ckpt_cli.base import app

    app()


def __getattr__(name: str) -> Any:
    if name == "app":  # the complete app, every command registered (tests, embedding)
        app = import_module("ckpt_cli.commands").app
        globals()["app"] = app
        return app
    raise AttributeError(f"module 'ckpt_cli' has no attribute {name!r}")


__all__ = ["COMMANDS", "app", "main"]
