"""``ckpt serve``: a resident process that runs a store's commits with everything loaded.

An agent that checkpoints from its hooks runs ``ckpt commit`` again and again; each
run spends most of its time starting Python and importing (see
:mod:`ckpt_cli.serve_client`). ``ckpt serve`` listens on ``serve.sock`` in the store
directory (mode 0600, and only processes of the same user are answered) and runs each
commit it is handed exactly as the client would have: the same argument list through
:func:`ckpt_cli.commit_cmd.parse` and :func:`~ckpt_cli.commit_cmd.run`, in the
client's working directory and environment, on its standard input, with what the
command writes and its exit code sent back. Requests run one at a time, on the store
kept open between them (opened again when ``config.toml`` changes): a long-lived Store,
as an agent's own process holds one, whose caches are content-addressed and whose refs
and settings are read afresh, so other processes (gc, other writers) are seen as a
fresh process would see them.

It declines a request, and the client runs the command itself, when it would not run
the same thing: a client of another installation, code that changed on disk since the
server started (it then exits), a store that resolves elsewhere, an argument list only
typer handles. It exits after ``--idle`` seconds without a request (``[serve] idle`` in
``config.toml``, else 30 minutes), on ``ckpt serve --stop``, on SIGTERM or SIGINT,
removing its socket. It holds ``serve.lock`` while it runs, so two started at once
(two hooks' commits with ``[serve] auto``) leave one running.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import signal
import socket
import struct
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ckpt_cli import serve_client as wire
from ckpt_cli.base import JsonOpt, StoreOpt, app, handle_errors, open_store, print_json
from ckpt_cli.inputs import BadArgument
from ckptstore.errors import CkptError

if TYPE_CHECKING:
    from ckptstore.store import Store

_PACKAGE = os.path.dirname(os.path.abspath(wire.__file__))
_READY_TIMEOUT = 15.0
DEFAULT_IDLE = 1800.0
_WATCH = 3.0  # seconds between looks at whether the socket is still this server's


class ServeFailed(CkptError):
    """A server could not be started or reached (exit code 1)."""

    def __init__(self, store: Path, problem: str) -> None:
        self.store = store
        self.problem = problem
        super().__init__(f"{store}: {problem}")


def _ask(store: Path, fields: list[bytes], timeout: float = 2.0) -> list[bytes] | None:
    """Send one message to the store's server; its reply, or None if none answered."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(timeout)
    try:
        wire.in_directory(str(store), conn.connect)
        conn.sendall(wire.frame([wire.PROTOCOL, *fields]))
        return wire.read_frame(conn)
    except (OSError, EOFError):
        return None
    finally:
        conn.close()


def _source_files() -> list[str]:
    """The loaded source files of ckptstore and the CLI (what a changed install changes)."""
    import ckptstore

    roots = (os.path.dirname(ckptstore.__file__), _PACKAGE)
    found = (getattr(module, "__file__", None) or "" for module in list(sys.modules.values()))
    return sorted({where for where in found if where.startswith(roots)})


def _code_stamp(files: list[str]) -> int:
    """The newest modification time of ``files`` (0 for a file gone)."""
    newest = 0
    for where in files:
        with contextlib.suppress(OSError):
            newest = max(newest, os.stat(where).st_mtime_ns)
    return newest


def _set_environment(env: dict[str, str]) -> None:
    """Make ``os.environ`` equal ``env``, touching only what differs (each is a putenv)."""
    for key in os.environ.keys() - env.keys():
        del os.environ[key]
    for key, value in env.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


