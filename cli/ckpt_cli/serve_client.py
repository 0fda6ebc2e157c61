"""The client half of ``ckpt serve``: hand a commit to the store's resident server.

Of a fresh ``ckpt commit``'s ~70 ms, about 50 go to starting Python and importing
ckptstore, sqlite3, zstandard and the rest; the commit itself takes ~15. A server
started once per store (``ckpt serve``, :mod:`ckpt_cli.serve`) has all that loaded, so
:func:`ckpt_cli.main` first offers ``commit`` and ``now`` to it through a Unix socket in
the store directory. This module imports only ``io``, ``os``, ``sys`` and ``_socket``
(and ``fcntl`` for the lock, when a server is started).

The server runs the command exactly as this process would (same argument list,
working directory, environment and standard input) and sends back the exit code and
what it wrote. It declines (and this process runs the command itself) when it would
not run the same code on the same store: another installation, code changed since it
started, a store that is not its own, arguments only typer handles. With no socket,
a dead server or ``CKPT_NO_SERVER`` set, nothing is asked.

Wire format, both ways: a count, then that many fields, each a 4-byte big-endian
length and its bytes.
"""

from __future__ import annotations

# The C module under ``socket``: ``socket`` itself imports selectors, enum and
# collections, ~4 ms of a served commit's ~25.
import _socket
import io
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

PROTOCOL = b"ckpt-serve/1"
SOCKET_NAME = "serve.sock"
LOCK_NAME = "serve.lock"
"""Held (``flock``) by the running server for its whole life: one server per store."""
LOG_NAME = "serve.log"
ENV_NO_SERVER = "CKPT_NO_SERVER"
_STORE_DIR = ".ckpt"
_STORE_FILE = "store.db"
_FIELD_MAX = 1 << 30
_SUN_PATH_MAX = 100  # bytes of a socket path every platform takes (Linux: 107, macOS: 103)


class Unanswered(Exception):
    """The server took the request but closed the connection before answering."""


def frame(fields: Sequence[bytes]) -> bytes:
    """Fields as they travel: a count, then each field's length and bytes."""
    out = [len(fields).to_bytes(4, "big")]
    for field in fields:
        out += (len(field).to_bytes(4, "big"), field)
    return b"".join(out)


def _exactly(conn: _socket.socket, size: int) -> bytes:
    chunks = []
    while size:
        chunk = conn.recv(min(size, 1 << 20))
        if not chunk:
            raise EOFError("the connection closed mid-message")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def read_frame(conn: _socket.socket) -> list[bytes]:
    """The fields of one message (EOFError if the connection closes first)."""
    count = int.from_bytes(_exactly(conn, 4), "big")
    fields = []
    for _ in range(count):
        size = int.from_bytes(_exactly(conn, 4), "big")
        if size > _FIELD_MAX:
            raise EOFError("a field larger than any message sent here")
        fields.append(_exactly(conn, size))
    return fields


def in_directory(directory: str, call: Callable[[str], None]) -> None:
    """``call`` with the path of the store's socket, however deep the store lies.

    A socket's address holds at most ~100 bytes of path; a store deeper than that (a
    worktree far down a home directory) is reached by a path relative to the store,
    from inside it, and the working directory is put back.
    """
    path = os.path.join(directory, SOCKET_NAME)
    if len(os.fsencode(path)) <= _SUN_PATH_MAX:
        call(path)
        return
    here = os.getcwd()
    os.chdir(directory)
    try:
        call(SOCKET_NAME)
    finally:
        os.chdir(here)


def _is_store(directory: str) -> bool:
    return os.path.isfile(os.path.join(directory, _STORE_FILE))


def guess_store(argv: Sequence[str], environ: dict[str, str], cwd: str) -> str | None:
    """The store directory a commit with ``argv`` most likely uses, or None.

    Only a guess, to find the socket: the server resolves the store as the command
    would and declines if it is not its own. ``--store`` (the last one), then
    ``CKPT_STORE``, then the nearest ``.ckpt`` at or above ``cwd``.
    """
    given = None
    for at, arg in enumerate(argv):
        if arg == "--store" and at + 1 < len(argv):
            given = argv[at + 1]
        elif arg.startswith("--store="):
            given = arg.partition("=")[2]
    given = given or environ.get("CKPT_STORE") or None
    if given is not None:
        path = os.path.join(cwd, given)
        for candidate in (path, os.path.join(path, _STORE_DIR)):
            if _is_store(candidate):
                return candidate
        return None
    directory = cwd
    while True:
        candidate = os.path.join(directory, _STORE_DIR)
        if _is_store(candidate):
            return candidate
        parent = os.path.dirname(directory)
        if parent == directory:
            return None
        directory = parent


