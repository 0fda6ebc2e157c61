"""Where a CLI commit's milliseconds go: interpreter start, imports, the commit itself.

Run after the main run, on its stores: ``ckpt commit --var KEY VALUE`` against the
ckptstore store, in a process of its own and handed to a ``ckpt serve`` started for
these probes (one commit after another, as an agent's hooks make them), interleaved
with ``git add && git commit`` of the checkpoint file with the same variable changed
(the file is written untimed), plus ``python -c pass`` (the interpreter's own start)
and ``python -X importtime`` of the same ``ckpt`` command. Then the same commits one
after another with ``[serve] auto = true`` in the store's config and no server
running, as hooks make them with no start-up step: the first starts the server, and
those that come before it listens run in processes of their own.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from peers.base import PYTHON
from peers.ckpt import ckpt_argv
from peers.git import GitPeer

__all__ = ["importtime", "measure"]

_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def _wall(argv: list[str], cwd: Path, **env: str) -> float:
    environ = {**os.environ, **env}
    if not env:
        environ.pop("CKPT_NO_SERVER", None)
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True, capture_output=True, env=environ)
    return time.perf_counter() - start


def importtime(argv: list[str], cwd: Path) -> dict[str, Any]:
    """Run ``python -X importtime`` on a command; the total and the top-level modules."""
    done = subprocess.run(
        [PYTHON, "-X", "importtime", *argv], capture_output=True, text=True, check=True, cwd=cwd
    )
    matches = [m for m in map(_LINE.match, done.stderr.splitlines()) if m]
    rows = [(len(m[3]), m[4], int(m[2]), int(m[1])) for m in matches]
    top = min((depth for depth, *_ in rows), default=0)
    roots = sorted(((r[1], r[2]) for r in rows if r[0] == top), key=lambda r: -r[1])
    heavy = sorted(((r[1], r[3]) for r in rows), key=lambda r: -r[1])
    return {
        "total_us": sum(cum for _, cum in roots),
        "top": roots[:12],
        "self_top": heavy[:15],
        "modules": len(rows),
    }


def measure(
    store_dir: Path, git: GitPeer | None, state: dict[str, Any], session: str, samples: int
) -> dict[str, Any]:
    """Wall times of the CLI paths, ``samples`` each, interleaved; see the module doc.

    Commands run from the store's parent directory: ``python -c`` and ``-m`` put the
    current directory first on ``sys.path``, and a checkout there must not shadow the
    installed ckptstore being measured.
    """
    cwd = store_dir.parent
    ckpt = [*ckpt_argv(), "--store", str(store_dir)]
    out: dict[str, Any] = {
        "python -c pass": [],
        "ckpt commit --var": [],
        "git add && git commit": [],
    }
    out["python -c 'import ckptstore'"] = []
    served = "ckpt commit --var, handed to ckpt serve"

    def probe(value: str) -> list[str]:
        return [*ckpt, "commit", "--var", "bench_probe", value, "--session", session]

    out[served] = []
    # The sizes are taken by now: the server's log may go in the store directory.
    subprocess.run([*ckpt, "serve", "--detach", "--idle", "600"], check=True, capture_output=True)
    try:
        for n in range(samples):
            out["python -c pass"].append(_wall([PYTHON, "-c", "pass"], cwd))
            out["python -c 'import ckptstore'"].append(
                _wall([PYTHON, "-c", "import ckptstore"], cwd)
            )
            out["ckpt commit --var"].append(_wall(probe(str(n)), cwd, CKPT_NO_SERVER="1"))
            out[served].append(_wall(probe(f"{n} served"), cwd))
            if git is not None:
                changed = {**state, "variables": {**state["variables"], "bench_probe": n}}
                git.write(changed, session)
                out["git add && git commit"].append(git.add_commit(session, f"probe {n}"))
        status = subprocess.run(
            [*ckpt, "serve", "--status", "--json"], check=True, capture_output=True, text=True
        )
        if json.loads(status.stdout)["served"] != samples:  # else it timed fresh processes
            raise RuntimeError(f"ckpt serve did not take every probe: {status.stdout}")
    finally:
        subprocess.run([*ckpt, "serve", "--stop"], capture_output=True)
    _auto(ckpt, store_dir, samples, lambda n: _wall(probe(f"{n} auto"), cwd), out)
    ckpt_module = [PYTHON, "-m", "ckpt_cli", "--store", str(store_dir)]
    out["importtime"] = importtime(
        [*ckpt_module[1:], "commit", "--var", "bench_probe", "x", "--session", session], cwd
    )
    return out


AUTO = "ckpt commit --var, [serve] auto, from no server"


def _auto(ckpt: list[str], store_dir: Path, samples: int, commit: Any, out: dict[str, Any]) -> None:
    """Time ``samples`` commits with ``[serve] auto`` on; record how many were served.

    ``ckpt`` is the command with its ``--store``.
    """
    socket_file = store_dir / "serve.sock"
    deadline = time.monotonic() + 30
    while socket_file.exists() and time.monotonic() < deadline:
        time.sleep(0.02)  # the server stopped above removes it on its way out
    config = store_dir / "config.toml"
    before = config.read_text() if config.exists() else None
    config.write_text((before or "") + "\n[serve]\nauto = true\n")
    try:
        out[AUTO] = [commit(n) for n in range(samples)]
        deadline = time.monotonic() + 30  # with few samples, it may still be starting
        while True:
            status = subprocess.run(
                [*ckpt, "serve", "--status", "--json"], capture_output=True, text=True
            )
            if status.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        if status.returncode != 0:
            raise RuntimeError(f"no server started with [serve] auto: {status.stderr}")
        out["auto_served"] = json.loads(status.stdout)["served"]
    finally:
        subprocess.run([*ckpt, "serve", "--stop"], capture_output=True)
        if before is None:
            config.unlink()
        else:
            config.write_text(before)


def markdown(figures: dict[str, Any]) -> str:
    """The startup figures as a table and the import-time top list."""
    lines = ["| command | p50 ms | min ms | samples |", "|---|---|---|---|"]
    for name, values in figures.items():
        if isinstance(values, list) and values:
            lines.append(
                f"| `{name}` | {statistics.median(values) * 1000:.1f} |"
                f" {min(values) * 1000:.1f} | {len(values)} |"
            )
    if "auto_served" in figures:
        lines.append(
            f"\nWith `[serve] auto`, {figures['auto_served']} of {len(figures[AUTO])} commits"
            " were served; the others ran in processes of their own while the server started."
        )
    imp = figures.get("importtime")
    if imp:
        lines += [
            "",
            f"`python -X importtime -m ckpt_cli ... commit --var`: {imp['modules']} modules,"
            f" {imp['total_us'] / 1000:.1f} ms of imports (cumulative, top level):",
            "",
            "| top-level import | cumulative ms |",
            "|---|---|",
        ]
        lines += [f"| `{name}` | {us / 1000:.1f} |" for name, us in imp["top"]]
        lines += ["", "| heaviest modules (self time) | self ms |", "|---|---|"]
        lines += [f"| `{name}` | {us / 1000:.1f} |" for name, us in imp["self_top"]]
    return "\n".join(lines)


def dump(figures: dict[str, Any]) -> str:
    """JSON of the figures (for --json)."""
    return json.dumps(figures, indent=2)
