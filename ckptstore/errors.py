"""The exception hierarchy of ckptstore: every error the library raises on purpose.

::

    CkptError
    ├── StoreError
    │   ├── StoreNotFound          (+ FileNotFoundError)
    │   ├── StoreExists            (+ FileExistsError)
    │   ├── StoreNotWritable       (+ PermissionError)
    │   ├── StoreBusy
    │   └── UnsupportedFormat
    ├── InvalidInput               (+ ValueError)
    │   ├── InvalidCheckpoint
    │   ├── InvalidValue
    │   ├── InvalidRefName
    │   ├── InvalidRevision
    │   ├── InvalidPath
    │   ├── InvalidDuration
    │   ├── InvalidSetting
    │   ├── InvalidConfig
    │   ├── InvalidOption
    │   ├── UnknownTaskType
    │   └── UnknownTask
    ├── NotFound                   (+ LookupError)
    │   ├── ObjectNotFound
    │   ├── RevisionNotFound
    │   ├── PathNotFound
    │   ├── AmbiguousRevision
    │   └── EmptySession
    ├── IntegrityError
    │   ├── CorruptObject
    │   ├── StoreDamaged
    │   ├── MalformedData          (+ ValueError)
    │   └── GCAborted
    ├── RefConflict
    ├── RefExists
    └── CollectorFailed

Every exception builds its message from the fields it carries (raise sites pass data,
not prose), and the fields stay available as attributes. Messages are one line: what
happened, naming the thing, then after a semicolon what to do.

The CLI maps ``InvalidInput`` to exit code 2 and every other ``CkptError`` to exit code 1.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "AmbiguousRevision",
    "CkptError",
    "CollectorFailed",
    "CorruptObject",
    "EmptySession",
    "GCAborted",
    "IntegrityError",
    "InvalidCheckpoint",
    "InvalidConfig",
    "InvalidDuration",
    "InvalidInput",
    "InvalidOption",
    "InvalidPath",
    "InvalidRefName",
    "InvalidRevision",
    "InvalidSetting",
    "InvalidValue",
    "MalformedData",
    "NotFound",
    "ObjectNotFound",
    "PathNotFound",
    "RefConflict",
    "RefExists",
    "RevisionNotFound",
    "StoreBusy",
    "StoreDamaged",
    "StoreError",
    "StoreExists",
    "StoreNotFound",
    "StoreNotWritable",
    "UnknownTask",
    "UnknownTaskType",
    "UnsupportedFormat",
]

_MAX_CANDIDATES = 8
_MAX_FIELDS = 20  # a checkpoint's own fields: all of the seed's fit


def _short(value: str, limit: int = 60) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


class CkptError(Exception):
    """Base class of every error ckptstore raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


# --- the store as a whole ---------------------------------------------------------


class StoreError(CkptError):
    """The store directory or file cannot be used."""


class StoreNotFound(StoreError, FileNotFoundError):
    """No store where one was expected."""

    def __init__(self, path: str, *, searched_parents: bool = False, reason: str = "") -> None:
        self.path = path
        self.searched_parents = searched_parents
        self.reason = reason
        where = f"'{path}' or any parent directory" if searched_parents else f"'{path}'"
        detail = f" ({reason})" if reason else ""
        super().__init__(
            f"no ckpt store in {where}{detail}; create one with `ckpt init`"
            " or point --store / CKPT_STORE at an existing store"
        )


class StoreExists(StoreError, FileExistsError):
    """``init`` was asked to create a store where one already exists."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(
            f"a store file already exists in '{path}'; use that store, or pick another path"
        )


class StoreNotWritable(StoreError, PermissionError):
    """The store (or the place a store should be created) cannot be written."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(
            f"cannot write to the store at '{path}' ({reason}); check the directory's"
            " permissions and free space"
        )


