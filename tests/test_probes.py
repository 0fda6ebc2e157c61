"""Dependency probes against real listeners on 127.0.0.1 that the tests start.

TCP: a listening socket, and a port nothing listens on. HTTP: ``http.server`` answering
200 and 503, and a socket that accepts but never answers. Commands: real processes,
one that sleeps past its timeout (and must be killed, with what it started).
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ckptstore import InvalidConfig, Store
from ckptstore.config import parse_config
from ckptstore.probes import DependencySpec, ProbeResult, probe_all, probe_one

PY = sys.executable


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        code = 503 if self.path.startswith("/sick") else 200
        body = b"sealed" if code == 503 else b"ok"
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A TCP socket listening on loopback (connections queue in its backlog, unanswered)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield sock
    finally:
        sock.close()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def one(spec: DependencySpec, timeout: float = 2.0) -> ProbeResult:
    return probe_one(spec, timeout)


def wait_gone(pid: int) -> bool:
    """Whether process ``pid`` has exited (is gone or a zombie) within a generous wait."""
    for _ in range(500):
        try:
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return True
        except (FileNotFoundError, ProcessLookupError):
            return True  # reaped; or reaped between the open and the read (ESRCH)
        time.sleep(0.01)
    return False


# --- tcp ----------------------------------------------------------------------------------


def test_tcp_to_a_listening_socket_is_available(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    result = one(DependencySpec("cache", "tcp", f"127.0.0.1:{port}", type="cache"))
    assert (result.status, result.reason) == ("available", None)
    entry = result.to_dependency()
    assert entry["name"] == "cache"
    assert entry["type"] == "cache"
    assert entry["endpoint"] == f"127.0.0.1:{port}"
    assert "reason" not in entry
    assert entry["last_checked"].endswith("+00:00")


def test_tcp_to_a_closed_port_is_unavailable_with_the_reason() -> None:
    result = one(DependencySpec("gone", "tcp", f"127.0.0.1:{closed_port()}"))
    assert result.status == "unavailable"
    assert result.reason == "connection refused"
    assert result.to_dependency()["reason"] == "connection refused"


def test_tcp_takes_the_host_and_port_of_a_url(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    assert one(DependencySpec("db", "tcp", f"postgres://127.0.0.1:{port}/db")).status == (
        "available"
    )


# --- http ---------------------------------------------------------------------------------


def test_http_200_is_available_and_503_is_degraded(http_url: str) -> None:
    assert one(DependencySpec("api", "http", f"{http_url}/health")).status == "available"
    sick = one(DependencySpec("vault", "http", f"{http_url}/sick?x=1"))
    assert (sick.status, sick.reason) == ("degraded", "HTTP 503 Service Unavailable")


def test_http_to_a_closed_port_is_unavailable() -> None:
    result = one(DependencySpec("api", "http", f"http://127.0.0.1:{closed_port()}/"))
    assert (result.status, result.reason) == ("unavailable", "connection refused")


def test_http_that_never_answers_times_out_as_unavailable(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    result = one(DependencySpec("slow", "http", f"http://127.0.0.1:{port}/"), timeout=0.2)
    assert (result.status, result.reason) == ("unavailable", "no answer within 0.2s")


def test_http_to_something_that_is_not_http_is_unavailable(listener: socket.socket) -> None:
    port = listener.getsockname()[1]

    def garbage() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(1024)
            conn.sendall(b"SSH-2.0-OpenSSH\r\n")

    thread = threading.Thread(target=garbage, daemon=True)
    thread.start()
    result = one(DependencySpec("ssh", "http", f"http://127.0.0.1:{port}/"))
    thread.join(5)
    assert result.status == "unavailable"
    assert result.reason is not None
    assert "not an HTTP answer" in result.reason


# --- command ------------------------------------------------------------------------------


def test_command_exit_zero_is_available_and_a_failure_says_why() -> None:
    assert one(DependencySpec("ok", "command", command=(PY, "-c", "pass"))).status == "available"
    failing = DependencySpec(
        "ledger", "command", command=(PY, "-c", "print('starting'); print('db locked'); exit(3)")
    )
    result = one(failing)
    assert (result.status, result.reason) == ("unavailable", "exit status 3: db locked")
    degraded = DependencySpec(
        "ledger", "command", command=failing.command, degraded_exit_codes=(3,)
    )
    assert one(degraded).status == "degraded"


def test_a_missing_program_is_unavailable() -> None:
    result = one(DependencySpec("x", "command", command=("/nonexistent/prog",)))
    assert result.status == "unavailable"
    assert result.reason is not None
    assert "cannot run '/nonexistent/prog'" in result.reason


def test_a_command_that_sleeps_past_its_timeout_is_killed_with_its_children(
    tmp_path: Path,
) -> None:
    pids = tmp_path / "pids"
    # The shell starts a sleeping child: killing the shell alone would leave it running.
    script = f"sleep 300 & echo $! > {pids}; echo $$ >> {pids}; wait"
    spec = DependencySpec("hang", "command", command=("sh", "-c", script), timeout=0.3)
    result = probe_all([spec], bound=5)[0]
    assert result.status == "unavailable"
    assert result.reason == "no answer within 0.3s (the command was killed)"
    for pid in map(int, pids.read_text().split()):
        assert wait_gone(pid), f"process {pid} is still running"


# --- the probe phase ----------------------------------------------------------------------


def test_probes_run_concurrently_within_the_bound_and_a_hang_cannot_hold_it(
    tmp_path: Path, listener: socket.socket, http_url: str
) -> None:
    pid_file = tmp_path / "pid"
    specs = [
        # First, and its own timeout far beyond the bound: only the bound can stop it, and
        # the checks after it are answered only because they run alongside it.
        DependencySpec(
            "hang",
            "command",
            command=("sh", "-c", f"echo $$ > {pid_file}; exec sleep 300"),
            timeout=60,
        ),
        DependencySpec("cache", "tcp", f"127.0.0.1:{listener.getsockname()[1]}"),
        DependencySpec("api", "http", f"{http_url}/"),
        DependencySpec("vault", "http", f"{http_url}/sick"),
    ]
    results = probe_all(specs, bound=1.0)
    assert [r.name for r in results] == ["hang", "cache", "api", "vault"]
    assert [r.status for r in results] == ["unavailable", "available", "available", "degraded"]
    assert results[0].reason == "no answer within the probe phase's 1s bound"
    for _ in range(500):  # the command wrote its pid before it slept
        if pid_file.exists() and pid_file.read_text().strip():
            break
        time.sleep(0.01)
    assert wait_gone(int(pid_file.read_text())), "the hanging probe command was not killed"


def test_no_dependencies_means_no_probes() -> None:
    assert probe_all([], bound=1) == []


# --- probes in a commit -------------------------------------------------------------------


def write_config(store_dir: Path, text: str) -> None:
    (store_dir / "config.toml").write_text(text, encoding="utf-8")


def test_a_commit_records_each_dependency_and_no_probe_skips_them(
    store_dir: Path, listener: socket.socket, http_url: str
) -> None:
    port = listener.getsockname()[1]
    write_config(
        store_dir,
        f"""
