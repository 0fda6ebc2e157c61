"""Store: the public facade that composes objects, trees, snapshots, refs and a backend."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple

from ckptstore.backends.base import Backend
from ckptstore.backends.sqlite import Durability, SQLiteBackend
from ckptstore.commits import CommitInfo, iter_history
from ckptstore.errors import (
    InvalidSetting,
    StoreExists,
    StoreNotWritable,
)
from ckptstore.location import STORE_DIR, find_store, store_file
from ckptstore.objects import Kind, ObjectId
from ckptstore.objectstore import ObjectStore
from ckptstore.publish import edit_build, publish
from ckptstore.refs import Refs, check_name
from ckptstore.revisions import resolve_revision
from ckptstore.snapshot import FIELD_ORDER, Built, read_state, write_state
from ckptstore.store_capture import CaptureMethods
from ckptstore.store_history import HistoryMethods
from ckptstore.store_maintenance import MaintenanceMethods
from ckptstore.store_refs import RefMethods, SessionInfo
from ckptstore.validation import prepare_state, validate_variables, with_variables

if TYPE_CHECKING:  # the facade's less common parts are imported where they are used
    from ckptstore.config import Config
    from ckptstore.secrets import SecretPolicy

__all__ = ["Checkpoint", "SessionInfo", "Store"]

_ENV_BUSY = "CKPT_BUSY_TIMEOUT"


class Checkpoint(NamedTuple):
    """A loaded checkpoint: its commit and its data in the seed's JSON format."""

    commit: CommitInfo
    data: dict[str, Any]


