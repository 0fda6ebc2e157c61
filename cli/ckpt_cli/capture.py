"""Capturing state: deps (check the configured dependencies), import and export.

``ckpt commit``'s capture flags live with the command in ``basic``; the helpers that
turn them into library values are in ``inputs``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Optional

import typer

from ckpt_cli.base import JsonOpt, StoreOpt, app, handle_errors, open_store, print_json
from ckptstore.config import CONFIG_FILE
from ckptstore.interchange import export_checkpoints, import_checkpoints
from ckptstore.probes import ProbeResult


def _render_deps(results: Sequence[ProbeResult]) -> str:
    width = max(len(r.name) for r in results)
    lines = []
    for r in results:
        reason = f"  ({r.reason})" if r.reason else ""
        lines.append(
            f"{r.name:<{width}}  {r.check:<7}  {r.status:<11}  {r.endpoint or '-'}{reason}"
        )
    return "\n".join(lines)


@app.command()
@handle_errors
def deps(
    ctx: typer.Context,
    exit_code: Annotated[
        bool, typer.Option("--exit-code", help="Exit 1 if a dependency is not available.")
    ] = False,
    as_json: JsonOpt = False,
    store: StoreOpt = None,
) -> None:
    """Check the dependencies declared in the store's config.toml now (nothing is saved)."""
    with open_store(ctx, store) as opened:
        results = opened.check_dependencies()
        config = opened.path / CONFIG_FILE if opened.path is not None else CONFIG_FILE
    if as_json:
        print_json([r.to_dict() for r in results])
    elif not results:
        typer.echo(f"no dependencies are declared; add [[dependencies]] tables to {config}")
    else:
        typer.echo(_render_deps(results))
    if exit_code and any(r.status != "available" for r in results):
        raise typer.Exit(1)


@app.command("import")
@handle_errors
def import_(
    ctx: typer.Context,
    paths: Annotated[
        list[Path],
        typer.Argument(
            metavar="PATH...",
            help="Checkpoint files of the original skill, or directories of ckpt-*.json.",
            show_default=False,
        ),
    ],
    session: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--session",
            "-s",
            help="Session for checkpoints whose session_id is null (default: HEAD's).",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOpt = False,
    store: StoreOpt = None,
) -> None:
    """Import checkpoint files, keeping their ids, times and parent links.

    Files already in the store are skipped; a file that cannot be imported is reported
    with the reason and the others are imported (the exit status is then 1).
    """
    with open_store(ctx, store) as opened:
        report = import_checkpoints(opened, paths, default_session=session)
    rejected = report.by_status("rejected")
    if as_json:
        print_json(report.to_dict())
    else:
        imported, skipped = report.by_status("imported"), report.by_status("skipped")
        typer.echo(
            f"imported {len(imported)}, skipped {len(skipped)} (already present),"
            f" rejected {len(rejected)}"
        )
        for entry in imported:
            if entry.reason:
                typer.echo(f"note: {entry.checkpoint_id}: {entry.reason}")
        for name in report.forks:
            typer.echo(f"fork: a branch of the parent chain became session {name}")
        for cycle in report.cycles:
            typer.echo(f"cycle: parent links loop through {' -> '.join(cycle)}; cut")
        for entry in rejected:
            typer.echo(f"rejected: {entry.path}: {entry.reason}", err=True)
    if rejected:
        raise typer.Exit(1)


@app.command()
@handle_errors
def export(
    ctx: typer.Context,
    refs: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Argument(
            metavar="[REF]...",
            help="Checkpoints to export (checkpoint ids, HEAD~N...).",
            show_default=False,
        ),
    ] = None,
    directory: Annotated[
        Path, typer.Option("--dir", help="Directory to write <checkpoint id>.json files to.")
    ] = Path("."),
    session: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--session",
            "-s",
            help="Export a session's whole history. Repeatable.",
            show_default=False,
        ),
    ] = None,
    all_sessions: Annotated[
        bool, typer.Option("--all", help="Export every checkpoint of every session.")
    ] = False,
    as_json: JsonOpt = False,
    store: StoreOpt = None,
) -> None:
    """Write checkpoints as the original skill's JSON files, one per checkpoint.

    Secret variables are written as they are: the original format has no redaction.
    """
    with open_store(ctx, store) as opened:
        report = export_checkpoints(
            opened, refs or (), directory=directory, sessions=session or (),
            all_sessions=all_sessions,
        )  # fmt: skip
    if as_json:
        print_json(report.to_dict())
    else:
        typer.echo(f"wrote {len(report.written)} checkpoint file(s) to {directory}")
