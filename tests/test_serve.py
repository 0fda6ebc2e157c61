"""``ckpt serve``: commits handed to a resident server, in real processes over a real socket."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ckpt_cli import serve_client as wire
from ckptstore import Store
from storetools import drop_session
from strategies import user_fields

EXE = shutil.which("ckpt", path=str(Path(sys.executable).parent))
pytestmark = pytest.mark.skipif(
    EXE is None or not hasattr(socket, "AF_UNIX"),
    reason="needs the ckpt entry point and Unix sockets",
)


def env(**extra: str) -> dict[str, str]:
    return {"PATH": str(Path(sys.executable).parent), "HOME": os.environ.get("HOME", "/"), **extra}


def ckpt(*args: str, cwd: Path | None = None, stdin: bytes | None = None, **extra: str) -> Any:
    assert EXE is not None
    return subprocess.run(
        [EXE, *args], input=stdin, capture_output=True, cwd=cwd, env=env(**extra), timeout=60
    )


def status(store: Path) -> dict[str, Any]:
    done = ckpt("--store", str(store), "serve", "--status", "--json")
    assert done.returncode == 0, done.stderr
    found: dict[str, Any] = json.loads(done.stdout)
    return found


def served_count(store: Path) -> int:
    return int(status(store)["served"])


def state(step: int) -> dict[str, Any]:
    tasks = [{"id": str(i), "subject": f"task {i}", "status": "pending"} for i in range(40)]
    for i in range(step):
        tasks[i]["status"] = "completed"
    return {"phase": {"name": "build", "number": 1, "status": "active"}, "tasks": tasks,
            "variables": {"plan": "do the thing\n" * (50 + step)}}  # fmt: skip


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Path]:
    store = tmp_path / ".ckpt"
    assert ckpt("--store", str(store), "init").returncode == 0
    started = ckpt("--store", str(store), "serve", "--detach", "--idle", "120")
    assert started.returncode == 0, started.stderr
    assert b"serving" in started.stdout
    again = ckpt("--store", str(store), "serve", "--detach")  # once is enough: a no-op
    assert again.returncode == 0, again.stderr
    assert again.stdout.split(b"(pid ")[1][:6] == started.stdout.split(b"(pid ")[1][:6]
    yield store
    ckpt("--store", str(store), "serve", "--stop")


def test_a_served_commit_is_the_one_a_fresh_process_makes(served: Path, tmp_path: Path) -> None:
    local = tmp_path / "local" / ".ckpt"
    assert ckpt("--store", str(local), "init").returncode == 0
    for step in range(3):
        path = tmp_path / f"s{step}.json"
        path.write_text(json.dumps(state(step)))
        for store, extra in ((served, {}), (local, {"CKPT_NO_SERVER": "1"})):
            done = ckpt("--store", str(store), "commit", "--state", str(path), "--json", **extra)
            assert done.returncode == 0, done.stderr
            assert json.loads(done.stdout)["checkpoint_id"].startswith("ckpt-")
    assert served_count(served) == 3
    with Store.open(served) as a, Store.open(local) as b:
        for x, y in zip(a.log(), b.log(), strict=True):
            assert user_fields(a.load(x.checkpoint_id)) == user_fields(b.load(y.checkpoint_id))
            assert x.estimated_tokens == y.estimated_tokens


def test_errors_come_back_as_the_same_line_and_code(served: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"tasks": 5}')
    for args in (["--state", str(tmp_path / "missing.json")], ["--state", str(bad)]):
        remote = ckpt("--store", str(served), "commit", *args)
        here = ckpt("--store", str(served), "commit", *args, CKPT_NO_SERVER="1")
        assert remote.returncode == here.returncode == 2
        assert remote.stderr == here.stderr
        assert remote.stderr.count(b"\n") == 1
        assert remote.stderr.startswith(b"error: ")
    assert served_count(served) == 2


def test_directory_environment_and_stdin_are_the_clients(served: Path, tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text(json.dumps(state(1)))
    # Found from the working directory; a relative path; the session from the environment.
    assert ckpt("commit", "--state", "s.json", cwd=tmp_path, CKPT_SESSION="agent-7").returncode == 0
    piped = ckpt(
        "commit", "--state", "-", "-s", "main", cwd=tmp_path, stdin=json.dumps(state(2)).encode()
    )
    assert piped.returncode == 0, piped.stderr
    assert served_count(served) == 2
    with Store.open(served) as opened:
        assert [c.session for c in opened.log("agent-7")] == ["agent-7"]
        assert opened.load("agent-7")["tasks"][0]["status"] == "completed"
        assert opened.load("main")["tasks"][1]["status"] == "completed"


def test_a_config_change_is_seen_by_the_next_commit(served: Path, tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text(json.dumps(state(0)))
    commit = ("--store", str(served), "commit", "--state", str(tmp_path / "s.json"))
    assert ckpt(*commit).returncode == 0  # the server opens the store, no config yet
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        (served / "config.toml").write_text(
            f'[[dependencies]]\nname = "db"\ncheck = "tcp"\nendpoint = "127.0.0.1:{port}"\n'
        )
        assert ckpt(*commit).returncode == 0
    assert served_count(served) == 2
    with Store.open(served) as opened:
        dependencies = opened.load()["dependencies"]
    assert [(d["name"], d["status"]) for d in dependencies] == [("db", "available")]


def test_what_only_typer_handles_is_run_by_the_client(served: Path) -> None:
    done = ckpt("--store", str(served), "commit", "--help")
    assert done.returncode == 0
    assert b"Usage" in done.stdout
    assert "declined a request: arguments for typer" in (served / "serve.log").read_text()
    assert status(served)["declined"] == 1


def ask(store: Path, fields: list[bytes]) -> list[bytes]:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(10)
    with conn:
        wire.in_directory(str(store), conn.connect)
        conn.sendall(wire.frame(fields))
        return wire.read_frame(conn)


def commit_request(package: str, cwd: Path, argv: list[str]) -> list[bytes]:
    return wire.commit_request(package, str(cwd), argv, {}, None)


def test_a_server_declines_what_it_would_not_run_the_same_way(served: Path, tmp_path: Path) -> None:
    package = os.path.dirname(os.path.abspath(wire.__file__))
    other = tmp_path / "other" / ".ckpt"
    assert ckpt("--store", str(other), "init").returncode == 0
    argv = ["--store", str(other), "commit", "-m", "x"]
    assert ask(served, commit_request(package, tmp_path, argv)) == [b"declined", b"another store"]
    argv = ["--store", str(served), "commit", "-m", "x"]
    assert ask(served, commit_request("/elsewhere", tmp_path, argv)) == [
        b"declined",
        b"another installation",
    ]
    malformed = [wire.PROTOCOL, b"commit", package.encode(), b"/", b"two"]
    assert ask(served, malformed) == [b"declined", b"a malformed request"]
    gone = commit_request(package, tmp_path / "gone", argv)
    assert ask(served, gone) == [b"declined", b"the working directory is gone"]
    assert ask(served, commit_request(package, tmp_path, argv))[:2] == [b"ran", b"0"]
    with Store.open(other) as opened:
        assert opened.refs.session_head("main") is None  # nothing was written there


def test_concurrent_clients_are_each_served_and_all_land(served: Path, tmp_path: Path) -> None:
    assert EXE is not None

    def start(n: int) -> subprocess.Popen[bytes]:
        argv = [EXE, "--store", str(served), "commit", "-s", f"agent-{n % 3}", "--var", "n", str(n)]
        return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env())

    procs = [start(n) for n in range(12)]
    outcomes = []
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        outcomes.append((proc.returncode, err))
    assert outcomes == [(0, b"")] * 12
    assert served_count(served) == 12
    with Store.open(served) as opened:
        for agent in range(3):
            seen = {c.checkpoint_id for c in opened.log(session=f"agent-{agent}")}
            values = sorted(opened.load(ref)["variables"]["n"] for ref in seen)
            assert values == [n for n in range(12) if n % 3 == agent]
        assert opened.fsck().ok


def test_a_gc_elsewhere_is_seen_by_the_open_store(served: Path, tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text(json.dumps(state(5)))
    commit = ("--store", str(served), "commit", "--state", str(tmp_path / "s.json"))
    assert ckpt(*commit, "-s", "scratch").returncode == 0  # the server writes its objects
    with Store.open(served) as opened:
        drop_session(opened, "scratch")
    time.sleep(1.1)  # ages are whole seconds: a grace of 0 s spares this second's objects
    collected = ckpt(
        "--store", str(served), "gc", "--grace", "0s", "--reflog-expiry", "0s", "--json"
    )
    assert collected.returncode == 0, collected.stderr
    assert json.loads(collected.stdout)["objects_removed"] > 0
    # The same state again: the server remembers writing those objects, gc removed them.
    assert ckpt(*commit, "-s", "main").returncode == 0
    assert served_count(served) == 2
    with Store.open(served) as opened:
        loaded = opened.load("main")
        assert {name: loaded[name] for name in state(5)} == state(5)
        assert opened.fsck().ok


def test_a_store_too_deep_for_a_socket_address_is_served(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    store = deep / ".ckpt"
    assert len(os.fsencode(store / wire.SOCKET_NAME)) > 110  # beyond any sun_path
    assert ckpt("--store", str(store), "init").returncode == 0
    started = ckpt("--store", str(store), "serve", "--detach", "--idle", "60")
    assert started.returncode == 0, started.stderr
    try:
        (tmp_path / "s.json").write_text(json.dumps(state(2)))
        done = ckpt("commit", "--state", str(tmp_path / "s.json"), cwd=deep)
        assert done.returncode == 0, done.stderr
        assert served_count(store) == 1
    finally:
        assert ckpt("--store", str(store), "serve", "--stop").returncode == 0


def test_bad_serve_arguments_are_one_line_errors(served: Path, tmp_path: Path) -> None:
    for args, code, needle in (
        (["--idle", "0"], 2, b"--idle: must be more than 0 seconds"),
        (["--stop", "--status"], 2, b"--stop and --status: give only one of them"),
    ):
        done = ckpt("--store", str(served), "serve", *args)
        assert done.returncode == code
        assert done.stderr.count(b"\n") == 1
        assert needle in done.stderr
    nowhere = ckpt("serve", "--status", CKPT_STORE=str(tmp_path / "none"))
    assert nowhere.returncode == 1
    assert nowhere.stderr.startswith(b"error: ")
    assert b"does not exist" in nowhere.stderr
    assert status(served)["served"] == 0  # nothing reached the server


def test_stop_removes_the_socket_and_a_second_server_is_refused(served: Path) -> None:
    again = ckpt("--store", str(served), "serve")
    assert again.returncode == 1
    assert b"a server already runs" in again.stderr
    assert again.stderr.count(b"\n") == 1
    stopped = ckpt("--store", str(served), "serve", "--stop")
    assert stopped.returncode == 0
    assert b"stopped" in stopped.stdout
    deadline = time.monotonic() + 10
    while (served / wire.SOCKET_NAME).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not (served / wire.SOCKET_NAME).exists()
    assert ckpt("--store", str(served), "serve", "--stop").returncode == 1
    gone = ckpt("--store", str(served), "serve", "--status")
    assert gone.returncode == 1
    assert b"no server runs" in gone.stderr


def test_a_dead_server_is_not_waited_for(served: Path, tmp_path: Path) -> None:
    pid = status(served)["pid"]
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.2)
    assert (served / wire.SOCKET_NAME).exists()  # left behind
    (tmp_path / "s.json").write_text(json.dumps(state(0)))
    done = ckpt("--store", str(served), "commit", "--state", str(tmp_path / "s.json"))
    assert done.returncode == 0, done.stderr
    restarted = ckpt("--store", str(served), "serve", "--detach")  # replaces the stale socket
    assert restarted.returncode == 0, restarted.stderr


def test_an_idle_server_stops_by_itself(tmp_path: Path) -> None:
    store = tmp_path / ".ckpt"
    assert ckpt("--store", str(store), "init").returncode == 0
    assert ckpt("--store", str(store), "serve", "--detach", "--idle", "0.3").returncode == 0
    deadline = time.monotonic() + 15
    while (store / wire.SOCKET_NAME).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not (store / wire.SOCKET_NAME).exists()
    assert "idle for 0.3 s: stopping" in (store / "serve.log").read_text()


def test_status_of_a_server_of_an_earlier_version(tmp_path: Path) -> None:
    store = tmp_path / ".ckpt"
    assert ckpt("--store", str(store), "init").returncode == 0
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(store / wire.SOCKET_NAME))
    listener.listen(4)

    def answer() -> None:  # as a server from before the idle limit was reported
        for _ in range(2):
            conn, _ = listener.accept()
            with conn:
                wire.read_frame(conn)
                conn.sendall(wire.frame([b"pong", b"4242", b"3", b"1", b"60"]))

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        as_json = ckpt("--store", str(store), "serve", "--status", "--json")
        assert as_json.returncode == 0, as_json.stderr
        found = json.loads(as_json.stdout)
        assert (found["pid"], found["served"], "idle_seconds" in found) == (4242, 3, False)
        text = ckpt("--store", str(store), "serve", "--status")
        assert text.returncode == 0, text.stderr
        assert text.stdout.endswith(b"3 commits served, 1 declined)\n")
    finally:
        thread.join(timeout=10)
        listener.close()


def running(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie no reaper has collected does not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_server_no_client_can_reach_stops(tmp_path: Path) -> None:
    store = tmp_path / ".ckpt"
    assert ckpt("--store", str(store), "init").returncode == 0
    assert ckpt("--store", str(store), "serve", "--detach").returncode == 0
    old = status(store)["pid"]
    shutil.rmtree(store)  # a test's temporary store, say, made again at the same place
    assert ckpt("--store", str(store), "init").returncode == 0
    assert ckpt("--store", str(store), "serve", "--detach").returncode == 0
    new = status(store)["pid"]
    try:
        assert new != old
        deadline = time.monotonic() + 20
        while running(old) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not running(old)  # its socket was replaced: stopped, not idling for 30 min
        assert status(store)["pid"] == new  # and it left the new server's socket alone
    finally:
        ckpt("--store", str(store), "serve", "--stop")


def test_a_server_of_changed_code_declines_and_stops(tmp_path: Path) -> None:
    from ckpt_cli import serve

    serve._warm_up()  # as a server does before it starts
    server = serve._Server(tmp_path, tmp_path / wire.SOCKET_NAME, idle=1.0)
    assert any(f.endswith("commit_cmd.py") for f in server.files)  # what a commit runs
    source = tmp_path / "module.py"
    source.write_text("")
    server.files.append(str(source))
    server.stamp = serve._code_stamp(server.files)
    os.utime(source, ns=(server.stamp + 10**9, server.stamp + 10**9))  # reinstalled
    request = commit_request(serve._PACKAGE, tmp_path, ["commit"])
    assert server.handle(request) == [b"declined", b"the code changed"]
    assert server.running is False
