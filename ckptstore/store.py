"""Store: the public facade that composes objects, trees, snapshots, refs and a backend."""

from __future__ import annotations

import copy
import os
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

from ckptstore.backends.base import Backend, RefUpdate
from ckptstore.backends.sqlite import Durability, SQLiteBackend
from ckptstore.commits import CommitInfo, iter_history, now_iso, read_commit
from ckptstore.errors import (
    EmptySession,
    InvalidCheckpoint,
    InvalidOption,
    InvalidSetting,
    InvalidValue,
    RefConflict,
    RefExists,
    RevisionNotFound,
    StoreExists,
    StoreNotWritable,
)
from ckptstore.location import STORE_DIR, find_store, store_file
from ckptstore.objects import Commit, Kind, ObjectId, canonical
from ckptstore.objectstore import ObjectStore
from ckptstore.publish import edit_build, publish
from ckptstore.refs import SESSION_PREFIX, TAG_PREFIX, Refs, check_name
from ckptstore.revisions import resolve_revision
from ckptstore.snapshot import (
    FIELD_ORDER,
    STORE_OWNED,
    Built,
    empty_state,
    read_state,
    seed_order,
    validate_state,
    write_state,
)

if TYPE_CHECKING:  # the facade's less common parts are imported where they are used
    from ckptstore.collectors import Captured, Collector
    from ckptstore.config import Config
    from ckptstore.diff import Change
    from ckptstore.edits import Edits
    from ckptstore.fsck import FsckReport
    from ckptstore.gc import GCStats, Progress
    from ckptstore.history import KeyChange
    from ckptstore.probes import ProbeResult
    from ckptstore.prune import PruneReport
    from ckptstore.retention import RetentionPolicy
    from ckptstore.secrets import SecretPolicy
    from ckptstore.session import AutoCheckpoint
    from ckptstore.stats import StoreStats

__all__ = ["Checkpoint", "SessionInfo", "Store"]

_ABSENT: Final = object()
_ENV_BUSY = "CKPT_BUSY_TIMEOUT"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A loaded checkpoint: its commit and its data in the seed's JSON format."""

    commit: CommitInfo
    data: dict[str, Any]


