"""The ``ckpt`` command: parse arguments, make one library call, format the result.

The typer app and what commands share live in ``base``; each module below registers
its commands on import.
"""

from ckpt_cli import (  # noqa: F401 - they register their commands
    basic,
    capture,
    history,
    maintenance,
    summarize,
)
from ckpt_cli.base import app

__all__ = ["app"]
