"""What every peer implements, and the size and process helpers they share."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Peer", "Sizes", "Unavailable", "dir_sizes", "run_rusage"]


class Unavailable(Exception):
    """A peer cannot run here (a package or a program is missing)."""


@dataclass(frozen=True)
class Sizes:
    """Bytes on disk: apparent (st_size) and allocated (st_blocks * 512)."""

    apparent: int
    allocated: int

    def __add__(self, other: Sizes) -> Sizes:
        return Sizes(self.apparent + other.apparent, self.allocated + other.allocated)


def dir_sizes(path: Path) -> Sizes:
    """Sum the apparent and allocated sizes of every file under ``path``."""
    apparent = allocated = 0
    if path.is_file():
        st = path.stat()
        return Sizes(st.st_size, st.st_blocks * 512)
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except FileNotFoundError:
                continue
            apparent += st.st_size
            allocated += st.st_blocks * 512
    return Sizes(apparent, allocated)


_LAUNCHER = """
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
_pid, status, usage = os.wait4(proc.pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)
"""


def run_rusage(argv: list[str], *, cwd: Path | None = None) -> tuple[int, int]:
    """Run ``argv`` to completion; return (exit status, peak RSS in KiB) of that process.

    Linux carries a process's RSS high-water mark across ``exec``, so a child forked
    straight from this (large) benchmark process would report our peak, not its own.
    The command is therefore started by a small intermediary: GNU time when installed,
    else a minimal Python launcher (whose own ~10 MiB then sets a floor on the figure).
    """
    if os.path.exists("/usr/bin/time"):
        with tempfile.NamedTemporaryFile("r", suffix=".rss") as out:
            done = subprocess.run(
                ["/usr/bin/time", "-f", "%M", "-o", out.name, *argv],
                cwd=cwd,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=False,
            )
            text = out.read().strip().splitlines()
        return done.returncode, int(text[-1]) if text else 0
    done = subprocess.run(
        [sys.executable, "-S", "-c", _LAUNCHER, *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    status, rss = done.stdout.split()
    return int(status), int(rss)


PYTHON = sys.executable


class Peer:
    """A way of storing checkpoints that the benchmark measures side by side.

    The runner calls, per checkpoint: ``stage`` (untimed: anything a real caller
    prepares before the store is asked, such as LangGraph's channel versions, or a
    fork's branch), ``commit`` (timed), then ``settle`` (untimed: read back the key
    ``load`` accepts, when ``commit`` cannot return it for free). ``rewrites`` names the
    fields the peer sets itself; they are not compared on load.
    """

    name = "peer"
    durability = ""
    rewrites: frozenset[str] = frozenset()
    timed = True  # False for the floor: sizes only, no latency and no random access

    def open(self, root: Path) -> None:
        raise NotImplementedError

    def stage(self, state: dict[str, Any], session: str, fork_of: str | None) -> Any:
        return state, session

    def commit(self, staged: Any) -> Any:
        raise NotImplementedError

    def settle(self, staged: Any, key: Any) -> Any:
        return key

    def load(self, key: Any) -> dict[str, Any]:
        raise NotImplementedError

    def diff(self, old: Any, new: Any) -> Any:
        raise NotImplementedError(f"{self.name} has no diff")

    def sizes(self) -> Sizes:
        raise NotImplementedError

    def load_latest_argv(self, key: Any) -> list[str] | None:
        return None

    def finish(self) -> dict[str, Any]:
        """Called once after the last measurement that needs the peer open."""
        return {}

    def close(self) -> None:
        pass