class Store:
    """A checkpoint store: commit, load and walk the history of agent sessions.

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
        store-owned fields of an imported file (see :class:`~ckptstore.objects.Commit`);
        its ``checkpoint_id`` becomes the checkpoint's id and resolves as a REF.

        Raises:
            InvalidCheckpoint: the state or a variable is not valid; nothing is written.
            InvalidRefName: the session name is not valid.
            RefConflict: the session kept moving for ``publish.MAX_ATTEMPTS`` attempts, or
                (with ``parents``) it ends elsewhere.
        """
        given = validate_state(state, source=source) if state is not None else None
        session = check_name(session or self.current_session)
        assign = {}
        for name, value in (variables or {}).items():
            try:
                assign[name] = canonical(value, root=f"$.variables.{name}")
            except InvalidValue as err:
                raise InvalidCheckpoint(err.path, err.problem, source=source) from None
        fixed: Built | None = None
        if given is not None:
            merged = dict(given.get("variables", {}))
            for name in unset:
                if merged.pop(name, _ABSENT) is _ABSENT:
                    raise InvalidCheckpoint(
                        f"$.variables.{name}", "is not set, so it cannot be unset", source=source
                    )
            merged.update(assign)
            if merged or "variables" in given:
                given["variables"] = dict(sorted(merged.items()))
            fixed = write_state(given)
        # Before the commit: a commit that then fails leaves a name marked, never a
        # secret value stored unmarked.
        self.mark_secret(secret)
        return publish(
            self.objects, self.refs, session,
            lambda parent: edit_build(self.objects, fixed, parent, assign, tuple(unset)),
            notes=notes, created_at=created_at, parents=parents, original=original,
        )  # fmt: skip

    def capture(
        self,
        state: Mapping[str, Any] | None = None,
        *,
        session: str | None = None,
        merge: bool = False,
        edits: Edits | None = None,
        variables: Mapping[str, Any] | None = None,
        unset: Sequence[str] = (),
        notes: str = "",
        source: str = "",
        secret: Sequence[str] = (),
        probe: bool = True,
        plugins: bool = True,
        collectors: Sequence[Collector] = (),
        environ: Mapping[str, str] | None = None,
    ) -> Captured:
        """Build a checkpoint with the collectors and record it (what ``ckpt commit`` does).

        The session's latest checkpoint, then ``state`` (a full one, or a partial one
        with ``merge``), ``edits`` and ``variables``/``unset``, the environment
        (``environ``, default ``os.environ``), the dependency probes (unless ``probe``
        is false) and the plugin collectors (unless ``plugins`` is false), then
        ``collectors``; see :mod:`ckptstore.collectors` for each stage.

        Raises:
            InvalidInput: a state, edit, variable or setting is not valid; nothing is
                written.
            CollectorFailed: a collector failed and the config says to fail.
        """
        from ckptstore.collectors import Captured, Environment, Pipeline, discover_collectors
        from ckptstore.edits import Edits
        from ckptstore.merge import validate_partial

        config = self.config
        environment = Environment.read(os.environ if environ is None else environ)
        given = partial = None
        if state is not None and merge:
            partial = validate_partial(state, source=source)
        elif state is not None:
            given = validate_state(state, source=source)
        elif merge:
            raise InvalidOption("merge", True, "needs a partial state to merge (--state FILE)")
        assign = {}
        for name, value in (variables or {}).items():
            try:
                assign[name] = canonical(value, root=f"$.variables.{name}")
            except InvalidValue as err:
                raise InvalidCheckpoint(err.path, err.problem, source=source) from None
        stamp = now_iso()
        pipeline = Pipeline(
            full=given,
            partial=partial,
            edits=(edits or Edits()).with_variables(assign, unset),
            environment=environment,
            dependencies=config.dependencies if probe else (),
            bound=config.probe_bound,
            plugins=discover_collectors(config.disabled_collectors)
            if plugins and config.plugins
            else (),
            extra=collectors,
            on_error=config.collector_errors,
            now=stamp,
        )
        name = check_name(session or environment.session or self.current_session)
        loaded: dict[bytes | None, dict[str, Any]] = {}  # root tree id -> its state
        if pipeline.collects:
            head = self.refs.session_head(name)
            parent = read_commit(self.objects, head) if head is not None else None
            tree = parent.tree if parent is not None else None
            loaded[tree] = {} if given is not None else self._base_state(parent)
            # Edits are checked on a copy before probes and plugins spend any time; the
            # first build reuses the loaded state.
            pipeline.collect(copy.deepcopy(loaded[tree]), name, self.path)
        self.mark_secret(secret)

        def build(parent: Commit | None) -> tuple[Built, tuple[str | None, int | None]]:
            agent = (parent.agent_id, parent.agent_tier) if parent is not None else None
            if pipeline.variables_only(agent):
                edits = pipeline.edits
                return edit_build(self.objects, None, parent, edits.variables, edits.unset)
            base = loaded.pop(parent.tree if parent is not None else None, None)
            if base is None:  # a full state replaces the parent's: no need to read it
                base = {} if given is not None else self._base_state(parent)
            state = pipeline.apply(base)
            built = write_state(validate_state(state, source=source))
            return built, built.agent

        info = publish(self.objects, self.refs, name, build, notes=notes, created_at=stamp)
        return Captured(info, tuple(pipeline.results), tuple(pipeline.errors))

    def session(self, name: str | None = None, *, probe: bool = True) -> AutoCheckpoint:
        """Auto-checkpoint hooks for session ``name`` (default: HEAD's): :mod:`~ckptstore.session`.

        ``with store.session("agent-1") as s:`` records a checkpoint with the error when
        the block raises, then re-raises.
        """
        from ckptstore.session import AutoCheckpoint

        return AutoCheckpoint(self, check_name(name or self.current_session), probe=probe)

    def check_dependencies(self) -> list[ProbeResult]:
        """Check the dependencies ``config.toml`` declares, now (``ckpt deps``)."""
        from ckptstore.probes import probe_all

        config = self.config
        return probe_all(config.dependencies, bound=config.probe_bound)

    def _base_state(self, parent: Commit | None) -> dict[str, Any]:
        """The state a commit inherits: its parent's (an empty one for a new session)."""
        return empty_state() if parent is None else read_state(self.objects, parent.tree)

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

    def log(
        self,
        ref: str | None = None,
        *,
        session: str | None = None,
        limit: int | None = 20,
        all_sessions: bool = False,
        since: str | datetime | None = None,
        until: str | datetime | None = None,
        grep: str | None = None,
    ) -> list[CommitInfo]:
        """Return checkpoints newest first, from ``ref`` (default: the session's newest).

        ``all_sessions`` merges every session by time (a checkpoint shared by forked
        sessions is listed once). ``since``/``until`` take datetimes, ISO 8601 text or
        durations ago (``2h``, ``3d``); ``grep`` keeps notes containing the text.

        Raises:
            EmptySession: if the session has no checkpoints.
            InvalidDuration: if a time is malformed.
        """
        from ckptstore.history import filtered_log

        low, high = (_moment(since), _moment(until))
        with self.backend.reading():
            if all_sessions:
                starts = [*self.refs.sessions().values(), *self.refs.tags().values()]
            else:
                starts = [self._start(ref, session)]
            return filtered_log(self.objects, starts, since=low, until=high, grep=grep, limit=limit)

    def _start(self, ref: str | None, session: str | None) -> bytes:
        if ref is None:
            name = check_name(session) if session is not None else self.current_session
            head = self.refs.session_head(name)
            if head is None:
                raise EmptySession(name, others=list(self.refs.sessions()))
            return head
        return resolve_revision(self.objects, self.refs, ref)

    # --- history: diff, per-value history, paths ---------------------------------------

    def diff(self, old: str = "HEAD~1", new: str = "HEAD") -> list[Change]:
        """What changed from checkpoint ``old`` to ``new`` (any two, related or not).

        Reads only the parts of the two trees that differ.
        """
        from ckptstore.treediff import diff_trees

        with self.backend.reading():
            trees = [
                read_commit(self.objects, resolve_revision(self.objects, self.refs, ref)).tree
                for ref in (old, new)
            ]
            return diff_trees(self.objects, trees[0], trees[1])

    def history(
        self,
        key: str,
        ref: str | None = None,
        *,
        session: str | None = None,
        limit: int | None = 20,
        since: str | datetime | None = None,
        until: str | datetime | None = None,
        grep: str | None = None,
    ) -> list[KeyChange]:
        """The checkpoints where the value at path ``key`` changed, newest first.

        ``key`` is a path such as ``variables.plan``, ``tasks.42`` or ``phase``;
        ``since``/``until``/``grep`` filter as in :meth:`log`.
        """
        from ckptstore.history import commit_filter, key_history
        from ckptstore.paths import parse_path

        path = parse_path(key)
        keep = commit_filter(since=_moment(since), until=_moment(until), grep=grep)
        with self.backend.reading():
            start = self._start(ref, session)
            return key_history(self.objects, start, path, limit=limit, keep=keep)

    def show(self, ref: str, path: str) -> Any:
        """The value at ``path`` (``variables.plan``, ``tasks.42.status``) in checkpoint ``ref``."""
        from ckptstore.paths import lookup, parse_path

        segments = parse_path(path)
        if segments[0] in STORE_OWNED and len(segments) == 1:
            return self.load(ref)[segments[0]]
        with self.backend.reading():
            commit = read_commit(self.objects, resolve_revision(self.objects, self.refs, ref))
            value = lookup(self.objects, commit.tree, segments, text=f"{ref}:{path}")
        return seed_order(segments, value)

    # --- sessions and tags ----------------------------------------------------------------

    def fork(self, name: str, ref: str = "HEAD", *, switch: bool = False) -> CommitInfo:
        """Start session ``name`` at checkpoint ``ref`` (no copying: a new ref).

        Raises:
            RefExists: if the session already exists.
        """
        return self._create_ref(SESSION_PREFIX, name, ref, switch=switch)

    def switch(self, name: str) -> None:
        """Make session ``name`` the current one (HEAD).

        Raises:
            RevisionNotFound: if no such session has checkpoints.
        """
        if self.refs.session_head(check_name(name)) is None:
            raise RevisionNotFound(name, candidates=list(self.refs.sessions()))
        self.refs.set_current_session(name)

    def session_list(self) -> list[SessionInfo]:
        """Every session: head checkpoint, length and time; read from refs and heads only."""
        current = self.current_session
        with self.backend.reading():
            return [
                SessionInfo(name, next(iter_history(self.objects, oid)), name == current)
                for name, oid in self.refs.sessions().items()
            ]

    def tag(self, name: str, ref: str = "HEAD", *, force: bool = False) -> CommitInfo:
        """Name checkpoint ``ref`` with tag ``name`` (usable wherever a REF is).

        Raises:
            RefExists: if the tag exists and ``force`` is false.
        """
        return self._create_ref(TAG_PREFIX, name, ref, force=force)

    def delete_tag(self, name: str) -> None:
        """Remove tag ``name``.

        Raises:
            RevisionNotFound: if there is no such tag.
        """
        old = self.backend.get_ref(TAG_PREFIX + check_name(name))
        if old is None:
            raise RevisionNotFound(f"{TAG_PREFIX}{name}", candidates=list(self.refs.tags()))
        update = RefUpdate(TAG_PREFIX + name, old, None, "tag: delete")
        if not self.backend.write([], [update]).ok:
            raise RefConflict(TAG_PREFIX + name, old.hex(), None, 1)

    def tags(self) -> dict[str, CommitInfo]:
        """Every tag and the checkpoint it names."""
        with self.backend.reading():
            return {
                name: next(iter_history(self.objects, oid))
                for name, oid in self.refs.tags().items()
            }

    def _create_ref(
        self, prefix: str, name: str, ref: str, *, switch: bool = False, force: bool = False
    ) -> CommitInfo:
        full = prefix + check_name(name)
        with self.backend.reading():
            target = resolve_revision(self.objects, self.refs, ref)
            info = next(iter_history(self.objects, target))
            old = self.backend.get_ref(full)
        if old is not None and not force:
            raise RefExists(full, old.hex())
        verb = "fork" if prefix == SESSION_PREFIX else "tag"
        if not self.backend.write([], [RefUpdate(full, old, target, f"{verb}: from {ref}")]).ok:
            raise RefConflict(full, old.hex() if old else None, None, 1)
        if switch:
            self.refs.set_current_session(name)
        return info

    # --- maintenance: gc, prune, fsck, stats ---------------------------------------------

    def gc(
        self,
        *,
        grace: float | None = None,
        reflog_expiry: float | None = None,
        dry_run: bool = False,
        now: float | None = None,
        progress: Progress | None = None,
        compact: bool = False,
    ) -> GCStats:
        """Delete what nothing reaches (safe alongside commits); see :mod:`ckptstore.gc`.

        ``grace`` and ``reflog_expiry`` are seconds (default: the ``[gc]`` section of
        ``config.toml``, else gc's defaults); ``now`` is the time ages are measured
        against (default: the clock); ``compact`` rewrites the file afterwards.
        """
        from ckptstore.gc import collect_garbage

        grace, reflog_expiry = self._gc_ages(grace, reflog_expiry)
        stats = collect_garbage(
            self.objects, grace=grace, reflog_expiry=reflog_expiry, dry_run=dry_run,
            now=now, progress=progress, compact=compact,
        )  # fmt: skip
        self.objects.drop_cache()  # what was deleted must not be served from memory
        return stats

    def prune(
        self,
        policy: RetentionPolicy | None = None,
        *,
        sessions: Sequence[str] | None = None,
        dry_run: bool = False,
        grace: float | None = None,
        reflog_expiry: float | None = None,
        now: float | None = None,
        progress: Progress | None = None,
        compact: bool = False,
    ) -> PruneReport:
        """Forget checkpoints ``policy`` does not keep, then gc; see :mod:`ckptstore.prune`.

        The default policy keeps the newest 50 checkpoints of every session; session
        heads and tagged checkpoints are always kept. ``grace`` and ``reflog_expiry`` as
        for :meth:`gc`.
        """
        from ckptstore.prune import apply_retention
        from ckptstore.retention import RetentionPolicy

        grace, reflog_expiry = self._gc_ages(grace, reflog_expiry)
        report = apply_retention(
            self.objects, policy or RetentionPolicy(), sessions=sessions, dry_run=dry_run,
            grace=grace, reflog_expiry=reflog_expiry, now=now, progress=progress,
            compact=compact,
        )  # fmt: skip
        self.objects.drop_cache()
        return report

    def _gc_ages(self, grace: float | None, expiry: float | None) -> tuple[float, float]:
        """The grace period and reflog expiry: given, else configured, else the defaults."""
        from ckptstore.gc import DEFAULT_GRACE, DEFAULT_REFLOG_EXPIRY

        config = self.config
        if grace is None:
            grace = DEFAULT_GRACE if config.gc_grace is None else config.gc_grace
        if expiry is None:
            expiry = (
                DEFAULT_REFLOG_EXPIRY
                if config.gc_reflog_expiry is None
                else config.gc_reflog_expiry
            )
        return grace, expiry

    def fsck(self, *, progress: Progress | None = None) -> FsckReport:
        """Check every object, link and ref; see :mod:`ckptstore.fsck`."""
        from ckptstore.fsck import check_store

        return check_store(self.objects, progress=progress)

    def stats(self, *, top: int = 10, progress: Progress | None = None) -> StoreStats:
        """Count objects and measure dedup and compression; see :mod:`ckptstore.stats`."""
        from ckptstore.stats import collect_stats

        return collect_stats(self.objects, top=top, progress=progress)


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A session as ``ckpt session list`` shows it: ``head.generation`` is its length."""

    name: str
    head: CommitInfo
    current: bool


def _moment(value: str | datetime | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    from ckptstore.history import parse_moment

    return parse_moment(value)


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
