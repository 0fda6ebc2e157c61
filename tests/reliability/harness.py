"""What the reliability tests share: the soak switch, a fork server, states, store checks.

The soak switch is the environment variable ``CKPT_SOAK``: unset (or ``0``) runs the
bounded version that belongs in the normal suite; ``CKPT_SOAK=1`` runs the long one
(see docs/reliability.md for the command and the figures of a soak run).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from ckptstore import Store

SOAK = os.environ.get("CKPT_SOAK", "").strip() not in ("", "0")
FIGURES = pytest.StashKey[list[str]]()
TESTS_DIR = Path(__file__).resolve().parent.parent
STORE_OWNED = (
    "checkpoint_id", "created_at", "session_id", "content_hash",
    "parent_checkpoint_id", "estimated_tokens",
)  # fmt: skip
TIMEOUT = 120.0  # seconds a child may stay silent before the harness calls it hung


def scaled(normal: int, soak: int) -> int:
    """``normal`` in the normal suite, ``soak`` under ``CKPT_SOAK=1``."""
    return soak if SOAK else normal


def user_fields(loaded: dict[str, Any]) -> dict[str, Any]:
    """A loaded checkpoint without the fields the store sets."""
    return {k: v for k, v in loaded.items() if k not in STORE_OWNED}


def child_env() -> dict[str, str]:
    """The environment for child processes: the tests directory importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(TESTS_DIR), env.get("PYTHONPATH")) if p)
    return env


# --- states ------------------------------------------------------------------------------


def state_for(seq: int) -> dict[str, Any]:
    """A small full checkpoint that only ``seq`` determines (some of it compressible)."""
    return {
        "phase": {"name": f"phase {seq // 7}", "number": seq // 7, "status": "in_progress"},
        "tasks": [
            {
                "id": str(t),
                "subject": f"task {t} of step {seq // 3}: " + "write the tests " * (t + 1),
                "status": ("pending", "in_progress", "completed")[(seq + t) % 3],
                "blocks": [],
                "blocked_by": [str(t - 1)] if t else [],
            }
            for t in range(4)
        ],
        "variables": {"seq": seq, "kind": "full", "plan": f"plan of step {seq} " * 6},
        "recent_outputs": [{"type": "log", "seq": seq - k} for k in range(seq % 4)],
        "agent_id": "crash-test",
    }


def step_kind(seq: int) -> str:
    """Whether step ``seq`` commits a full state or only sets variables."""
    return "full" if seq % 3 == 0 else "vars"


def step_vars(seq: int) -> dict[str, Any]:
    """The variables an incremental step sets."""
    return {"seq": seq, "kind": "vars", f"note{seq % 5}": f"step {seq} " * (seq % 9)}


def apply_step(previous: dict[str, Any] | None, seq: int) -> dict[str, Any]:
    """The user fields a session holds after step ``seq`` on top of ``previous``.

    ``None`` is a session without checkpoints: an incremental step then starts from the
    store's empty checkpoint.
    """
    if step_kind(seq) == "full":
        return state_for(seq)
    base = previous if previous is not None else EMPTY
    return {**base, "variables": {**base.get("variables", {}), **step_vars(seq)}}


EMPTY: dict[str, Any] = {
    "phase": None, "phases_completed": [], "tasks": [], "active_task_id": None,
    "dependencies": [], "variables": {}, "recent_outputs": [], "agent_id": None,
    "agent_tier": None,
}  # fmt: skip


# --- store checks ------------------------------------------------------------------------


def assert_fsck_clean(store: Store, context: object = "") -> None:
    report = store.fsck()
    assert report.ok, (context, [str(p) for p in report.problems[:5]])


def assert_reflog_matches(store: Store, session: str, ids: list[str]) -> None:
    """One reflog entry per move of the session, oldest first, each from the previous."""
    entries = list(reversed(store.backend.reflog(f"sessions/{session}")))
    assert [e.new.hex() if e.new else None for e in entries] == ids, session
    assert entries[0].old is None
    for previous, entry in pairwise(entries):
        assert entry.old == previous.new


# --- a fork server -------------------------------------------------------------------------


@dataclass
class Job:
    """One child of the fork server: its events, and how it ended."""

    server: ForkServer
    events: list[dict[str, Any]] = field(default_factory=list)
    pid: int | None = None
    exit: dict[str, Any] | None = None

    def wait_for(self, event: str) -> dict[str, Any]:
        """Read events until one named ``event`` (or the child's exit) arrives."""
        while True:
            found = self._next()
            if found["event"] in (event, "exit"):
                return found

    def _next(self) -> dict[str, Any]:
        message = self.server.read()
        if message["event"] == "exit":
            self.exit = message
            self.server.job = None
        else:
            self.events.append(message)
            if message["event"] == "forked":
                self.pid = message["pid"]
        return message

    def kill(self) -> None:
        """SIGKILL the child (it may already have finished)."""
        if self.pid is not None and self.exit is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)

    def finish(self) -> Job:
        """Read events until the child is gone."""
        while self.exit is None:
            self._next()
        errors = [e["text"] for e in self.events if e["event"] == "error"]
        assert errors == [], errors[0]
        return self

    @property
    def killed(self) -> bool:
        """Whether the child died of SIGKILL (rather than finishing first)."""
        assert self.exit is not None
        return self.exit["signal"] == signal.SIGKILL

    def named(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == event]


class ForkServer:
    """A Python process that has imported ckptstore and forks one child per job.

    A fresh interpreter takes ~0.2 s to import the library; a fork of one that already
    has takes a few milliseconds, which is what lets a test kill hundreds of children.
    The children run the functions of :mod:`reliability.children` and report events as
    JSON lines on the server's stdout. The server itself holds no store open, so each
    child starts with no inherited connection.
    """

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "reliability.children"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=child_env(),
        )
        self._buffer = b""
        self.job: Job | None = None
        assert self.read()["event"] == "up"

    def read(self) -> dict[str, Any]:
        """The next event line from the server or its child."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + TIMEOUT
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([fd], [], [], max(left, 0))
            if not ready:
                raise AssertionError(f"no word from the fork server for {TIMEOUT:g}s")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise AssertionError("the fork server died")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        message: dict[str, Any] = json.loads(line)
        return message

    def start(self, op: str, **args: Any) -> Job:
        """Fork a child running ``children.<op>(**args)``; it reports ``forked`` first."""
        assert self.job is None, "one child at a time"
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, "args": args}).encode() + b"\n")
        self.proc.stdin.flush()
        self.job = Job(self)
        return self.job

    def close(self) -> None:
        if self.job is not None:
            if self.job.pid is None:
                self.job.wait_for("forked")
            self.job.kill()
            self.job.finish()
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        assert self.proc.stdout is not None
        self.proc.stdout.close()
