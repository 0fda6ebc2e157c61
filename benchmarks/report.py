"""Markdown tables of a run: per-peer figures, ratios, issue 7's targets, where bytes go."""

from __future__ import annotations

import math
import platform
import statistics
from collections.abc import Sequence
from typing import Any

from measure import PeerResult, Result

__all__ = ["markdown", "pct", "targets"]

_ORDER = ("ckptstore", "json-files", "git", "sqlite-saver", "floor")
_US = "ckptstore"


def pct(values: Sequence[float], q: float) -> float | None:
    """The ``q``-quantile (nearest rank) of ``values``; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    ms = seconds * 1000
    return f"{ms:.3f}" if ms < 1 else f"{ms:.2f}" if ms < 100 else f"{ms:.0f}"


def _bytes(n: float | None) -> str:
    if n is None:
        return "—"
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n:.0f} B"


def _ratio(x: float | None, y: float | None) -> str:
    if x is None or y is None or y == 0:
        return "—"
    r = x / y
    return f"{r:.3f}x" if r < 0.1 else f"{r:.2f}x"


def _per(res: PeerResult, n: int, which: str) -> float | None:
    if res.final is None:
        return None
    return getattr(res.final, which) / n


def _rate(res: PeerResult) -> float | None:
    return len(res.commit_s) / sum(res.commit_s) if res.commit_s else None


def _load_p50(res: PeerResult, milestone: int) -> float | None:
    return pct(res.loads.get(milestone, []), 0.5)


def _early_p50(res: PeerResult, milestone: int) -> float | None:
    return pct(res.early.get(milestone, []), 0.5)


def _row(title: str, cells: list[str]) -> str:
    return "| " + " | ".join([title, *cells]) + " |"


def _peer_table(result: Result, names: list[str]) -> list[str]:
    n = result.checkpoints
    peers = [result.peers[name] for name in names]
    lines = [_row("metric", names), "|" + "---|" * (len(names) + 1)]
    lines.append(
        _row("bytes / checkpoint, apparent", [_bytes(_per(p, n, "apparent")) for p in peers])
    )
    lines.append(
        _row("bytes / checkpoint, allocated", [_bytes(_per(p, n, "allocated")) for p in peers])
    )
    if "git" in result.peers:
        before = result.peers["git"].extra.get("before_gc")
        cells = [
            f"{_bytes(before.apparent / n)} / {_bytes(before.allocated / n)}"
            if name == "git" and before is not None
            else "—"
            for name in names
        ]
        lines.append(_row("git before `gc --aggressive` (apparent / allocated)", cells))
    lines.append(_row("commit p50 / p99 ms (in-process)", [
        f"{_ms(pct(p.commit_s, 0.5))} / {_ms(pct(p.commit_s, 0.99))}" if p.commit_s else "—"
        for p in peers
    ]))  # fmt: skip
    lines.append(_row("commits / s (in-process)", [
        f"{r:.0f}" if (r := _rate(p)) is not None else "—" for p in peers
    ]))  # fmt: skip
    lines.append(_row(f"CLI commit p50 / p99 ms ({result.cli_steps} steps)", [
        f"{_ms(pct(p.cli_s, 0.5))} / {_ms(pct(p.cli_s, 0.99))}" if p.cli_s else "—"
        for p in peers
    ]))  # fmt: skip
    if any(p.cli_served_s for p in peers):
        lines.append(_row("CLI commit p50 / p99 ms, through `ckpt serve`", [
            f"{_ms(pct(p.cli_served_s, 0.5))} / {_ms(pct(p.cli_served_s, 0.99))}"
            if p.cli_served_s else "—"
            for p in peers
        ]))  # fmt: skip
    for m in result.milestones:
        lines.append(_row(f"load p50 / p99 ms, random of {m}", [
            f"{_ms(pct(p.loads[m], 0.5))} / {_ms(pct(p.loads[m], 0.99))}" if m in p.loads else "—"
            for p in peers
        ]))  # fmt: skip
    first, last = result.milestones[0], result.milestones[-1]
    for m in result.milestones:
        lines.append(_row(f"load p50 / p99 ms, fixed early set, {m} in history", [
            f"{_ms(pct(p.early[m], 0.5))} / {_ms(pct(p.early[m], 0.99))}" if m in p.early else "—"
            for p in peers
        ]))  # fmt: skip
    if first != last:
        lines.append(_row(f"early-set load p50, {last} ÷ {first} in history", [
            _ratio(_early_p50(p, last), _early_p50(p, first)) for p in peers
        ]))  # fmt: skip
    if result.twin_history:
        short, long = result.twin_history, result.checkpoints
        lines.append(_row(f"early set at the end, p50 ms: store of {short} / of {long}", [
            f"{_ms(pct(p.twin_short, 0.5))} / {_ms(pct(p.twin_long, 0.5))}" if p.twin_long
            else "—" for p in peers
        ]))  # fmt: skip
        lines.append(_row(f"  same moment: {long} ÷ {short} in history", [
            _ratio(pct(p.twin_long, 0.5), pct(p.twin_short, 0.5)) for p in peers
        ]))  # fmt: skip
    lines.append(_row("diff p50 / p99 ms (parent → child)", [
        f"{_ms(pct(p.diffs, 0.5))} / {_ms(pct(p.diffs, 0.99))}" if p.diffs
        else ("skipped: " + p.diff_note if p.diff_note and p.name == _US else "—")
        for p in peers
    ]))  # fmt: skip
    gc_cells = []
    for p in peers:
        if p.name == _US:
            gc_cells.append(f"{p.gc_s:.2f} s" if p.gc_s is not None else f"skipped: {p.gc_note}")
        elif p.name == "git":
            gc_cells.append(f"{p.extra.get('gc_seconds', 0):.1f} s (`gc --aggressive`)")
        elif p.name == "floor":
            gc_cells.append(f"{p.extra.get('seconds', 0):.1f} s (compressing)")
        else:
            gc_cells.append("—")
    lines.append(_row("gc time", gc_cells))
    lines.append(_row("peak RSS, fresh process loading the latest", [
        _bytes(p.rss_kib * 1024) if p.rss_kib else "—" for p in peers
    ]))  # fmt: skip
    lines.append(_row("loads verified equal to the commit", [str(p.verified) for p in peers]))
    return lines


def _ratio_table(result: Result, names: list[str]) -> list[str]:
    us = result.peers[_US]
    n = result.checkpoints
    others = [name for name in names if name != _US]
    lines = [_row("ckptstore ÷ peer", others), "|" + "---|" * (len(others) + 1)]

    def size(which: str) -> Any:
        return lambda p: _ratio(_per(us, n, which), _per(p, n, which))

    rows: list[tuple[str, Any]] = [
        ("bytes / checkpoint, allocated", size("allocated")),
        ("bytes / checkpoint, apparent", size("apparent")),
        ("commit p50 latency", lambda p: _ratio(pct(us.commit_s, 0.5), pct(p.commit_s, 0.5))),
        ("commits / s (higher is better)", lambda p: _ratio(_rate(us), _rate(p))),
        ("CLI commit p50", lambda p: _ratio(pct(us.cli_s, 0.5), pct(p.cli_s, 0.5))),
        ("CLI commit p50, through `ckpt serve`",
         lambda p: _ratio(pct(us.cli_served_s, 0.5), pct(p.cli_s, 0.5))),
        (f"load p50, {result.milestones[-1]} in history", lambda p: _ratio(
            _load_p50(us, result.milestones[-1]), _load_p50(p, result.milestones[-1]))),
    ]  # fmt: skip
    for title, cell in rows:
        lines.append(_row(title, [cell(result.peers[name]) for name in others]))
    return lines


def targets(result: Result) -> list[tuple[str, str, str]]:
    """Issue 7's targets that this run can judge: (target, figure, met / not met)."""
    out: list[tuple[str, str, str]] = []
    peers = result.peers
    us = peers.get(_US)
    if us is None:
        return out
    n = result.checkpoints

    def verdict(ok: bool) -> str:
        return "met" if ok else "**not met**"

    mine = _per(us, n, "allocated")
    git = peers.get("git")
    if git is not None and mine is not None and (theirs := _per(git, n, "allocated")):
        r = mine / theirs
        figure = f"{r:.2f}x ({_bytes(mine)} vs {_bytes(theirs)} per checkpoint)"
        out.append(("storage ≤ 0.75x git after `gc --aggressive` (allocated)", figure,
                    verdict(r <= 0.75)))  # fmt: skip
    saver = peers.get("sqlite-saver")
    if saver is not None and mine is not None and (theirs := _per(saver, n, "allocated")):
        r = mine / theirs
        figure = f"1/{1 / r:.1f} ({_bytes(mine)} vs {_bytes(theirs)})"
        out.append(("storage ≤ 1/50 of SqliteSaver (allocated)", figure,
                    verdict(r <= 1 / 50)))  # fmt: skip
    if saver is not None and (a := _rate(us)) and (b := _rate(saver)):
        out.append(("commit throughput ≥ 1.5x SqliteSaver `put()`",
                    f"{a / b:.2f}x ({a:.0f}/s vs {b:.0f}/s)", verdict(a / b >= 1.5)))  # fmt: skip
    last, first = result.milestones[-1], result.milestones[0]
    if saver is not None and (a := _load_p50(us, last)) and (b := _load_p50(saver, last)):
        out.append(("load p50 ≤ SqliteSaver `get_tuple`",
                    f"{a / b:.2f}x ({_ms(a)} ms vs {_ms(b)} ms)", verdict(a <= b)))  # fmt: skip
    if result.twin_history and (a := pct(us.twin_long, 0.5)) and (b := pct(us.twin_short, 0.5)):
        figure = f"{a / b:.2f}x ({_ms(a)} ms vs {_ms(b)} ms, same checkpoints, same moment)"
        title = (
            f"load flat: {result.checkpoints} checkpoints of history within 1.2x"
            f" of {result.twin_history}"
        )
        out.append((title, figure, verdict(a / b <= 1.2)))
    elif first != last and (a := _early_p50(us, last)) and (b := _early_p50(us, first)):
        figure = f"{a / b:.2f}x ({_ms(a)} ms vs {_ms(b)} ms)"
        title = f"load flat: same checkpoints, {last} in history within 1.2x of {first}"
        out.append((title, figure,
                    verdict(a / b <= 1.2)))  # fmt: skip
    if result.profile.big_state and result.bytes_per_commit:
        size = statistics.median(result.bytes_per_commit[1:] or result.bytes_per_commit)
        out.append(("big state: a 3-entry commit writes < 64 KiB (median, compressed)",
                    _bytes(size), verdict(size < 64 * 1024)))  # fmt: skip
        diff = pct(us.diffs, 0.5)
        shown = f"{_ms(diff)} ms" if diff is not None else f"skipped: {us.diff_note}"
        judged = verdict(diff < 0.001) if diff is not None else "not measurable yet"
        out.append(("big state: diff of two such checkpoints < 1 ms (p50)", shown, judged))
    if git is not None and us.cli_s and git.cli_s:
        a, b = statistics.median(us.cli_s), statistics.median(git.cli_s)
        out.append(("`ckpt commit` CLI ≤ 4x `git add && git commit` (same file)",
                    f"{a / b:.2f}x ({_ms(a)} ms vs {_ms(b)} ms)", verdict(a / b <= 4)))  # fmt: skip
        if us.cli_served_s:
            a = statistics.median(us.cli_served_s)
            out.append(("... the same, handed to a running `ckpt serve`",
                        f"{a / b:.2f}x ({_ms(a)} ms vs {_ms(b)} ms)",
                        verdict(a / b <= 4)))  # fmt: skip
    return out


