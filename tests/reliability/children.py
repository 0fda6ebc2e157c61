"""What the fork server's children do, and the fork server itself (``python -m``).

Each child reports JSON lines on stdout: ``forked`` (with its pid) first, then
``ready`` once its store is open, then what it acknowledges (``ack`` after a commit
returned, ``phase`` as gc or prune moves on, ``done``). The parent may SIGKILL it at
any moment; the server then reports ``exit`` with the signal.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

from ckptstore import RetentionPolicy, Store
from reliability.harness import state_for, step_kind, step_vars


def emit(event: str, **fields: Any) -> None:
    # One write(2) per line: lines shorter than PIPE_BUF never interleave or tear.
    os.write(1, json.dumps({"event": event, **fields}).encode() + b"\n")


def commit_loop(store: str, sessions: list[str], start: int, count: int) -> None:
    """Commit steps ``start``, ``start + 1``, ... (see ``harness.apply_step``), acking each."""
    with Store.open(store) as opened:
        emit("ready")
        for seq in range(start, start + count):
            session = sessions[seq % len(sessions)]
            if step_kind(seq) == "full":
                info = opened.commit(state_for(seq), session=session, notes=f"step {seq}")
            else:
                info = opened.commit(variables=step_vars(seq), session=session, notes=f"{seq}")
            emit("ack", seq=seq, id=info.id, session=session)


def _progress() -> Callable[[str, int, int | None], None]:
    seen: set[str] = set()

    def report(phase: str, done: int, total: int | None) -> None:
        if phase not in seen:
            seen.add(phase)
            emit("phase", phase=phase)

    return report


def gc(store: str, ahead: float) -> None:
    """A gc that collects everything unreachable (no grace or reflog, ages ``ahead`` s on)."""
    with Store.open(store) as opened:
        emit("ready")
        stats = opened.gc(grace=0, reflog_expiry=0, now=time.time() + ahead, progress=_progress())
        emit("done", removed=stats.objects_removed)


def prune(store: str, keep: int, ahead: float) -> None:
    """Prune every session to its newest ``keep`` checkpoints, then gc as :func:`gc` does."""
    with Store.open(store) as opened:
        emit("ready")
        report = opened.prune(
            RetentionPolicy(last=keep), grace=0, reflog_expiry=0, now=time.time() + ahead,
            progress=_progress(),
        )  # fmt: skip
        emit("done", removed=report.removed)


def commit_one(store: str, session: str, state: dict[str, Any]) -> None:
    """One full commit (the stateful model's crash rule kills it somewhere)."""
    with Store.open(store) as opened:
        emit("ready")
        info = opened.commit(state, session=session)
        emit("ack", id=info.id)


OPS: dict[str, Callable[..., None]] = {
    "commit_loop": commit_loop,
    "gc": gc,
    "prune": prune,
    "commit_one": commit_one,
}


def serve() -> None:
    """Read jobs on stdin, one JSON line each; fork a child for each; report its exit."""
    emit("up")
    while line := sys.stdin.buffer.readline():
        job = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                emit("forked", pid=os.getpid())
                OPS[job["op"]](**job["args"])
            except BaseException:
                emit("error", text=traceback.format_exc()[-3000:])
                code = 1
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        emit(
            "exit",
            pid=pid,
            signal=os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
            code=os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
        )


if __name__ == "__main__":
    serve()
