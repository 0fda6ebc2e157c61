"""Commands for handing a session on: summary (context within a token budget), restore."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ckpt_cli.base import RevealOpt, SessionOpt, StoreOpt, app, handle_errors, open_store
from ckpt_cli.inputs import BadArgument
from ckptstore import ContextSummarizer, InvalidOption, render_env, restore_env
from ckptstore.restore import ENV_FORMATS
from ckptstore.summary import FORMATS, LEVELS, MAX_BUDGET, MIN_BUDGET

RefArg = Annotated[
    str, typer.Argument(help="Checkpoint id, object id, HEAD~N, session or session~N.")
]


def _ref(ref: str, session: str | None) -> str:
    return f"sessions/{session}" if session and ref == "HEAD" else ref


def _check(option: str, value: str, allowed: Any) -> None:
    # Before the store is opened: bad input never touches anything.
    if value not in allowed:
        raise InvalidOption(option, value, f"must be one of {', '.join(allowed)}")


@app.command()
@handle_errors
def summary(
    ctx: typer.Context,
    ref: RefArg = "HEAD",
    level: Annotated[
        str, typer.Option("--level", "-l", help="minimal, compact, standard or full.")
    ] = "compact",
    max_tokens: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(
            "--max-tokens", help="Token budget (default: the level's).", show_default=False
        ),
    ] = None,
    task_type: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--for",
            help="Context for a kind of task: terraform, database, governance... (config adds"
            " more).",
            show_default=False,
        ),
    ] = None,
    keys: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--keys", help="Variables that must appear: a,b,c (repeatable).", show_default=False
        ),
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="markdown, text or json.")
    ] = "markdown",
    since: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--since", help="Summarise what changed since this REF.", show_default=False),
    ] = None,
    reveal: RevealOpt = False,
    session: SessionOpt = None,
    store: StoreOpt = None,
) -> None:
    """A summary of a checkpoint within a token budget, for a prompt or a sub-agent."""
    _check("--level", level, LEVELS)
    _check("--format", fmt, FORMATS)
    if max_tokens is not None and not MIN_BUDGET <= max_tokens <= MAX_BUDGET:
        raise InvalidOption("--max-tokens", max_tokens, f"must be {MIN_BUDGET} to {MAX_BUDGET}")
    pinned = [k.strip() for item in keys or [] for k in item.split(",") if k.strip()]
    with open_store(ctx, store) as opened:
        target = _ref(ref, session)
        ckpt = opened.checkpoint(target)
        policy = None if reveal else opened.secrets()
        summarizer = ContextSummarizer(ckpt, secrets=policy, task_types=opened.config.task_types)
        changes, since_id = None, None
        if since is not None:
            since_id = opened.get_commit(since).checkpoint_id
            changes = opened.diff(since, target)
    result = summarizer.summary(
        level, max_tokens=max_tokens, task_type=task_type, keys=pinned, format=fmt,
        changes=changes, since_id=since_id,
    )  # fmt: skip
    typer.echo(result.text, nl=False)


def _write_checkpoint(path: Path, data: dict[str, Any]) -> None:
    """Write the checkpoint JSON atomically, readable by its owner only (it holds secrets)."""
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as err:
        raise BadArgument("--to", f"cannot write in {str(directory)!r}: {err.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise BadArgument("--to", f"cannot write {str(path)!r}: {err.strerror}") from None


@app.command()
@handle_errors
def restore(
    ctx: typer.Context,
    ref: RefArg = "HEAD",
    env: Annotated[
        bool,
        typer.Option(
            "--env", help="Print the variables for eval (the default unless --to is given)."
        ),
    ] = False,
    fmt: Annotated[
        str,
        typer.Option("--format", "-f", help="env (export lines), dotenv or json."),
    ] = "env",
    prefix: Annotated[str, typer.Option("--prefix", help="Prefix of every name.")] = "CKPT_",
    to: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--to",
            help="Write the checkpoint to FILE in the original JSON format.",
            show_default=False,
        ),
    ] = None,
    session: SessionOpt = None,
    store: StoreOpt = None,
) -> None:
    """Restore a checkpoint: its variables as `export CKPT_<KEY>=...` lines, or to a file.

    eval "$(ckpt restore --env)" sets them in a bash, sh or zsh shell. Secrets are
    restored too: that is the point of restoring.
    """
    _check("--format", fmt, ENV_FORMATS)
    restore_env({}, prefix)  # checks the prefix before anything is read
    with open_store(ctx, store) as opened:
        data = opened.load(_ref(ref, session))
    environment = restore_env(data, prefix)
    if to is not None:
        _write_checkpoint(to, data)
        typer.echo(f"wrote {data.get('checkpoint_id')} to {to}", err=True)
    for line in environment.warnings():
        typer.echo(f"warning: {line}", err=True)
    if env or to is None:
        typer.echo(render_env(environment, fmt), nl=False)