def _breakdown(result: Result) -> list[str]:
    us = result.peers.get(_US)
    if us is None or not us.extra:
        return []
    n = result.checkpoints
    lines = [
        "| ckptstore objects | objects / ckpt | raw bytes / ckpt | stored bytes / ckpt |",
        "|---|---|---|---|",
    ]
    for label, entry in sorted((k, v) for k, v in us.extra.items() if not k.startswith("_")):
        lines.append(
            f"| {label} | {entry['count'] / n:.2f} | {_bytes(entry['raw'] / n)} |"
            f" {_bytes(entry['stored'] / n)} |"
        )
    sql = us.extra["_sqlite"]
    lines += ["", "| ckptstore store.db, per checkpoint | pages | payload | unused in pages |",
              "|---|---|---|---|"]  # fmt: skip
    for name, t in sorted(sql["tables"].items()):
        lines.append(
            f"| {name} | {_bytes(t['pages'] / n)} | {_bytes(t['payload'] / n)} |"
            f" {_bytes(t['unused'] / n)} |"
        )
    lines.append(f"| whole file ({sql['free_pages']} free pages) | {_bytes(sql['file'] / n)} | | |")
    if result.bytes_per_commit:
        written, objs = result.bytes_per_commit, result.objects_per_commit
        lines += ["", f"ckptstore writes per in-process commit: p50 {_bytes(pct(written, 0.5))},"
                  f" p99 {_bytes(pct(written, 0.99))} of compressed objects;"
                  f" p50 {pct(objs, 0.5)} new objects."]  # fmt: skip
    saver = result.peers.get("sqlite-saver")
    if saver is not None and saver.extra:
        e = saver.extra
        lines += ["", "| SqliteSaver, per checkpoint | bytes |", "|---|---|",
                  f"| checkpoint payload (msgpack) | {_bytes(e['checkpoint_payload'] / n)} |",
                  f"| metadata payload (JSON) | {_bytes(e['metadata_payload'] / n)} |",
                  f"| file (pages) | {_bytes(e['file'] / n)} |"]  # fmt: skip
    return lines


