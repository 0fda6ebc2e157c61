"""History commands: diff, session (new / list / switch), tag."""

from __future__ import annotations

from typing import Annotated

import typer

from ckpt_cli.base import (
    JsonOpt,
    RevealOpt,
    SessionOpt,
    StoreOpt,
    app,
    handle_errors,
    open_store,
    print_json,
    variables_of,
)
from ckpt_cli.render_diff import render_changes, render_stat, use_color
from ckptstore import CkptError, InvalidInput, NotFound
from ckptstore.diff import SECTIONS
from ckptstore.secrets import redact_changes

_SECTION_ALIASES = {"outputs": "recent_outputs", "deps": "dependencies", "vars": "variables"}


class BadSections(InvalidInput):
    """``--section`` named something that is not a section."""

    def __init__(self, given: str) -> None:
        self.given = given
        super().__init__(f"--section: unknown section {given!r}; choose from {', '.join(SECTIONS)}")


def _sections(text: str | None) -> set[str] | None:
    if not text:
        return None
    chosen = set()
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name = _SECTION_ALIASES.get(part, part)
        if name not in SECTIONS:
            raise BadSections(part)
        chosen.add(name)
    return chosen


@app.command()
@handle_errors
def diff(
    ctx: typer.Context,
    old: Annotated[
        str | None,
        typer.Argument(help="Older checkpoint (default: HEAD~1).", show_default=False),
    ] = None,
    new: Annotated[
        str | None, typer.Argument(help="Newer checkpoint (default: HEAD).", show_default=False)
    ] = None,
    from_ref: Annotated[
        str | None,
        typer.Option(
            "--from", help="Older checkpoint (the original skill's form).", show_default=False
        ),
    ] = None,
    to_ref: Annotated[
        str | None, typer.Option("--to", help="Newer checkpoint.", show_default=False)
    ] = None,
    section: Annotated[
        str | None,
        typer.Option(
            "--section",
            help="Only these sections, comma-separated (tasks,variables,...).",
            show_default=False,
        ),
    ] = None,
    stat: Annotated[bool, typer.Option("--stat", help="Counts per section only.")] = False,
    full: Annotated[bool, typer.Option("--full", help="Show long values whole.")] = False,
    show_all: Annotated[
        bool,
        typer.Option("--all", help="List dependency re-checks (last_checked only) one by one."),
    ] = False,
    exit_code: Annotated[
        bool,
        typer.Option("--exit-code", help="Exit 1 when there are differences (and 2 on errors)."),
    ] = False,
    reveal: RevealOpt = False,
    session: SessionOpt = None,
    as_json: JsonOpt = False,
    store: StoreOpt = None,
) -> None:
    """Show what changed between two checkpoints (default: the previous and the latest).

    `ckpt diff` compares the session's previous checkpoint with its latest; `ckpt diff A`
    compares A with the latest; `ckpt diff A B` (or --from A --to B) compares A with B.
    Checkpoints may come from different sessions.
    """
    if (from_ref or to_ref) and (old or new):
        raise typer.BadParameter("give checkpoints as arguments or as --from/--to, not both")
    head = f"sessions/{session}" if session else "HEAD"
    first = from_ref or old or (f"{head}~1" if not (new or to_ref) else head)
    second = to_ref or new or head
    wanted = _sections(section)
    try:
        with open_store(ctx, store) as opened:
            if not (old or new or from_ref or to_ref) and not opened.get_commit(head).parents:
                raise NothingToCompare(session or opened.current_session)
            changes = opened.diff(first, second)
            if not reveal:
                changes = redact_changes(changes, opened.secrets(), variables_of(opened, second))
    except CkptError as err:
        if not exit_code:
            raise
        # As with git diff --exit-code: 1 means "different", so errors need another code.
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    if wanted is not None:
        changes = [c for c in changes if c.section in wanted]
    if as_json:
        print_json([c.to_dict() for c in changes])
    elif stat:
        typer.echo(render_stat(changes))
    else:
        typer.echo(render_changes(changes, full=full, show_all=show_all, color=use_color()))
    if exit_code and changes:
        raise typer.Exit(1)


