"""git: the checkpoint as one JSON file, ``git add`` + ``git commit`` per checkpoint."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from .base import Peer, Sizes, Unavailable, dir_sizes

__all__ = ["FILE", "GitPeer"]

FILE = "checkpoint.json"
_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
}


class GitPeer(Peer):
    """One repository; each session is a branch checked out in its own worktree.

    ``core.fsync=all`` with ``core.fsyncMethod=fsync`` makes every commit durable
    (git's default leaves loose objects unsynced), so latencies compare at equal
    durability. Sizes are taken before and after ``git gc --aggressive --prune=now``.
    """

    name = "git"
    durability = "core.fsync=all, core.fsyncMethod=fsync"
    rewrites = frozenset()
    timed = True

    def __init__(self) -> None:
        if shutil.which("git") is None:
            raise Unavailable("git is not installed")
        self.repo = Path()
        self.trees: dict[str, Path] = {}
        self.env = {**os.environ, **_ENV}
        self.add_commit_seconds: list[float] = []

    def _git(self, *args: str, cwd: Path | None = None, out: bool = False) -> str:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd or self.repo,
            env=self.env,
            check=True,
            stdout=subprocess.PIPE if out else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        return done.stdout.decode() if out else ""

    def open(self, root: Path) -> None:
        self.repo = root / "git" / "main"
        self.repo.mkdir(parents=True)
        self._git("init", "-q", "-b", "main")
        for key, value in (
            ("core.fsync", "all"),
            ("core.fsyncMethod", "fsync"),
            ("gc.auto", "0"),  # no automatic repack mid-run: the sizes before gc are loose
            ("commit.gpgsign", "false"),
        ):
            self._git("config", key, value)
        self.trees["main"] = self.repo

    def stage(self, state: dict[str, Any], session: str, fork_of: str | None) -> Any:
        # A fork gets its own branch, checked out in its own worktree at the base's head.
        if fork_of is not None and session not in self.trees:
            path = self.repo.parent / session
            self._git("worktree", "add", "-q", "-b", session, str(path), fork_of)
            self.trees[session] = path
        return state, session

    def write(self, state: dict[str, Any], session: str) -> Path:
        """Write the checkpoint file into the session's worktree (as the skill did)."""
        path = self.trees[session] / FILE
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(state, fh, indent=2)
        return path

    def add_commit(self, session: str, message: str) -> float:
        """``git add`` + ``git commit`` of the file; returns the wall seconds of both."""
        tree = self.trees[session]
        start = time.perf_counter()
        self._git("add", FILE, cwd=tree)
        self._git("commit", "-q", "--no-verify", "-m", message, cwd=tree)
        return time.perf_counter() - start

    def commit(self, staged: Any) -> Any:
        state, session = staged
        self.write(state, session)
        self.add_commit_seconds.append(self.add_commit(session, state["checkpoint_id"]))
        return None

    def settle(self, staged: Any, key: Any) -> Any:
        return self.head(staged[1])

    def head(self, session: str) -> str:
        """The commit id the session's branch points at (read untimed, after a commit)."""
        return self._git("rev-parse", "HEAD", cwd=self.trees[session], out=True).strip()

    def load(self, key: Any) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self._git("show", f"{key}:{FILE}", out=True))
        return data

    def diff(self, old: Any, new: Any) -> Any:
        return self._git("diff", "--no-color", "-U0", old, new, "--", FILE, out=True)

    def sizes(self) -> Sizes:
        return dir_sizes(self.repo / ".git")

    def load_latest_argv(self, key: Any) -> list[str]:
        return ["git", "-C", str(self.repo), "show", f"{key}:{FILE}"]

    def finish(self) -> dict[str, Any]:
        before = self.sizes()
        start = time.perf_counter()
        self._git("gc", "--aggressive", "--prune=now", "--quiet")
        seconds = time.perf_counter() - start
        return {"before_gc": before, "after_gc": self.sizes(), "gc_seconds": seconds}
