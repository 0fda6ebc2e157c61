"""Dependency probes: is each service the agent depends on reachable right now?

A dependency is declared in the store's ``config.toml`` (see :mod:`ckptstore.config`)
with one of three checks:

``tcp``
    open a TCP connection to ``host:port`` (or the host and port of a URL).
``http``
    ``GET`` the URL: a 2xx or 3xx answer is *available*, any other answer (a 503 from
    a sealed vault, a 429 from a standby) is *degraded*, with the status as the reason.
``command``
    run a program (no shell): exit status 0 is *available*; a status listed in
    ``degraded_exit_codes`` is *degraded*; anything else is *unavailable*, with the
    last line of its output as the reason.

No answer, a refused connection, an unknown host or a program that cannot start is
*unavailable* with the reason; a probe never raises. :func:`probe_all` runs every check
at once, each in a daemon thread, and returns when all have answered or when the bound
on the whole phase (default 2 s) has passed, whichever is first: a check that has not
answered by then is reported *unavailable* ("no answer within the probe phase's 2 s
bound"), and a command still running is killed with its process group, so a hanging
probe never holds a commit up.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final, Literal, NamedTuple

from ckptstore.commits import now_iso

if TYPE_CHECKING:
    import subprocess

__all__ = [
    "CHECKS",
    "DEFAULT_BOUND",
    "DependencySpec",
    "ProbeResult",
    "endpoint_problem",
    "probe_all",
    "probe_one",
]

CHECKS: Final = ("tcp", "http", "command")
DEFAULT_BOUND: Final = 2.0
"""Seconds the whole probe phase may take unless the config says otherwise."""

Status = Literal["available", "unavailable", "degraded"]
_REASON_CHARS: Final = 200
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


class DependencySpec(NamedTuple):
    """One dependency as the config declares it.

    ``timeout`` is the check's own limit in seconds (``None``: the phase's bound).
    ``endpoint`` is what the checkpoint records; for ``tcp`` and ``http`` it is also
    what is checked. ``command`` is the program and its arguments for ``command``.
    """

    name: str
    check: str
    endpoint: str | None = None
    type: str = "service"
    timeout: float | None = None
    command: tuple[str, ...] = ()
    verify_tls: bool = True
    degraded_exit_codes: tuple[int, ...] = ()


class ProbeResult(NamedTuple):
    """What one check found: the status, why (when not available) and when."""

    name: str
    type: str
    endpoint: str | None
    check: str
    status: Status
    reason: str | None
    last_checked: str

    def to_dependency(self) -> dict[str, Any]:
        """The checkpoint's dependency entry (the seed's fields, then ``reason``)."""
        entry: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "status": self.status,
            "endpoint": self.endpoint,
            "last_checked": self.last_checked,
        }
        if self.reason is not None:
            entry["reason"] = self.reason
        return entry

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``ckpt deps --json``)."""
        return {**self.to_dependency(), "check": self.check, "reason": self.reason}


def endpoint_problem(check: str, endpoint: str) -> str | None:
    """Why ``endpoint`` cannot be checked with ``check``, or ``None`` if it can."""
    from urllib.parse import urlsplit  # here: stores without dependencies never need it

    if check == "tcp":
        try:
            _host_port(endpoint)
        except ValueError as err:
            return str(err)
        return None
    if check == "http":
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return "must be an http:// or https:// URL"
        try:
            parts.port  # noqa: B018 - raises on a malformed port
        except ValueError:
            return "has a malformed port"
    return None


def _host_port(endpoint: str) -> tuple[str, int]:
    """The host and port of ``host:port``, ``[v6]:port`` or a URL."""
    from urllib.parse import urlsplit

    if "://" in endpoint:
        parts = urlsplit(endpoint)
        try:
            port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
        except ValueError:
            raise ValueError("has a malformed port") from None
        if not parts.hostname or port is None:
            raise ValueError("must be host:port, or a URL with a host and a port")
        return parts.hostname, port
    host, sep, port_text = endpoint.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError("must be host:port (a port from 1 to 65535), or a URL")
    return host, int(port_text)


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _REASON_CHARS else text[: _REASON_CHARS - 1] + "…"


def _os_reason(err: OSError, timeout: float) -> str:
    import socket

    if isinstance(err, TimeoutError | socket.timeout):
        return f"no answer within {timeout:g}s"
    if isinstance(err, ConnectionRefusedError):
        return "connection refused"
    if isinstance(err, socket.gaierror):
        return f"cannot resolve the host ({err.strerror or err})"
    return _short(err.strerror or str(err) or type(err).__name__)