class NothingToCompare(NotFound):
    """``ckpt diff`` on a session that has a single checkpoint."""

    def __init__(self, session: str) -> None:
        self.session = session
        super().__init__(
            f"session {session!r} has a single checkpoint, so there is nothing to diff it"
            " against; commit again, or name two checkpoints: ckpt diff A B"
        )


session_app = typer.Typer(
    help="Sessions: lines of checkpoints (like git branches).", no_args_is_help=True
)
app.add_typer(session_app, name="session")


@session_app.command("new")
@handle_errors
def session_new(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Name of the new session.")],
    from_ref: Annotated[str, typer.Option("--from", help="Checkpoint to start from.")] = "HEAD",
    switch: Annotated[
        bool, typer.Option("--switch/--no-switch", help="Make it the current session.")
    ] = True,
    as_json: JsonOpt = False,
    store: StoreOpt = None,
) -> None:
    """Start a session at any checkpoint (time travel; nothing is copied)."""
    with open_store(ctx, store) as opened:
        info = opened.fork(name, from_ref, switch=switch)
    if as_json:
        print_json({"session": name, "head": info.to_dict(), "current": switch})
    else:
        now = " (now current)" if switch else ""
        typer.echo(f"session {name} starts at {info.checkpoint_id}{now}")


@session_app.command("list")
@handle_errors
def session_list(ctx: typer.Context, as_json: JsonOpt = False, store: StoreOpt = None) -> None:
    """List sessions: head checkpoint, number of checkpoints, last time."""
    with open_store(ctx, store) as opened:
        infos = opened.session_list()
    if as_json:
        print_json(
            [
                {
                    "name": s.name,
                    "current": s.current,
                    "checkpoints": s.head.generation,
                    "head": s.head.checkpoint_id,
                    "last": s.head.created_at,
                }
                for s in infos
            ]
        )
        return
    for s in infos:
        mark = "*" if s.current else " "
        when = s.head.created_at.replace("T", " ")[:19]
        count = f"{s.head.generation:>6} checkpoint{'s' if s.head.generation != 1 else ''}"
        typer.echo(f"{mark} {s.name:<20} {s.head.checkpoint_id}  {count}  {when}")


@session_app.command("switch")
@handle_errors
def session_switch(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Session to make current.")],
    store: StoreOpt = None,
) -> None:
    """Make a session the current one (what HEAD names)."""
    with open_store(ctx, store) as opened:
        opened.switch(name)
    typer.echo(f"current session: {name}")


@app.command()
@handle_errors
def tag(
    ctx: typer.Context,
    name: Annotated[
        str | None, typer.Argument(help="Tag name (omit to list tags).", show_default=False)
    ] = None,
    ref: Annotated[str, typer.Argument(help="Checkpoint to tag.")] = "HEAD",
    list_tags: Annotated[bool, typer.Option("--list", "-l", help="List tags.")] = False,
    delete: Annotated[bool, typer.Option("--delete", "-d", help="Delete the tag.")] = False,
    force: Annotated[bool, typer.Option("--force", "-f", help="Move an existing tag.")] = False,
    as_json: JsonOpt = False,
    store: StoreOpt = None,
) -> None:
    """Name a checkpoint; tags work wherever a REF does and are never pruned."""
    if delete and name is None:
        raise typer.BadParameter("give the name of the tag to delete", param_hint="--delete")
    with open_store(ctx, store) as opened:
        if list_tags or name is None:
            tags = opened.tags()
            if as_json:
                print_json({t: info.to_dict() for t, info in tags.items()})
            else:
                for t, info in tags.items():
                    note = (info.notes.splitlines() or [""])[0]
                    typer.echo(f"{t:<24} {info.checkpoint_id}  {note}".rstrip())
            return
        if delete:
            opened.delete_tag(name)
            typer.echo(f"deleted tag {name}")
            return
        info = opened.tag(name, ref, force=force)
    if as_json:
        print_json({"tag": name, "checkpoint": info.to_dict()})
    else:
        typer.echo(f"tag {name} -> {info.checkpoint_id}")