class Store(CaptureMethods, HistoryMethods, RefMethods, MaintenanceMethods):
    """A checkpoint store: commit, load and walk the history of agent sessions.

    Its capture, history, sessions and tags, and maintenance methods live in
    :mod:`~ckptstore.store_capture`, :mod:`~ckptstore.store_history`,
    :mod:`~ckptstore.store_refs` and :mod:`~ckptstore.store_maintenance`.

    Open one with :meth:`open` (find an existing store), :meth:`init` (create one) or
    :meth:`memory` (a throwaway in-memory store). A store is a context manager.
    """

    def __init__(self, backend: Backend, *, path: Path | None = None) -> None:
        self.backend = backend
        self.path = path
        self.objects = ObjectStore(backend)
        self.refs = Refs(backend)

    # --- opening ----------------------------------------------------------------------

    @classmethod
    def init(
        cls, path: str | os.PathLike[str] | None = None, *, durability: Durability = "full"
    ) -> Store:
        """Create a store in directory ``path`` (default ``./.ckpt``) and open it.

        Raises:
            StoreExists: if a store is already there.
            StoreNotWritable: if the directory cannot be created or written (or it, or a
                directory on its path, is a dangling symbolic link: nothing is created).
        """
        directory = Path(path) if path is not None else Path.cwd() / STORE_DIR
        if store_file(directory).exists():
            raise StoreExists(str(directory))
        for part in (directory, *directory.parents):
            if part.is_symlink() and not part.exists():
                raise StoreNotWritable(str(directory), f"'{part}' is a dangling symbolic link")
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StoreNotWritable(str(directory), err.strerror or str(err)) from err
        if not os.access(directory, os.W_OK):
            raise StoreNotWritable(str(directory), "the directory is read-only")
        SQLiteBackend.create(store_file(directory), durability=durability)
        return cls.open(directory)

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        durability: Durability | None = None,
    ) -> Store:
        """Open the store at ``path``; without one, use ``CKPT_STORE`` or search upwards.

        Raises:
            StoreNotFound: no store there (or it is not a ckptstore store).
            UnsupportedFormat: written by a newer ckptstore; nothing is written.
        """
        directory = find_store(path)
        timeout = _busy_timeout()
        backend = SQLiteBackend.open(
            store_file(directory), durability=durability, busy_timeout=timeout
        )
        return cls(backend, path=directory)

    @classmethod
    def memory(cls) -> Store:
        """A store that lives in this process only."""
        from ckptstore.backends.memory import MemoryBackend

        return cls(MemoryBackend())

    def close(self) -> None:
        """Close the store."""
        self.backend.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.backend.location!r})"

    # --- sessions and refs --------------------------------------------------------------

    @property
    def current_session(self) -> str:
        """The session HEAD names: the default for commands given no session."""
        return self.refs.current_session()

    def sessions(self) -> dict[str, ObjectId]:
        """Every session with checkpoints: name → id of its newest commit."""
        return {name: ObjectId(oid.hex()) for name, oid in self.refs.sessions().items()}

    def resolve(self, ref: str = "HEAD") -> ObjectId:
        """Return the commit id a REF names (see :mod:`ckptstore.revisions`)."""
        with self.backend.reading():
            return ObjectId(resolve_revision(self.objects, self.refs, ref).hex())

    def publish(
        self,
        session: str,
        old: bytes | None,
        new: bytes,
        objects: Mapping[bytes, tuple[Kind, bytes]],
        message: str,
    ) -> bool:
        """Store ``objects`` and move session ``session`` from commit ``old`` to ``new``, at once.

        For clients that build their own commits (``ckptstore.integrations``). Objects
        already stored are not written again, and everything the new ones reference
        (and ``new`` itself) must still exist in the same transaction, so a concurrent
        gc can never leave the session pointing at a missing object. Returns false, with
        nothing written, if the session no longer points at ``old`` or a referenced
        object is gone: rebuild on the new head and try again.
        """
        from ckptstore.dictionary import current_dictionary
        from ckptstore.graph import references

        fresh = self.objects.missing(objects)
        stored = self.objects.prepare(
            {oid: objects[oid] for oid in fresh}, dictionary=current_dictionary(self.objects)
        )
        linked = {new, *(ref for oid in fresh for ref in references(*objects[oid]))}
        linked |= {s.base for s in stored if s.base is not None}
        update = Refs.session_update(check_name(session), old, new, message)
        return self.backend.write(stored, [update], require=sorted(linked - fresh)).ok

    # --- commit -------------------------------------------------------------------------

    def commit(
        self,
        state: Mapping[str, Any] | None = None,
        *,
        session: str | None = None,
        variables: Mapping[str, Any] | None = None,
        unset: Sequence[str] = (),
        notes: str = "",
        created_at: str | None = None,
        source: str = "",
        secret: Sequence[str] = (),
        parents: Sequence[str] | None = None,
        original: Mapping[str, Any] | None = None,
    ) -> CommitInfo:
        """Record a checkpoint and return its commit.

        With ``state``, the checkpoint is that state (in the seed's JSON format) plus
        ``variables``; without it, the session's latest checkpoint plus ``variables``
        (a new session starts from an empty checkpoint). The session is ``session``, else
        the current session: a state's ``session_id`` is store-owned, like its
        checkpoint id, so a loaded checkpoint committed back lands where HEAD is (after
        a fork: in the new session). If the current session has no checkpoints yet, the
        committed session becomes the current one. Variable names
        in ``secret`` are marked secret first (:meth:`mark_secret`).

        Racing writers to one session are serialised by compare-and-swap on the
        session ref: a commit that loses the race is rebuilt on the new head and retried.

        ``parents`` (REFs) builds the checkpoint on ``parents[0]`` instead of the
        session's newest; the session must then end there or not exist yet (``[]``: a
        first checkpoint in a session that must not exist). ``original`` records the
        store-owned fields of an imported file (see :class:`~ckptstore.commit_object.Commit`);
        its ``checkpoint_id`` becomes the checkpoint's id and resolves as a REF.

        Raises:
            InvalidCheckpoint: the state or a variable is not valid; nothing is written.
            InvalidRefName: the session name is not valid.
            RefConflict: the session kept moving for ``publish.MAX_ATTEMPTS`` attempts, or
                (with ``parents``) it ends elsewhere.
        """
        given = prepare_state(state, source=source) if state is not None else None
        session = check_name(session or self.current_session)
        assign = validate_variables(variables, source=source)
        fixed: Built | None = None
        if given is not None:
            fixed = write_state(with_variables(given, assign, unset, source=source))
        # Before the commit: a commit that then fails leaves a name marked, never a
        # secret value stored unmarked.
        self.mark_secret(secret)
        return publish(
            self.objects, self.refs, session,
            lambda parent: edit_build(self.objects, fixed, parent, assign, tuple(unset)),
            notes=notes, created_at=created_at, parents=parents, original=original,
        )  # fmt: skip

    # --- configuration and secrets -----------------------------------------------------

    @cached_property
    def config(self) -> Config:
        """The store's ``config.toml`` (defaults without one), read on first use.

        Raises:
            InvalidConfig: if the file is not valid.
        """
        from ckptstore.config import load_config

        return load_config(self.path)

    def secrets(self) -> SecretPolicy:
        """Which variables are secret: the config's name patterns and the marked names."""
        from ckptstore.secrets import SECRET_SETTING, SecretPolicy, parse_marked

        marked = parse_marked(self.backend.get_setting(SECRET_SETTING))
        return SecretPolicy(self.config.secret_patterns, marked)

    def mark_secret(self, names: Iterable[str]) -> None:
        """Mark variable names secret in this store, durably (``commit --secret-var``)."""
        wanted = set(names)
        if not wanted:
            return
        from ckptstore.secrets import SECRET_SETTING, dump_marked, parse_marked

        with _settings_lock(self.path):
            marked = parse_marked(self.backend.get_setting(SECRET_SETTING))
            if not wanted <= marked:
                self.backend.set_setting(SECRET_SETTING, dump_marked(marked | wanted))

    # --- reading ------------------------------------------------------------------------

    def get_commit(self, ref: str = "HEAD") -> CommitInfo:
        """Return the commit a REF names."""
        with self.backend.reading():
            oid = resolve_revision(self.objects, self.refs, ref)
            return next(iter_history(self.objects, oid))

    def load(self, ref: str = "HEAD") -> dict[str, Any]:
        """Return the checkpoint a REF names, in the seed's JSON format.

        Store-owned fields (checkpoint id, timestamps, session, content hash, parent,
        token estimate) come from the commit; every other field is exactly what was
        committed.
        """
        return self.checkpoint(ref).data

    def checkpoint(self, ref: str = "HEAD") -> Checkpoint:
        """Return the checkpoint a REF names together with its commit (notes and all)."""
        with self.backend.reading():
            oid = resolve_revision(self.objects, self.refs, ref)
            info = next(iter_history(self.objects, oid))
            user = read_state(self.objects, bytes.fromhex(info.tree))
        owned: dict[str, Any] = {
            "checkpoint_id": info.checkpoint_id,
            "created_at": info.created_at,
            "session_id": info.session,
            "content_hash": info.tree,
            "parent_checkpoint_id": info.parent_checkpoint_id,
            "estimated_tokens": info.estimated_tokens,
        }
        if info.original is not None:
            # An imported checkpoint reads back as its original file had it.
            owned.update((k, v) for k, v in info.original.items() if k in owned)
        data: dict[str, Any] = {
            name: owned[name] if name in owned else user[name]
            for name in FIELD_ORDER
            if name in owned or name in user
        }
        data.update((k, v) for k, v in user.items() if k not in data)
        return Checkpoint(info, data)


_THREADS = threading.Lock()


@contextmanager
def _settings_lock(directory: Path | None) -> Iterator[None]:
    """Serialise read-modify-write of a setting across threads and processes.

    Settings are plain key/value writes, so two processes adding different names to
    one list could each lose the other's; an exclusive ``flock`` on the store directory
    (SQLite never uses ``flock``) makes the update atomic on one host.
    """
    with _THREADS:
        if directory is None:
            yield
            return
        import fcntl  # POSIX, like the store itself (WAL needs one host)

        fd = os.open(directory, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def _busy_timeout() -> float:
    """Seconds a writer waits for the store's write lock (``CKPT_BUSY_TIMEOUT``)."""
    raw = os.environ.get(_ENV_BUSY)
    if not raw:
        return 60.0
    try:
        seconds = float(raw)
    except ValueError:
        raise InvalidSetting(_ENV_BUSY, raw, "must be a number of seconds") from None
    if not 0 <= seconds < 86_400:
        raise InvalidSetting(_ENV_BUSY, raw, "must be between 0 and 86400 seconds")
    return seconds
