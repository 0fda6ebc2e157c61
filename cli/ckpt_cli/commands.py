"""The complete ``ckpt`` app: every command module imported, so every command registered.

The typer app and what commands share live in ``base``; each module below registers
its commands on import. ``ckpt_cli.main`` imports only the module of the command it
runs; ``ckpt --help``, tests and embedders use this.
"""

from ckpt_cli import (  # noqa: F401 - they register their commands
    basic,
    capture,
    history,
    maintenance,
    serve,
    summarize,
)
from ckpt_cli.base import app

__all__ = ["app"]
