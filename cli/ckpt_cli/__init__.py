"""The ``ckpt`` command-line interface of ckptstore."""

from ckpt_cli.app import app


def main() -> None:
    """Entry point of the ``ckpt`` console script."""
    app()


__all__ = ["app", "main"]
