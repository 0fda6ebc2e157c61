"""The basic commands: init, commit (now), load (show), log (list), demo."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ckpt_cli.base import (
    JsonOpt,
    PairedOptions,
    RevealOpt,
    SessionOpt,
    StoreOpt,
    app,
    handle_errors,
    open_store,
    print_json,
    variables_of,
)
from ckpt_cli.commit_cmd import run as run_commit
from ckpt_cli.render import human_size, render_checkpoint, render_log
from ckpt_cli.render_diff import render_key_history
from ckptstore import Checkpoint, CommitInfo, KeyChange, Store, redact
from ckptstore.location import STORE_DIR, STORE_FILE
from ckptstore.paths import parse_path
from ckptstore.secrets import mask_text, redact_changes, redact_path_value


@app.command()
@handle_errors
def init(
    ctx: typer.Context,
    directory: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Argument(
            help="Project directory; the store goes in DIRECTORY/.ckpt.", show_default=False
        ),
    ] = None,
    durability: Annotated[
        str, typer.Option(help="full: survives power loss; fast: survives process crashes.")
    ] = "full",
    store: StoreOpt = None,
) -> None:
    """Create an empty store in ./.ckpt (or DIRECTORY/.ckpt, or --store DIR)."""
    if durability not in ("full", "fast"):
        raise typer.BadParameter("must be 'full' or 'fast'", param_hint="--durability")
    target = store or (ctx.obj or {}).get("store")
    if target is None:
        target = (directory or Path.cwd()) / STORE_DIR
    with Store.init(target, durability=durability) as opened:  # type: ignore[arg-type]
        typer.echo(f"Initialized empty ckpt store in {opened.path}")


@handle_errors
def commit(
    ctx: typer.Context,
    state: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--state",
            help="Checkpoint JSON file in the seed format, or - for stdin.",
            show_default=False,
        ),
    ] = None,
    var: Annotated[
        # typer cannot declare a repeatable two-value option: PairedOptions sets
        # nargs=2 on it, so each item arrives as a (KEY, VALUE) pair.
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--var",
            metavar="KEY VALUE",
            help="Set a variable (VALUE is JSON if it parses, else a string). Repeatable.",
            show_default=False,
        ),
    ] = None,
    secret_var: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--secret-var",
            metavar="KEY VALUE",
            help="Set a variable and mark it secret: stored, restored, shown as [redacted]"
            " (VALUE is kept as a string). Repeatable.",
            show_default=False,
        ),
    ] = None,
    merge: Annotated[
        bool,
        typer.Option("--merge", help="--state is a partial state: change only what it names."),
    ] = False,
    phase: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="Start (or stay in) the phase of this name.", show_default=False),
    ] = None,
    phase_number: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option("--phase-number", help="Set the phase's number.", show_default=False),
    ] = None,
    phase_status: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--phase-status",
            help="Set the phase's status (completed also records it in phases_completed).",
            show_default=False,
        ),
    ] = None,
    task: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--task",
            metavar="ID=STATUS",
            help="Set a task's status. Repeatable.",
            show_default=False,
        ),
    ] = None,
    task_add: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--task-add",
            metavar="SUBJECT",
            help="Add a pending task. Repeatable.",
            show_default=False,
        ),
    ] = None,
    active_task: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--active-task",
            metavar="ID",
            help="Set the active task ('' clears it).",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--output",
            metavar="TYPE:ACTION:ok|fail",
            help="Record a recent output. Repeatable.",
            show_default=False,
        ),
    ] = None,
    unset_var: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--unset-var",
            metavar="KEY",
            help="Remove a variable. Repeatable.",
            show_default=False,
        ),
    ] = None,
    no_probe: Annotated[
        bool, typer.Option("--no-probe", help="Do not check the configured dependencies.")
    ] = False,
    notes: Annotated[str, typer.Option("--notes", "-m", help="Notes for this checkpoint.")] = "",
    session: SessionOpt = None,
    as_json: JsonOpt = False,
    store: StoreOpt = None,
) -> None:
    """Capture a checkpoint and print its id.

    The session's latest checkpoint, then --state (full, or partial with --merge), the
    flags, CKPT_AGENT_ID / CKPT_AGENT_TIER / CKPT_SESSION_ID, the dependency checks of
    config.toml and any installed collector plugins.
    """
    run_commit(
        store=store or (ctx.obj or {}).get("store"), state=state, var=var,
        secret_var=secret_var, merge=merge, phase=phase, phase_number=phase_number,
        phase_status=phase_status, task=task, task_add=task_add, active_task=active_task,
        output=output, unset_var=unset_var, no_probe=no_probe, notes=notes, session=session,
        as_json=as_json,
    )  # fmt: skip


@handle_errors
def load(
    ctx: typer.Context,
    ref: Annotated[
        str, typer.Argument(help="Checkpoint id, object id, HEAD~N, session or session~N.")
    ] = "HEAD",
    session: SessionOpt = None,
    as_json: JsonOpt = False,
    reveal: RevealOpt = False,
    store: StoreOpt = None,
) -> None:
    """Show a checkpoint (default: the latest of the current session).

    REF:PATH shows one value: HEAD:variables.plan, HEAD~3:tasks, ckpt-...:tasks.42.status.
    """
    if ":" in ref:
        ref_part, path = ref.split(":", 1)
        with open_store(ctx, store) as opened:
            value = opened.show(ref_part or "HEAD", path)
            if not reveal:
                value = _hide_in_value(opened, ref_part or "HEAD", path, value)
        if as_json or not isinstance(value, str):
            print_json(value)
        else:
            typer.echo(value)
        return
    with open_store(ctx, store) as opened:
        ckpt = opened.checkpoint(f"sessions/{session}" if session and ref == "HEAD" else ref)
        if not reveal:
            policy = opened.secrets()
            notes = mask_text(ckpt.commit.notes, ckpt.data, policy)
            ckpt = Checkpoint(ckpt.commit._replace(notes=notes), redact(ckpt.data, policy))
    if as_json:
        print_json(ckpt.data)
    else:
        typer.echo(render_checkpoint(ckpt))


@handle_errors
def log(
    ctx: typer.Context,
    ref: Annotated[
        Optional[str],  # noqa: UP045
        typer.Argument(help="Where to start (default: the session's latest).", show_default=False),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many checkpoints.")] = 20,
    session: SessionOpt = None,
    oneline: Annotated[bool, typer.Option("--oneline", help="One line per checkpoint.")] = False,
    all_sessions: Annotated[
        bool, typer.Option("--all", help="Every session, merged by time.")
    ] = False,
    since: Annotated[
        str | None,
        typer.Option(help="Newer than: ISO time or 30m, 2h, 3d, 1w ago.", show_default=False),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(help="Older than: ISO time or a duration ago.", show_default=False),
    ] = None,
    grep: Annotated[
        str | None,
        typer.Option(help="Only checkpoints whose notes contain TEXT.", show_default=False),
    ] = None,
    key: Annotated[
        str | None,
        typer.Option(
            help="Only checkpoints where this value changed, with the change"
            " (variables.plan, tasks.42, phase).",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOpt = False,
    reveal: RevealOpt = False,
    store: StoreOpt = None,
) -> None:
    """List checkpoints, newest first."""
    with open_store(ctx, store) as opened:
        if key is not None:
            if all_sessions:
                raise typer.BadParameter(
                    "--key follows one session; drop --all", param_hint="--key"
                )
            found = opened.history(
                key, ref, session=session, limit=limit, since=since, until=until, grep=grep
            )
            if not reveal:
                found = _hide_in_history(opened, ref or _session_ref(session), found)
            entries = [item.commit for item in found]
        else:
            found = []
            entries = opened.log(
                ref, session=session, limit=limit, all_sessions=all_sessions,
                since=since, until=until, grep=grep,
            )  # fmt: skip
            if not reveal:
                entries = _hide_in_notes(opened, ref or _session_ref(session), entries)
    if as_json:
        if key is not None:
            print_json(
                [{**f.commit.to_dict(), "changes": [c.to_dict() for c in f.changes]} for f in found]
            )
        else:
            print_json([entry.to_dict() for entry in entries])
    elif key is not None:
        typer.echo(render_key_history(found, oneline=oneline))
    elif entries:
        typer.echo(render_log(entries, oneline=oneline))


class _CommitOptions(PairedOptions):
    """`commit`: --var and --secret-var each take KEY VALUE."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if param.name == "secret_var":
                param.nargs = 2