@contextlib.contextmanager
def _as_client(cwd: str, env: dict[str, str], stdin: bytes | None) -> Iterator[tuple[Any, Any]]:
    """Run in the client's directory, environment and standard input; capture output."""
    here, saved_env = os.getcwd(), dict(os.environ)
    saved_io = sys.stdin, sys.stdout, sys.stderr
    out, err = io.BytesIO(), io.BytesIO()
    os.chdir(cwd)
    _set_environment(env)
    sys.stdin = io.TextIOWrapper(io.BytesIO(stdin or b""), encoding="utf-8")
    sys.stdout = io.TextIOWrapper(out, encoding="utf-8", errors="surrogateescape")
    sys.stderr = io.TextIOWrapper(err, encoding="utf-8", errors="backslashreplace")
    try:
        yield out, err
    finally:
        for wrapper in (sys.stdin, sys.stdout, sys.stderr):
            wrapper.flush()
            wrapper.detach()  # closing a wrapper would close the buffer holding the output
        sys.stdin, sys.stdout, sys.stderr = saved_io
        _set_environment(saved_env)
        os.chdir(here)


def _run_commit(
    argv: list[str], cwd: str, env: dict[str, str], stdin: bytes | None, server: _Server
) -> list[bytes]:
    from ckpt_cli.commit_cmd import parse, run
    from ckpt_cli.inputs import exit_code
    from ckptstore.location import find_store

    values = parse(argv, environ=env)
    if values is None:
        return [b"declined", b"arguments for typer"]
    if not os.path.isdir(cwd):
        return [b"declined", b"the working directory is gone"]
    with _as_client(cwd, env, stdin) as (out, err):
        try:
            where = find_store(values["store"], env=env)
        except CkptError:
            where = None  # the client reports it, as it would without a server
        if where is None or os.path.realpath(where) != os.path.realpath(server.store):
            return [b"declined", b"another store"]
        code = 0
        try:
            run(**values, opened=server.opened())
        except CkptError as error:
            print(f"error: {error}", file=sys.stderr)
            code = exit_code(error)
        except SystemExit as done:  # as the interpreter ends a process with it
            if done.code is not None and not isinstance(done.code, int):
                print(done.code, file=sys.stderr)
            code = done.code if isinstance(done.code, int) else 0 if done.code is None else 1
        except Exception:  # what the client would have printed, not the server's end
            traceback.print_exc()
            code = 1
    return [b"ran", str(code).encode(), out.getvalue(), err.getvalue()]


def _same_user(conn: socket.socket) -> bool:
    """Whether the peer runs as this user (where the platform tells; the socket is 0600)."""
    peercred = getattr(socket, "SO_PEERCRED", None)
    if peercred is None:
        return True
    _, uid, _ = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, peercred, 12))
    return bool(uid == os.getuid())