class StoreBusy(StoreError):
    """Another process held the store's write lock for longer than the timeout."""

    def __init__(self, path: str, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        super().__init__(
            f"the store at '{path}' stayed locked by another writer for {timeout:g}s;"
            " retry, or raise CKPT_BUSY_TIMEOUT"
        )


class UnsupportedFormat(StoreError):
    """The store file was written by a newer ckptstore, or is not a ckptstore file."""

    def __init__(self, path: str, found: str, supported: int) -> None:
        self.path = path
        self.found = found
        self.supported = supported
        super().__init__(
            f"the store at '{path}' has format {found}, this ckptstore reads format"
            f" {supported} and older; upgrade ckptstore (nothing was written)"
        )


# --- bad input ------------------------------------------------------------------


class InvalidInput(CkptError, ValueError):
    """The caller passed something ckptstore cannot accept."""


class InvalidCheckpoint(InvalidInput):
    """A checkpoint does not follow the checkpoint format.

    ``field`` is a JSON path such as ``$.tasks[3].id``.
    """

    def __init__(self, field: str, problem: str, *, source: str = "") -> None:
        self.field = field
        self.problem = problem
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{field}: {problem}; fix that field and retry")


class InvalidValue(InvalidInput):
    """A value cannot be stored (not a JSON type, NaN, an int beyond 64 bits, too deep)."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}; checkpoints hold JSON values only")


class InvalidRefName(InvalidInput):
    """A session or tag name breaks the ref-name rules."""

    def __init__(self, name: str, problem: str) -> None:
        self.name = name
        self.problem = problem
        super().__init__(
            f"invalid name {name!r}: {problem}; use letters, digits and - _ . /"
            " (no '..', no leading or trailing '/' or '.')"
        )


class InvalidRevision(InvalidInput):
    """A REF argument is not in any accepted form."""

    def __init__(self, revision: str, problem: str) -> None:
        self.revision = revision
        self.problem = problem
        super().__init__(
            f"bad reference {revision!r}: {problem}; use a checkpoint id, an object id,"
            " HEAD, HEAD~N, a session or session~N"
        )


class InvalidSetting(InvalidInput):
    """A setting (an environment variable, a config entry) has an unusable value."""

    def __init__(self, name: str, value: str, problem: str) -> None:
        self.name = name
        self.value = value
        self.problem = problem
        super().__init__(f"{name}={value!r}: {problem}; fix or unset it")


class InvalidConfig(InvalidInput):
    """The store's config file (``config.toml``) is not valid.

    ``key`` is the dotted key at fault (empty for the file as a whole); ``line`` is its
    line when it can be found.
    """

    def __init__(self, path: str, key: str, problem: str, line: int | None = None) -> None:
        self.path = path
        self.key = key
        self.problem = problem
        self.line = line
        where = f"{path}:{line}" if line is not None else path
        what = f" {key}" if key else ""
        super().__init__(f"{where}:{what} {problem}; fix the config file and retry")


class InvalidOption(InvalidInput):
    """An option of a library call or command has a value it cannot take."""

    def __init__(self, option: str, value: object, problem: str) -> None:
        self.option = option
        self.value = value
        self.problem = problem
        super().__init__(f"{option} {_short(repr(value))}: {problem}")


class UnknownTaskType(InvalidInput):
    """A summary was asked for a task type that is neither built in nor configured."""

    def __init__(self, name: str, known: Sequence[str]) -> None:
        self.name = name
        self.known = tuple(known)
        super().__init__(
            f"unknown task type {_short(repr(name))}; known: {', '.join(self.known)}"
            f" (define more under [summary.task_types.<name>] in the store's config.toml)"
        )


class UnknownTask(InvalidInput):
    """An edit names a task id the checkpoint does not have (``--task``, ``--active-task``)."""

    def __init__(self, task_id: str, known: Sequence[str], *, option: str = "--task") -> None:
        self.task_id = task_id
        self.known = tuple(known)
        self.option = option
        shown = ", ".join(self.known[:_MAX_CANDIDATES]) + (
            " …" if len(self.known) > _MAX_CANDIDATES else ""
        )
        hint = f"known: {shown}" if self.known else "the checkpoint has no tasks"
        super().__init__(
            f"{option}: no task has id {_short(repr(task_id))} ({hint}); nothing was written,"
            " add it with --task-add or check the id with `ckpt load`"
        )


class InvalidPath(InvalidInput):
    """A path into a checkpoint (``REF:PATH``, ``--key``) is malformed."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(
            f"bad path {path!r}: {problem}; write section.key.field, e.g. variables.plan"
            ' or tasks.42.status (quote keys with dots: variables."a.b")'
        )


class InvalidDuration(InvalidInput):
    """A time argument is neither ISO 8601 nor a duration such as ``2h``."""

    def __init__(self, text: str) -> None:
        self.text = text
        super().__init__(
            f"bad time {text!r}; give an ISO 8601 time (2026-01-23T12:00:00) or a duration"
            " ago: 90s, 30m, 2h, 3d, 1w"
        )


# --- missing things -------------------------------------------------------------


class NotFound(CkptError, LookupError):
    """Something that was asked for does not exist."""


class ObjectNotFound(NotFound):
    """An object that should be in the store is not."""

    def __init__(self, object_id: str, *, referenced_by: str = "") -> None:
        self.object_id = object_id
        self.referenced_by = referenced_by
        ref = f" (referenced by {referenced_by})" if referenced_by else ""
        super().__init__(
            f"object {object_id} is missing from the store{ref};"
            " the store is damaged: run `ckpt fsck` and restore from a copy"
        )