[probes]
bound = 1.5

[[dependencies]]
name = "dragonfly"
type = "cache"
check = "tcp"
endpoint = "127.0.0.1:{port}"

[[dependencies]]
name = "vault"
check = "http"
endpoint = "{http_url}/sick"
timeout = 1
""",
    )
    with Store.open(store_dir) as store:
        store.commit({"dependencies": [{"name": "vault", "type": "service", "owner": "ops"}]})
        captured = store.capture(notes="probed")
        assert [(r.name, r.status) for r in captured.dependencies] == [
            ("dragonfly", "available"),
            ("vault", "degraded"),
        ]
        deps = store.load()["dependencies"]
        # An existing entry is updated in place (its other fields kept), a new one appended.
        assert [d["name"] for d in deps] == ["vault", "dragonfly"]
        assert deps[0]["owner"] == "ops"
        assert deps[0]["status"] == "degraded"
        assert deps[0]["reason"] == "HTTP 503 Service Unavailable"
        assert deps[1]["status"] == "available"
        assert "reason" not in deps[1]
        assert deps[1]["endpoint"] == f"127.0.0.1:{port}"
        assert deps[1]["type"] == "cache"
        checked = deps[1]["last_checked"]

        listener.close()  # the cache goes away
        store.capture()
        cache = store.load()["dependencies"][1]
        assert (cache["status"], cache["reason"]) == ("unavailable", "connection refused")
        assert cache["last_checked"] > checked

        before = store.load()["dependencies"]
        skipped = store.capture(variables={"x": 1}, probe=False)
        assert skipped.dependencies == ()
        assert store.load()["dependencies"] == before


def test_check_dependencies_reports_without_committing(store_dir: Path) -> None:
    write_config(
        store_dir,
        f'[[dependencies]]\nname = "gone"\ncheck = "tcp"\nendpoint = "127.0.0.1:{closed_port()}"\n',
    )
    with Store.open(store_dir) as store:
        [result] = store.check_dependencies()
        assert (result.name, result.status) == ("gone", "unavailable")
        assert store.sessions() == {}


# --- config -------------------------------------------------------------------------------


def test_the_config_declares_dependencies_with_defaults() -> None:
    config = parse_config(
        """