def markdown(result: Result, machine: dict[str, str] | None = None) -> str:
    """The run as markdown: header, per-peer table, ratios, targets, byte breakdown."""
    names = [n for n in _ORDER if n in result.peers]
    p = result.profile
    out = [
        f"### Profile `{p.name}`: {result.checkpoints} checkpoints in {result.sessions} "
        f"session(s), seed-format JSON; run took {result.seconds:.0f} s",
        "",
    ]
    if machine:
        out += [", ".join(f"{k}: {v}" for k, v in machine.items()), ""]
    out += ["Durability: " + "; ".join(
        f"{r.name}: {r.durability}" for r in result.peers.values()) + ".", ""]  # fmt: skip
    for name, why in result.skipped.items():
        out += [f"Skipped {name}: {why}.", ""]
    out += _peer_table(result, names)
    if _US in result.peers and len(names) > 1:
        out += ["", *_ratio_table(result, names)]
    judged = targets(result)
    if judged:
        out += ["", "| target (issue 7) | this run | verdict |", "|---|---|---|"]
        out += [f"| {t} | {f} | {v} |" for t, f, v in judged]
    more = _breakdown(result)
    if more:
        out += ["", *more]
    rss = _bytes(result.process_rss_kib * 1024)
    out += ["", f"Benchmark process peak RSS (all peers together): {rss};"
            f" Python {platform.python_version()}."]  # fmt: skip
    return "\n".join(out)
