"""``[serve] auto``: a commit that finds no ``ckpt serve`` starts one, in real processes."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from ckpt_cli import serve_client as wire
from ckptstore import Store
from test_serve import EXE, ckpt, env, pytestmark, served_count, status

__all__ = ["pytestmark"]  # the same skip as test_serve: the entry point and Unix sockets


def answering(store: Path, timeout: float = 20.0) -> dict[str, Any] | None:
    """The server's status once one answers (None if none does in ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = ckpt("--store", str(store), "serve", "--status", "--json")
        if done.returncode == 0:
            found: dict[str, Any] = json.loads(done.stdout)
            return found
        time.sleep(0.1)
    return None


@pytest.fixture
def auto_store(tmp_path: Path) -> Path:
    store = tmp_path / ".ckpt"
    assert ckpt("--store", str(store), "init").returncode == 0
    (store / "config.toml").write_text('[serve]\nauto = true\nidle = "5m"\n')
    return store


def test_a_commit_starts_the_server_the_next_one_uses(auto_store: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    # Output captured through pipes, with a timeout shorter than the server's idle: had the
    # server inherited the pipe, this would wait for it to exit.
    first = ckpt("--store", str(auto_store), "commit", "--var", "step", "1", cwd=work)
    assert first.returncode == 0, first.stderr
    assert first.stderr == b""
    try:
        found = answering(auto_store)
        assert found is not None, (auto_store / wire.LOG_NAME).read_text()
        assert (found["served"], found["idle_seconds"]) == (0, 300)
        # The server does not depend on the directory the first commit ran in.
        work.rmdir()
        second = ckpt("--store", str(auto_store), "commit", "--var", "step", "2", cwd=tmp_path)
        assert second.returncode == 0, second.stderr
        assert served_count(auto_store) == 1
        third = ckpt("--store", str(auto_store), "commit", "--var", "step", "3", cwd=tmp_path)
        assert third.returncode == 0, third.stderr
        assert status(auto_store)["pid"] == found["pid"]  # the same server, not another
    finally:
        ckpt("--store", str(auto_store), "serve", "--stop")
    with Store.open(auto_store) as opened:
        assert [c.checkpoint_id.encode() for c in opened.log()] == [
            third.stdout.strip(),
            second.stdout.strip(),
            first.stdout.strip(),
        ]
        assert opened.load()["variables"]["step"] == 3


def test_no_server_is_started_unless_the_config_asks(auto_store: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain" / ".ckpt"
    assert ckpt("--store", str(plain), "init").returncode == 0
    for store, extra in ((plain, {}), (auto_store, {"CKPT_NO_SERVER": "1"})):
        done = ckpt("--store", str(store), "commit", "--var", "a", "1", **extra)
        assert done.returncode == 0, done.stderr
        # The lock is looked at and the log opened before the commit's process exits.
        assert not (store / wire.LOCK_NAME).exists()
        assert not (store / wire.LOG_NAME).exists()
    refused = ckpt("--store", str(auto_store), "commit", "--state", str(tmp_path / "none.json"))
    assert refused.returncode == 2
    assert not (auto_store / wire.LOG_NAME).exists()  # a failed commit starts nothing


def test_two_servers_started_at_once_leave_one(auto_store: Path) -> None:
    assert EXE is not None
    argv = [EXE, "--store", str(auto_store), "serve", "--idle", "60"]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    both = [subprocess.Popen(argv, env=env(), **pipes) for _ in range(2)]
    try:
        found = answering(auto_store)
        assert found is not None
        loser = next(p for p in both if p.pid != found["pid"])
        _, err = loser.communicate(timeout=30)
        assert loser.returncode == 1
        assert err.count(b"\n") == 1
        assert b"a server is starting for it" in err or b"a server already runs" in err
        again = answering(auto_store, timeout=1.0)
        assert again is not None
        assert again["pid"] == found["pid"]
    finally:
        ckpt("--store", str(auto_store), "serve", "--stop")
        for process in both:
            process.communicate(timeout=30)


def test_a_held_lock_means_a_server_is_starting(auto_store: Path) -> None:
    # As a server holds it between taking it and listening: nothing else may start one.
    fd = os.open(auto_store / wire.LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        refused = ckpt("--store", str(auto_store), "serve", "--idle", "60")
        assert refused.returncode == 1
        assert refused.stderr.count(b"\n") == 1
        assert b"a server is starting for it" in refused.stderr
        assert not (auto_store / wire.SOCKET_NAME).exists()
        detached = ckpt("--store", str(auto_store), "serve", "--detach")
        assert detached.returncode == 1
        assert detached.stderr.count(b"\n") == 1
        assert b"the server did not start; see " in detached.stderr
        assert b"a server is starting for it" in (auto_store / wire.LOG_NAME).read_bytes()
        (auto_store / wire.LOG_NAME).unlink()  # what --detach wrote; the commit writes none
        done = ckpt("--store", str(auto_store), "commit", "--var", "a", "1")
        assert done.returncode == 0, done.stderr
        assert not (auto_store / wire.LOG_NAME).exists()  # the commit started none
    finally:
        os.close(fd)


def test_a_server_that_cannot_start_only_warns(auto_store: Path) -> None:
    (auto_store / wire.LOG_NAME).mkdir()  # its log cannot be opened: the spawn fails
    done = ckpt("--store", str(auto_store), "commit", "--var", "a", "1")
    assert done.returncode == 0
    assert done.stdout.startswith(b"ckpt-")  # the commit landed and said so
    assert done.stderr.count(b"\n") == 1
    assert done.stderr.startswith(b"warning: could not start ckpt serve for ")
    with Store.open(auto_store) as opened:
        assert opened.load()["variables"]["a"] == 1