class _Running:
    """The commands still running, so the phase can kill them when its bound passes."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.procs: set[subprocess.Popen[bytes]] = set()

    def add(self, proc: subprocess.Popen[bytes]) -> None:
        with self.lock:
            self.procs.add(proc)

    def discard(self, proc: subprocess.Popen[bytes]) -> None:
        with self.lock:
            self.procs.discard(proc)

    def kill_all(self) -> None:
        with self.lock:
            procs = list(self.procs)
        for proc in procs:
            _kill(proc)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    # The command ran in its own process group: kill what it started, too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _check_tcp(spec: DependencySpec, timeout: float) -> tuple[Status, str | None]:
    import socket

    assert spec.endpoint is not None
    host, port = _host_port(spec.endpoint)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return "available", None
    except OSError as err:
        return "unavailable", _os_reason(err, timeout)


def _check_http(spec: DependencySpec, timeout: float) -> tuple[Status, str | None]:
    import http.client
    from urllib.parse import urlsplit

    assert spec.endpoint is not None
    parts = urlsplit(spec.endpoint)
    host = parts.hostname or ""
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        import ssl

        context = ssl.create_default_context()
        if not spec.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection(host, parts.port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(host, parts.port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"User-Agent": "ckptstore-probe"})
        response = conn.getresponse()
        if 200 <= response.status < 400:
            return "available", None
        return "degraded", f"HTTP {response.status} {response.reason}".strip()
    except http.client.HTTPException as err:
        return "unavailable", _short(f"not an HTTP answer ({type(err).__name__}: {err})")
    except OSError as err:
        return "unavailable", _os_reason(err, timeout)
    finally:
        conn.close()


def _check_command(
    spec: DependencySpec, timeout: float, running: _Running
) -> tuple[Status, str | None]:
    import subprocess  # here: only stores that declare command checks pay for it

    try:
        proc = subprocess.Popen(
            spec.command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as err:
        return "unavailable", _short(f"cannot run {spec.command[0]!r}: {err.strerror or err}")
    running.add(proc)
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(proc)
        proc.wait()
        return "unavailable", f"no answer within {timeout:g}s (the command was killed)"
    finally:
        running.discard(proc)
        if proc.stdout is not None:
            proc.stdout.close()
    if proc.returncode == 0:
        return "available", None
    lines = [line for line in output.decode("utf-8", "replace").splitlines() if line.strip()]
    said = f": {lines[-1]}" if lines else ""
    status: Status = "degraded" if proc.returncode in spec.degraded_exit_codes else "unavailable"
    if proc.returncode < 0:
        return status, _short(f"killed by signal {-proc.returncode}{said}")
    return status, _short(f"exit status {proc.returncode}{said}")


def probe_one(spec: DependencySpec, timeout: float, running: _Running | None = None) -> ProbeResult:
    """Run one check now, for at most about ``timeout`` seconds; never raises."""
    try:
        if spec.check == "tcp":
            status, reason = _check_tcp(spec, timeout)
        elif spec.check == "http":
            status, reason = _check_http(spec, timeout)
        elif spec.check == "command":
            status, reason = _check_command(spec, timeout, running or _Running())
        else:
            status, reason = "unavailable", f"unknown check {spec.check!r}"
    except Exception as err:  # a probe reports, it never breaks the commit
        status, reason = "unavailable", _short(f"{type(err).__name__}: {err}")
    return ProbeResult(spec.name, spec.type, spec.endpoint, spec.check, status, reason, now_iso())


def probe_all(
    specs: Sequence[DependencySpec], *, bound: float = DEFAULT_BOUND
) -> list[ProbeResult]:
    """Check every dependency at once; return within ``bound`` seconds, in ``specs`` order.

    Each check gets its own ``timeout``, capped by the bound. Checks still running when
    the bound passes are reported unavailable and their commands are killed.
    """
    if not specs:
        return []
    deadline = time.monotonic() + bound
    results: dict[int, ProbeResult] = {}
    done = threading.Condition()
    running = _Running()

    def run(index: int, spec: DependencySpec) -> None:
        timeout = min(spec.timeout if spec.timeout is not None else bound, bound)
        result = probe_one(spec, max(timeout, 0.001), running)
        with done:
            results[index] = result
            done.notify_all()

    # Daemon threads, not an executor: interpreter exit waits for an executor's
    # threads, and a DNS lookup stuck in getaddrinfo ignores every timeout.
    for index, spec in enumerate(specs):
        threading.Thread(
            target=run, args=(index, spec), daemon=True, name=f"probe-{spec.name}"
        ).start()
    with done:
        while len(results) < len(specs):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            done.wait(left)
        finished = dict(results)
    running.kill_all()
    stamp, late = now_iso(), f"no answer within the probe phase's {bound:g}s bound"
    return [
        finished.get(index)
        or ProbeResult(spec.name, spec.type, spec.endpoint, spec.check, "unavailable", late, stamp)
        for index, spec in enumerate(specs)
    ]