def commit_request(
    package: str, cwd: str, argv: Sequence[str], env: Mapping[str, str], stdin: bytes | None
) -> list[bytes]:
    """A commit as it travels: who asks (the CLI's package directory), where, what.

    ``stdin`` is None unless the command reads its state from standard input.
    """
    pairs = [os.fsencode(k) + b"=" + os.fsencode(v) for k, v in env.items()]
    return [
        PROTOCOL,
        b"commit",
        os.fsencode(package),
        os.fsencode(cwd),
        str(len(argv)).encode(),
        *map(os.fsencode, argv),
        str(len(pairs)).encode(),
        *pairs,
        b"0" if stdin is None else b"1",
        stdin or b"",
    ]


def read_commit_request(
    fields: Sequence[bytes],
) -> tuple[str, str, list[str], dict[str, str], bytes | None]:
    """``(package, cwd, argv, env, stdin)`` of :func:`commit_request`'s fields.

    Raises:
        ValueError, IndexError: the fields are not a commit request.
    """
    package, cwd = os.fsdecode(fields[2]), os.fsdecode(fields[3])
    at = 5 + int(fields[4])
    argv = [os.fsdecode(f) for f in fields[5:at]]
    count = int(fields[at])
    env = dict(os.fsdecode(f).partition("=")[::2] for f in fields[at + 1 : at + 1 + count])
    at += 1 + count
    return package, cwd, argv, env, fields[at + 1] if fields[at] == b"1" else None


def _ask(store: str, request: list[bytes]) -> list[bytes] | None:
    """The server's reply, or None if no server took the request (a stale socket)."""
    conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        try:
            conn.settimeout(2.0)
            in_directory(store, conn.connect)
            conn.settimeout(None)  # a commit takes as long as it takes
            conn.sendall(frame(request))
        except OSError:
            return None
        try:
            return read_frame(conn)
        except (OSError, EOFError) as err:
            raise Unanswered(str(err)) from None
    finally:
        conn.close()


def forward(argv: Sequence[str]) -> tuple[int | None, bool]:
    """Run a commit through the store's server.

    Returns its exit code (None: run it here) and whether no server answered, so this
    process may start one (``[serve] auto``); False as well with ``CKPT_NO_SERVER``.

    Raises:
        Unanswered: the server took the command and closed before answering, so the
            commit may or may not have landed (running it here could make it twice).
    """
    if os.environ.get(ENV_NO_SERVER):
        return None, False
    try:
        cwd = os.getcwd()
    except OSError:
        return None, False
    store = guess_store(argv, dict(os.environ), cwd)
    if store is None or not os.path.exists(os.path.join(store, SOCKET_NAME)):
        return None, True
    reads_stdin = any(
        arg == "--state=-" or (arg == "-" and at and argv[at - 1] == "--state")
        for at, arg in enumerate(argv)
    )
    stdin = sys.stdin.buffer.read() if reads_stdin else None
    package = os.path.dirname(os.path.abspath(__file__))
    reply = _ask(store, commit_request(package, cwd, argv, os.environ, stdin))
    if reply is None or reply[0] != b"ran":
        # No server there, or it declined (another installation, changed code, not its
        # store): run the command here, on the standard input already read.
        if stdin is not None:
            sys.stdin = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8")
        return None, reply is None
    code, out, err = int(reply[1]), reply[2], reply[3]
    sys.stdout.flush()
    sys.stdout.buffer.write(out)
    sys.stdout.flush()
    sys.stderr.flush()
    sys.stderr.buffer.write(err)
    sys.stderr.flush()
    return code, False


def take_lock(store: str) -> int | None:
    """Take the store's ``serve.lock``: the descriptor that holds it, or None if taken.

    Closing the descriptor (or exiting) drops it.

    Raises:
        OSError: the lock file cannot be opened.
    """
    import fcntl

    fd = os.open(os.path.join(store, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def server_starting(store: str) -> bool:
    """Whether a server holds the store's lock: it runs, or is starting up."""
    try:
        fd = take_lock(store)
    except OSError:
        return False
    if fd is None:
        return True
    os.close(fd)
    return False


def start_server(store: str, idle: float | None = None) -> int:
    """Start ``ckpt serve`` for ``store`` in the background; its pid, without waiting.

    The child gets a session of its own and only /dev/null and ``serve.log`` as its
    standard streams: a hook that reads this process's output must not wait for the
    server to exit. Two commits may both start one; the second server finds the lock
    taken and exits (its line lands in ``serve.log``). ``idle``: its ``--idle`` (None:
    the store's ``[serve] idle``, else the default).

    Raises:
        OSError: the process could not be started.
        NotImplementedError: the platform cannot give it a session of its own.
    """
    if not hasattr(os, "posix_spawn"):
        raise OSError("this platform cannot start it (no posix_spawn)")
    log = os.path.join(store, LOG_NAME)
    argv = [sys.executable, "-m", "ckpt_cli", "--store", store, "serve"]
    if idle is not None:
        argv += ["--idle", str(idle)]
    return os.posix_spawn(
        sys.executable,
        argv,
        os.environ,
        file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ],
        setsid=True,
    )