class RevisionNotFound(NotFound):
    """A REF argument names no checkpoint."""

    def __init__(self, revision: str, *, candidates: Sequence[str] = (), detail: str = "") -> None:
        self.revision = revision
        self.candidates = tuple(candidates)
        self.detail = detail
        extra = f" ({detail})" if detail else ""
        hint = (
            "; known: " + ", ".join(self.candidates[:_MAX_CANDIDATES])
            if self.candidates
            else "; list checkpoints with `ckpt log`"
        )
        super().__init__(f"no checkpoint matches {revision!r}{extra}{hint}")


class PathNotFound(NotFound):
    """A path names nothing in the checkpoint."""

    def __init__(self, path: str, problem: str, known: Sequence[str] = ()) -> None:
        self.path = path
        self.problem = problem
        self.known = tuple(known)
        hint = (
            "; known: "
            + ", ".join(self.known[:_MAX_FIELDS])
            + (" …" if len(self.known) > _MAX_FIELDS else "")
            if self.known
            else ""
        )
        super().__init__(f"{path}: {problem}{hint}")


class AmbiguousRevision(NotFound):
    """A REF argument matches more than one thing."""

    def __init__(
        self, revision: str, candidates: Sequence[str], *, hint: str = "give more of the id"
    ) -> None:
        self.revision = revision
        self.candidates = tuple(candidates)
        shown = ", ".join(self.candidates[:_MAX_CANDIDATES])
        more = (
            f" and {len(self.candidates) - _MAX_CANDIDATES} more"
            if (len(self.candidates) > _MAX_CANDIDATES)
            else ""
        )
        super().__init__(f"{revision!r} is ambiguous: it matches {shown}{more}; {hint}")


class EmptySession(NotFound):
    """A session exists in name (HEAD points at it) but holds no checkpoint yet."""

    def __init__(self, session: str, *, others: Sequence[str] = ()) -> None:
        self.session = session
        self.others = tuple(others)
        hint = (
            f"; sessions with checkpoints: {', '.join(self.others[:_MAX_CANDIDATES])}"
            " (pass --session)"
            if self.others
            else "; create one with `ckpt commit`"
        )
        super().__init__(f"session {session!r} has no checkpoints yet{hint}")


# --- integrity ------------------------------------------------------------------


class IntegrityError(CkptError):
    """Stored data is damaged or was never valid."""


class CorruptObject(IntegrityError):
    """An object's stored bytes do not decode to the content its id names."""

    def __init__(self, object_id: str, problem: str) -> None:
        self.object_id = object_id
        self.problem = problem
        super().__init__(
            f"object {object_id} is corrupt ({problem}); the store is damaged:"
            " run `ckpt fsck` and restore from a copy"
        )


class StoreDamaged(IntegrityError):
    """The store file itself is damaged (the database engine refuses it)."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"the store file '{path}' is damaged ({reason}); restore it from a copy")


class GCAborted(IntegrityError):
    """gc (or prune) met a reachable object that is missing or damaged, and deleted nothing.

    ``referenced_by`` names what led to the object: a ref, ``reflog``, or an object id.
    """

    def __init__(self, object_id: str, problem: str, referenced_by: str) -> None:
        self.object_id = object_id
        self.problem = problem
        self.referenced_by = referenced_by
        super().__init__(
            f"gc stopped and deleted nothing: object {object_id} (referenced by"
            f" {referenced_by}) is {problem}; run `ckpt fsck` and restore from a copy"
        )


class MalformedData(IntegrityError, ValueError):
    """Bytes handed to a decoder are not a valid encoding."""

    def __init__(self, what: str, problem: str) -> None:
        self.what = what
        self.problem = problem
        super().__init__(f"malformed {what}: {_short(problem, 120)}")


# --- concurrency ----------------------------------------------------------------


class RefConflict(CkptError):
    """A ref moved while this process was updating it, more often than retries allow."""

    def __init__(self, ref: str, expected: str | None, found: str | None, attempts: int) -> None:
        self.ref = ref
        self.expected = expected
        self.found = found
        self.attempts = attempts
        super().__init__(
            f"{ref} kept moving under concurrent writers ({attempts} attempts; expected"
            f" {expected or 'nothing'}, found {found or 'nothing'}); retry the command"
        )


class RefExists(CkptError):
    """A session or tag to be created already exists."""

    def __init__(self, ref: str, current: str) -> None:
        self.ref = ref
        self.current = current
        kind = "tag" if ref.startswith("tags/") else "session"
        super().__init__(
            f"{ref} already exists (at {current[:12]}); pick another name"
            + (" or pass --force to move it" if kind == "tag" else "")
        )


# --- capturing state ------------------------------------------------------------


class CollectorFailed(CkptError):
    """A state collector raised, and the store's config says to fail the commit."""

    def __init__(self, collector: str, problem: str) -> None:
        self.collector = collector
        self.problem = problem
        super().__init__(
            f"collector {collector!r} failed ({_short(problem, 160)}); nothing was written:"
            ' fix it, disable it under [collectors] disable = ["…"] in the store\'s config.toml,'
            ' or set on_error = "record" there'
        )
