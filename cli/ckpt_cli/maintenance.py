"""Maintenance commands: prune, gc, fsck, stats.

Progress bars (rich, on stderr) appear only on a terminal and for large stores, never
with ``--json``; ``--progress``/``--no-progress`` force them on or off.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Annotated, Any, Final

import typer

from ckpt_cli.base import JsonOpt, StoreOpt, app, handle_errors, open_store, print_json
from ckpt_cli.render import human_size
from ckptstore.fsck import FsckReport
from ckptstore.gc import DEFAULT_GRACE, DEFAULT_REFLOG_EXPIRY, GCStats
from ckptstore.prune import PruneReport
from ckptstore.retention import RetentionPolicy, format_duration, parse_duration
from ckptstore.stats import StoreStats


def _spelled(seconds: float) -> str:
    return format_duration(timedelta(seconds=seconds))


LARGE: Final = 10_000
"""Objects (or checkpoints, for stats) from which a store counts as large."""

ProgressOpt = Annotated[
    bool | None,
    typer.Option(
        "--progress/--no-progress",
        help="Show progress bars (default: on a terminal, for large stores).",
        show_default=False,
    ),
]
DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", "-n", help="Change nothing; report what would go.")
]
GraceOpt = Annotated[
    str | None,
    typer.Option(
        "--grace",
        help="Never delete objects stored more recently than this (90s, 30m, 1h, 2d)."
        f" [default: [gc] grace in config.toml, else {_spelled(DEFAULT_GRACE)}]",
        show_default=False,
    ),
]
ExpiryOpt = Annotated[
    str | None,
    typer.Option(
        "--reflog-expiry",
        help="Reflog entries younger than this keep their checkpoints."
        f" [default: [gc] reflog_expiry in config.toml, else {_spelled(DEFAULT_REFLOG_EXPIRY)}]",
        show_default=False,
    ),
]
CompactOpt = Annotated[
    bool,
    typer.Option(
        "--compact",
        help="Then rewrite the store file to free all the space (commits wait meanwhile).",
    ),
]


class _Bars:
    """A progress callback that draws rich bars once it knows the work is large."""

    def __init__(self, force: bool | None) -> None:
        self.force = force
        self.progress: Any = None
        self.tasks: dict[str, Any] = {}

    def __call__(self, phase: str, done: int, total: int | None) -> None:
        if self.progress is None:
            large = total is not None and total >= LARGE
            if not (self.force or (self.force is None and large and sys.stderr.isatty())):
                return
            from rich.console import Console  # lazily: rich costs import time
            from rich.progress import Progress

            self.progress = Progress(console=Console(stderr=True), transient=False)
            self.progress.start()
        if phase not in self.tasks:
            for task in self.tasks.values():  # a new phase: the previous ones are done
                self.progress.update(task, total=1, completed=1)
            self.tasks[phase] = self.progress.add_task(phase, total=total)
        self.progress.update(self.tasks[phase], completed=done, total=total)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()


@contextmanager
def _progress(
    force: bool | None, as_json: bool
) -> Iterator[Callable[[str, int, int | None], None] | None]:
    if as_json and not force:
        yield None
        return
    bars = _Bars(force)
    try:
        yield bars
    finally:
        bars.stop()


def _seconds(text: str | None, option: str) -> float | None:
    return None if text is None else parse_duration(text, option=option).total_seconds()


def _n(value: int) -> str:
    return f"{value:,}"


# --- gc -----------------------------------------------------------------------------------


def render_gc(stats: GCStats) -> str:
    verb = "would remove" if stats.dry_run else "removed"
    lines = [f"{verb} {_n(stats.objects_removed)} objects ({human_size(stats.bytes_removed)})"]
    if stats.reflog_expired:
        expired = "would expire" if stats.dry_run else "expired"
        lines[0] += f"; {expired} {_n(stats.reflog_expired)} reflog entries"
    kept = f"kept {_n(stats.objects_reachable)} reachable objects"
    if stats.objects_young:
        grace = _spelled(stats.grace)
        kept += f" and {_n(stats.objects_young)} unreachable ones within the {grace} grace period"
    lines.append(kept)
    if stats.disk_before and not stats.dry_run:
        lines.append(
            f"store {human_size(stats.disk_before)} -> {human_size(stats.disk_after)} on disk"
        )
    return "\n".join(lines)


@app.command()
@handle_errors
def gc(
    ctx: typer.Context,
    grace: GraceOpt = None,
    reflog_expiry: ExpiryOpt = None,
    dry_run: DryRunOpt = False,
    compact: CompactOpt = False,
    progress: ProgressOpt = None,
    as_json: JsonOpt = False,
    store: StoreOpt = None,
) -> None:
    """Delete what no session, tag or recent reflog entry reaches; shrink the store file.

    Safe while other processes commit. Objects younger than --grace are always kept.
    """
    grace_s = _seconds(grace, "--grace")
    expiry_s = _seconds(reflog_expiry, "--reflog-expiry")
    with open_store(ctx, store) as opened, _progress(progress, as_json) as bars:
        stats = opened.gc(
            grace=grace_s, reflog_expiry=expiry_s, dry_run=dry_run, progress=bars, compact=compact
        )
    if as_json:
        print_json(stats.to_dict())
    else:
        typer.echo(render_gc(stats))


# --- prune --------------------------------------------------------------------------------


def render_prune(report: PruneReport) -> str:
    lines = []
    verb = "would remove" if report.dry_run else "removing"
    for session in report.sessions:
        total = len(session.kept) + len(session.removed)
        lines.append(
            f"session {session.session}: keeping {_n(len(session.kept))} of {_n(total)}"
            f" checkpoints, {verb} {_n(len(session.removed))}"
        )
        if report.dry_run:
            for entry in session.removed:
                when = entry.created_at.replace("T", " ")[:19]
                note = (entry.notes.splitlines() or [""])[0][:60]
                lines.append(f"  - {entry.checkpoint_id}  {when}  {note}".rstrip())
    done = "would remove" if report.dry_run else "removed"
    lines.append(f"{done} {_n(report.removed)} checkpoints ({report.policy.describe()})")
    lines.append(render_gc(report.gc))
    return "\n".join(lines)


@app.command()
@handle_errors
def prune(
    ctx: typer.Context,
    keep: Annotated[
        int | None,
        typer.Option(
            "--keep",
            min=0,
            help="Keep the newest N checkpoints of each session (default 50 when no --keep-*"
            " option is given).",
            show_default=False,
        ),
    ] = None,
    keep_within: Annotated[
        str | None,
        typer.Option(
            "--keep-within",
            help="Keep every checkpoint within this long of the session's newest (7d, 12h).",
            show_default=False,
        ),
    ] = None,
    keep_hourly: Annotated[
        int, typer.Option("--keep-hourly", min=0, help="Keep the newest of each of N hours.")
    ] = 0,
    keep_daily: Annotated[
        int, typer.Option("--keep-daily", min=0, help="Keep the newest of each of N days.")
    ] = 0,
    keep_weekly: Annotated[
        int, typer.Option("--keep-weekly", min=0, help="Keep the newest of each of N weeks.")
    ] = 0,
    keep_monthly: Annotated[
        int, typer.Option("--keep-monthly", min=0, help="Keep the newest of each of N months.")
    ] = 0,
    keep_yearly: Annotated[
        int, typer.Option("--keep-yearly", min=0, help="Keep the newest of each of N years.")
    ] = 0,
    session: Annotated[
        list[str] | None,
        typer.Option(
            "--session", "-s", help="Prune only this session (repeatable).", show_default=False
        ),
    ] = None,
    dry_run: DryRunOpt = False,
    grace: GraceOpt = None,
    compact: CompactOpt = False,
    progress: ProgressOpt = None,
    as_json: JsonOpt = False,
    store: StoreOpt = None,
) -> None:
    """Remove old checkpoints by a retention policy, then run gc.

    Session heads and tagged checkpoints are always kept. Rules add up: a checkpoint
    stays if any rule keeps it. Periods (hours, days, ...) are in UTC.
    """
    within = parse_duration(keep_within, option="--keep-within") if keep_within else None
    policy = RetentionPolicy(
        last=keep, within=within, hourly=keep_hourly, daily=keep_daily, weekly=keep_weekly,
        monthly=keep_monthly, yearly=keep_yearly,
    )  # fmt: skip
    grace_s = _seconds(grace, "--grace")
    with open_store(ctx, store) as opened, _progress(progress, as_json) as bars:
        report = opened.prune(
            policy, sessions=session or None, dry_run=dry_run, grace=grace_s, progress=bars,
            compact=compact,
        )  # fmt: skip
    if as_json:
        print_json(report.to_dict())
    else:
        typer.echo(render_prune(report))


# --- fsck ---------------------------------------------------------------------------------


def render_fsck(report: FsckReport) -> str:
    kinds = ", ".join(f"{_n(n)} {kind}s" for kind, n in sorted(report.objects.items()))
    total = sum(report.objects.values())
    lines = [
        f"checked {_n(total)} objects ({kinds or 'none'}), {_n(report.refs)} refs,"
        f" {_n(report.reflog)} reflog entries, {_n(report.prune_marks)} prune marks"
    ]
    lines += [str(problem) for problem in report.problems]
    lines.append("ok" if report.ok else f"{_n(len(report.problems))} problems")
    return "\n".join(lines)


@app.command()
@handle_errors
def fsck(
    ctx: typer.Context,
    progress: ProgressOpt = None,
    as_json: JsonOpt = False,
    store: StoreOpt = None,
) -> None:
    """Verify every object, link, ref and reflog entry; exit 1 if anything is wrong."""
    with open_store(ctx, store) as opened, _progress(progress, as_json) as bars:
        report = opened.fsck(progress=bars)
    if as_json:
        print_json(report.to_dict())
    else:
        typer.echo(render_fsck(report))
    if not report.ok:
        typer.echo(
            f"error: fsck found {len(report.problems)} problem(s) in the store;"
            " restore it from a copy",
            err=True,
        )
        raise typer.Exit(1)


# --- stats --------------------------------------------------------------------------------


def render_stats(stats: StoreStats) -> str:
    objects = sum(k["count"] for k in stats.objects.values())
    stored_all = sum(k["stored_bytes"] for k in stats.objects.values())
    by_kind = " · ".join(f"{kind} {_n(k['count'])}" for kind, k in stats.objects.items())
    checkpoints = f"checkpoints  {_n(stats.checkpoints)}"
    if stats.events:  # LangGraph's writes, saved as commits of their own
        checkpoints += f" (plus {_n(stats.events)} LangGraph write events)"
    lines = [
        f"sessions     {_n(stats.sessions)} ({_n(stats.tags)} tags)",
        checkpoints,
        f"objects      {_n(objects)} ({by_kind or 'none'}), {human_size(stored_all)} stored",
    ]
    if stats.disk_bytes:
        lines.append(f"on disk      {human_size(stats.disk_bytes)}")
    lines += [
        f"as JSON      {human_size(stats.logical_bytes)} (the checkpoints as `load` returns them)",
        f"saving       {stats.total_ratio:.1f}x = dedup {stats.dedup_ratio:.1f}x"
        f" * compression {stats.compression_ratio:.1f}x",
    ]
    if stats.largest:
        lines.append("largest values")
        lines += [
            f"  {human_size(e.json_bytes):>10}  {e.path}  (in {e.checkpoint_id})"
            for e in stats.largest
        ]
    return "\n".join(lines)


@app.command()
@handle_errors
def stats(
    ctx: typer.Context,
    top: Annotated[int, typer.Option("--top", min=0, help="How many of the largest values.")] = 10,
    progress: ProgressOpt = None,
    as_json: JsonOpt = False,
    store: StoreOpt = None,
) -> None:
    """Checkpoints, objects by kind, bytes as JSON vs stored (dedup x compression)."""
    with open_store(ctx, store) as opened, _progress(progress, as_json) as bars:
        result = opened.stats(top=top, progress=bars)
    if as_json:
        print_json(result.to_dict())
    else:
        typer.echo(render_stats(result))