class _Server:
    def __init__(self, store: Path, path: Path, idle: float) -> None:
        self.store, self.path, self.idle = store, path, idle
        self.files = _source_files()
        self.stamp = _code_stamp(self.files)
        self.running = True
        self.served = self.declined = 0
        self.started = time.monotonic()
        self._opened: Store | None = None
        self._config_stamp: tuple[int, int] | None = None
        self.inode = 0

    def opened(self) -> Store:
        """The store, kept open between requests; opened again when its config changes.

        Open, it keeps what a long-lived Store keeps (objects read and written, in
        bounded caches; content-addressed, so never stale) and re-reads refs and
        settings as every Store does; only ``config.toml`` is read once per opening.
        """
        from ckptstore.store import Store

        try:
            info = os.stat(self.store / "config.toml")
            stamp = (info.st_mtime_ns, info.st_size)
        except FileNotFoundError:
            stamp = None
        if self._opened is None or stamp != self._config_stamp:
            self.close()
            self._opened = Store.open(self.store)
            self._config_stamp = stamp
        return self._opened

    def close(self) -> None:
        if self._opened is not None:
            self._opened.close()
            self._opened = None

    def status(self) -> list[bytes]:
        up = round(time.monotonic() - self.started)
        numbers = (os.getpid(), self.served, self.declined, up, round(self.idle))
        return [b"pong", *(str(n).encode() for n in numbers)]

    def handle(self, fields: list[bytes]) -> list[bytes]:
        if not fields or fields[0] != wire.PROTOCOL:
            return [b"declined", b"another protocol"]
        what = fields[1] if len(fields) > 1 else b""
        if what == b"ping":
            return self.status()
        if what == b"stop":
            self.running = False
            return [b"stopping", str(os.getpid()).encode()]
        if what != b"commit":
            return [b"declined", b"unknown request"]
        try:
            package, cwd, argv, env, stdin = wire.read_commit_request(fields)
        except (ValueError, IndexError):
            return [b"declined", b"a malformed request"]
        if package != _PACKAGE:
            return [b"declined", b"another installation"]
        if _code_stamp(self.files) != self.stamp:
            self.running = False  # serving old code: stop, the next start loads the new
            return [b"declined", b"the code changed"]
        return _run_commit(argv, cwd, env, stdin, self)

    def reachable(self) -> bool:
        """Whether clients can still find this server: its socket file is the one bound.

        A store deleted (a test's temporary one) or its socket replaced leaves the
        server with no client to wait for; it stops rather than idle out.
        """
        try:
            return os.stat(self.path).st_ino == self.inode
        except OSError:
            return False

    def serve(self, listener: socket.socket) -> None:
        last = time.monotonic()
        while self.running:
            left = self.idle - (time.monotonic() - last)
            if left <= 0:
                _log(f"idle for {self.idle:g} s: stopping")
                return
            listener.settimeout(min(left, _WATCH))
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                if not self.reachable():
                    _log("its socket was removed or replaced: stopping")
                    return
                continue
            last = time.monotonic()
            with conn:
                conn.settimeout(30.0)  # a client sends its request at once
                try:
                    if not _same_user(conn):
                        continue
                    fields = wire.read_frame(conn)
                    conn.settimeout(None)
                    reply = self.handle(fields)
                    conn.sendall(wire.frame(reply))
                except (OSError, EOFError, ValueError, IndexError) as error:
                    _log(f"dropped a request: {error}")
                    continue
                if reply[0] == b"ran":
                    self.served += 1
                elif reply[0] == b"declined":
                    # Worth a line: the client ran it itself, at a fresh process's cost.
                    self.declined += 1
                    _log(f"declined a request: {reply[1].decode()}")


def _log(line: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}", file=sys.stderr, flush=True)


def _warm_up() -> None:
    """Import what a commit uses, so the first client does not wait for it."""
    for name in (
        "ckpt_cli.commit_cmd", "ckpt_cli.inputs", "ckptstore.store", "ckptstore.collectors",
        "ckptstore.config", "ckptstore.merge", "ckptstore.secrets",
    ):  # fmt: skip
        importlib.import_module(name)


def serve_forever(store: Path, *, idle: float) -> None:
    """Serve the store's commits until idle, stopped or signalled (``ckpt serve``).

    Raises:
        ServeFailed: a server already runs, or the socket cannot be made.
    """
    path = store / wire.SOCKET_NAME
    if path.exists() or path.is_symlink():
        pong = _ask(store, [b"ping"])
        if pong is not None and pong[0] == b"pong":
            raise ServeFailed(store, f"a server already runs for it (pid {pong[1].decode()})")
    lock = _lock(store)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # left by a server that died (the lock says none runs)
    os.chdir(store)  # a daemon's directory must outlive whatever it was started from
    _warm_up()
    server = _Server(store, path, idle)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o077)
    try:
        wire.in_directory(str(store), listener.bind)
    except OSError as err:  # another server bound it since the check above
        listener.close()
        raise ServeFailed(store, f"cannot listen on {path.name}: {err.strerror or err}") from None
    finally:
        os.umask(old_umask)
    server.inode = os.stat(path).st_ino
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        listener.listen(64)
        _log(f"serving {store} (pid {os.getpid()})")
        server.serve(listener)
    except KeyboardInterrupt:
        pass
    finally:
        listener.close()
        if server.reachable():  # not another server's, should one have replaced it
            path.unlink()
        server.close()
        _log(f"stopped after {server.served} commits served, {server.declined} declined")
        os.close(lock)