def _session_ref(session: str | None) -> str:
    return f"sessions/{session}" if session else "HEAD"


def _hide_in_value(opened: Store, ref: str, path: str, value: Any) -> Any:
    """`load REF:PATH`: a secret variable shows as [redacted], secrets inside masked."""
    variables = variables_of(opened, ref)
    return redact_path_value(parse_path(path), value, variables, opened.secrets())


def _hide_in_history(opened: Store, ref: str, found: list[KeyChange]) -> list[KeyChange]:
    """`log --key`: old and new values of secret variables hidden, secrets masked."""
    variables, policy = variables_of(opened, ref), opened.secrets()
    ckpt = {"variables": variables}
    return [
        item._replace(
            commit=item.commit._replace(notes=mask_text(item.commit.notes, ckpt, policy)),
            changes=tuple(redact_changes(item.changes, policy, variables)),
        )
        for item in found
    ]


def _hide_in_notes(opened: Store, ref: str, entries: list[CommitInfo]) -> list[CommitInfo]:
    """`log`: the current secret values masked in notes (a token pasted into a note)."""
    ckpt, policy = {"variables": variables_of(opened, ref)}, opened.secrets()
    return [e._replace(notes=mask_text(e.notes, ckpt, policy)) for e in entries]


app.command("commit", cls=_CommitOptions)(commit)
app.command("now", cls=_CommitOptions, help="Alias of `ckpt commit` (the original skill's name).")(
    commit
)
app.command("load")(load)
app.command("show", help="Alias of `ckpt load`.")(load)
app.command("log")(log)
app.command("list", help="Alias of `ckpt log`.")(log)