[probes]
bound = 0.5
timeout = 0.25

[[dependencies]]
name = "vault"
check = "http"
endpoint = "https://127.0.0.1:8200/v1/sys/health"
verify_tls = false

[[dependencies]]
name = "ledger"
type = "database"
check = "command"
command = ["sqlite3", "ledger.db", "select 1"]
degraded_exit_codes = [2]
timeout = 0.1
"""
    )
    assert config.probe_bound == 0.5
    vault, ledger = config.dependencies
    assert (vault.type, vault.timeout, vault.verify_tls) == ("service", 0.25, False)
    assert (ledger.endpoint, ledger.command, ledger.timeout) == (
        None, ("sqlite3", "ledger.db", "select 1"), 0.1,
    )  # fmt: skip
    assert ledger.degraded_exit_codes == (2,)
    assert parse_config("").probe_bound == 2.0  # the default bound


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        (
            '[[dependencies]]\nname = "a"\ncheck = "tcp"\nendpoint = "h:1"\n\n'
            '[[dependencies]]\nname = "b"\ncheck = "ftp"\nendpoint = "h:2"\n',
            ["config.toml:8:", "dependencies[1].check", "'ftp' is not a known check"],
        ),
        (
            '[[dependencies]]\nname = "a"\ncheck = "http"\n',
            ["config.toml:1:", "dependencies[0].endpoint is missing"],
        ),
        (
            '[[dependencies]]\nname = "a"\ncheck = "tcp"\nendpoint = "localhost"\n',
            ["config.toml:4:", "dependencies[0].endpoint", "host:port"],
        ),
        (
            '[[dependencies]]\nname = "a"\ncheck = "http"\nendpoint = "ftp://x/"\n',
            ["config.toml:4:", "http:// or https:// URL"],
        ),
        (
            '[[dependencies]]\ncheck = "tcp"\nendpoint = "h:1"\n',
            ["dependencies[0].name is missing"],
        ),
        (
            '[[dependencies]]\nname = "a"\ncheck = "command"\n',
            ["dependencies[0].command is missing"],
        ),
        (
            '[[dependencies]]\nname = "a"\ncheck = "tcp"\nendpoint = "h:1"\ncolour = 1\n',
            ["config.toml:5:", "dependencies[0].colour is not a known setting"],
        ),
        (
            '[[dependencies]]\nname = "a"\ncheck = "tcp"\nendpoint = "h:1"\n'
            '[[dependencies]]\nname = "a"\ncheck = "tcp"\nendpoint = "h:2"\n',
            ["config.toml:6:", "dependencies[1].name", "'a' is declared twice"],
        ),
        ("[probes]\nbound = 0\n", ["config.toml:2:", "probes.bound must be more than 0"]),
        ('[probes]\nbound = "2s"\n', ["probes.bound must be a number, not a string"]),
        ("dependencies = 3\n", ["dependencies must be an array of tables"]),
        ('[[dependencies]\nname = "a"\n', ["config.toml:1:", "not valid TOML"]),
        ('[collectors]\non_error = "ignore"\n', ["config.toml:2:", "collectors.on_error"]),
    ],
)
def test_a_malformed_config_names_the_line_and_key(text: str, needles: list[str]) -> None:
    with pytest.raises(InvalidConfig) as caught:
        parse_config(text)
    message = str(caught.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message


def test_probes_never_raise_on_an_unexpected_failure() -> None:
    # A port beyond the valid range fails inside the socket layer: reported, not raised.
    result = one(DependencySpec("odd", "tcp", "127.0.0.1:0"))
    assert result.status == "unavailable"
    assert result.reason


def test_http_probes_go_straight_to_the_endpoint_never_through_a_proxy(
    monkeypatch: pytest.MonkeyPatch, http_url: str
) -> None:
    # A proxy that answers 200 to everything would make a dead endpoint look available.
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, http_url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    result = one(DependencySpec("gone", "http", f"http://127.0.0.1:{closed_port()}/"))
    assert (result.status, result.reason) == ("unavailable", "connection refused")