def _lock(store: Path) -> int:
    """Take ``serve.lock`` for this process's life: the descriptor, which keeps it."""
    try:
        fd = wire.take_lock(str(store))
    except OSError as err:
        raise ServeFailed(store, f"cannot open {wire.LOCK_NAME}: {err.strerror or err}") from None
    if fd is None:
        raise ServeFailed(store, "a server is starting for it")
    return fd


def _detach(store: Path, idle: float) -> int:
    """Start a server in the background; its pid once it answers."""
    try:
        child = wire.start_server(str(store), idle)
    except (OSError, NotImplementedError) as err:
        raise ServeFailed(store, f"cannot start a server: {err}") from None
    deadline = time.monotonic() + _READY_TIMEOUT
    while time.monotonic() < deadline:
        pong = _ask(store, [b"ping"], timeout=1.0)
        if pong is not None and pong[0] == b"pong":
            return int(pong[1])
        if os.waitpid(child, os.WNOHANG) != (0, 0):
            break  # it exited: its reason is in the log
        time.sleep(0.02)
    raise ServeFailed(store, f"the server did not start; see {store / wire.LOG_NAME}")


def _status(store: Path) -> dict[str, int] | None:
    """What the store's server reports of itself, or None if none answers."""
    pong = _ask(store, [b"ping"])
    if pong is None or pong[0] != b"pong":
        return None
    names = ("pid", "served", "declined", "up_seconds", "idle_seconds")
    try:  # a server of an earlier version sends fewer figures (no idle limit)
        return dict(zip(names, map(int, pong[1:]), strict=False))
    except ValueError:
        return None


@app.command()
@handle_errors
def serve(
    ctx: typer.Context,
    store: StoreOpt = None,
    idle: Annotated[
        float | None,
        typer.Option(
            "--idle",
            help="Stop after this many seconds without a request [default: [serve] idle, else"
            " 1800].",
        ),
    ] = None,
    detach: Annotated[
        bool,
        typer.Option("--detach", help="Run in the background (log: serve.log); once is enough."),
    ] = False,
    stop: Annotated[bool, typer.Option("--stop", help="Stop the store's server.")] = False,
    status: Annotated[
        bool, typer.Option("--status", help="Report the store's server (exit 1 if none runs).")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Keep a process running that makes this store's commits fast (`ckpt commit` uses it)."""
    if idle is not None and idle <= 0:
        raise BadArgument("--idle", f"must be more than 0 seconds, not {idle:g}")
    if not hasattr(socket, "AF_UNIX"):
        raise BadArgument("serve", "needs Unix domain sockets, which this platform lacks")
    given = [
        name for name, on in (("--detach", detach), ("--stop", stop), ("--status", status)) if on
    ]
    if len(given) > 1:
        raise BadArgument(" and ".join(given), "give only one of them")
    with open_store(ctx, store) as opened:
        assert opened.path is not None
        where = Path(os.path.abspath(opened.path))
        if idle is None and not stop and not status:
            idle = opened.config.serve_idle or DEFAULT_IDLE
    if stop:
        reply = _ask(where, [b"stop"])
        if reply is None or reply[0] != b"stopping":
            raise ServeFailed(where, "no server runs for it")
        typer.echo(f"stopped the server of {where} (pid {reply[1].decode()})")
        return
    if status or detach:
        found = _status(where)
        if found is None and detach:
            assert idle is not None
            found = {
                "pid": _detach(where, idle), "served": 0, "declined": 0, "up_seconds": 0,
                "idle_seconds": round(idle),
            }  # fmt: skip
        if found is None:
            raise ServeFailed(where, "no server runs for it")
        if as_json:
            print_json({"store": str(where), **found})
        else:
            typer.echo(
                f"serving {where} (pid {found['pid']}, up {found['up_seconds']} s,"
                f" {found['served']} commits served, {found['declined']} declined"
                + (
                    f", stops after {found['idle_seconds']} s idle)"
                    if "idle_seconds" in found
                    else ")"
                )
            )
        return
    assert idle is not None
    serve_forever(where, idle=idle)