@app.command()
@handle_errors
def demo(
    directory: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--dir",
            help="Where to create the demo store (default: a new temporary directory).",
            show_default=False,
        ),
    ] = None,
    steps: Annotated[int, typer.Option(min=2, max=100_000, help="Checkpoints to simulate.")] = 300,
    seed: Annotated[int, typer.Option(help="Random seed of the simulation.")] = 7,
) -> None:
    """Simulate a long-running agent session on a fresh store, then show what it holds."""
    import tempfile

    from ckptstore.demo import run_demo

    base = directory or Path(tempfile.mkdtemp(prefix="ckpt-demo-"))
    target = base / STORE_DIR
    with Store.init(target) as opened:
        typer.echo(f"Simulating an agent session: {steps} checkpoints into a new store at {target}")
        result = run_demo(opened, steps=steps, seed=seed)
        typer.echo(f"\n$ ckpt log --limit 5\n{render_log(opened.log(limit=5))}")
        middle = f"HEAD~{steps // 2}"
        ckpt = opened.checkpoint(middle)
        typer.echo(f"\n$ ckpt load {middle}\n{render_checkpoint(ckpt, max_items=8)}")
    stat = os.stat(target / STORE_FILE)
    typer.echo(
        f"\n{result.checkpoints} checkpoints, {human_size(result.json_bytes)} of JSON given."
        f"\nStore file: {human_size(stat.st_size)} ({human_size(stat.st_blocks * 512)} allocated)"
        f" = {result.json_bytes / max(stat.st_size, 1):.0f}x smaller than the JSON"
        f" (one JSON file per checkpoint would allocate {human_size(result.json_file_blocks)})."
        f"\nExplore it:  ckpt --store {target} log"
    )
