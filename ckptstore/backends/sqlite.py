"""SQLiteBackend: the embedded default, one SQLite file in WAL mode.

Schema (format 3)::

    settings(key TEXT PRIMARY KEY, value TEXT)                 format_version, HEAD, ...
    objects(seq INTEGER PRIMARY KEY AUTOINCREMENT, id BLOB, kind, codec, raw_len,
            created_at, data, base INTEGER)         index: objects_by_id(substr(id, 1, 8))
    refs(name TEXT PRIMARY KEY, id BLOB)                       WITHOUT ROWID
    reflog(seq INTEGER PRIMARY KEY AUTOINCREMENT, name, old, new, at, message)
    pruned(id BLOB PRIMARY KEY, parent_checkpoint, next, skipped)   WITHOUT ROWID

``objects.created_at`` is in Unix seconds, refreshed whenever an object is stored again
(gc's grace period reads it in the scan gc makes anyway, so it has no index);
``objects.base`` is the row (``seq``) of the object a row is compressed against;
``pruned`` holds the prune marks (where ``ckpt prune`` cut a session's history).

Objects live in a rowid table rather than a WITHOUT ROWID table keyed by ``id``: SQLite
keeps at most ~1 KiB of a WITHOUT ROWID row on its b-tree page, so every object between
1 and 4 KiB would spill into an overflow page of its own (measured on the demo
workload: 3.1 MiB of pages for 1.7 MiB of objects). Ids are found through an index of
their first 8 bytes, not of all 32, and a delta names its base by row, not by id: the
index and the bases were a fifth of the file (format 2 held each id twice and each
base's id once more; ``docs/architecture.md`` has the figures). Rows that share a
prefix are told apart by the full id, which every read compares. A row number is never
used twice (``AUTOINCREMENT``), so a base deleted by damage is reported missing, never
confused with a later object.

Durability: ``full`` (the default) runs with ``synchronous=FULL``: a commit that
returned survives a process crash and a power loss. ``fast`` runs with
``synchronous=NORMAL``: it survives a process crash, but the last commits before a power
loss may be rolled back (never half-applied). Every write is one ``BEGIN IMMEDIATE``
transaction; ``busy_timeout`` makes other processes wait their turn instead of failing.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final, Literal, cast

from ckptstore.backends.base import RefUpdate, StoredObject, WriteResult
from ckptstore.backends.sqlite_maintenance import MarkStrategy, SQLiteMaintenance
from ckptstore.backends.sqlite_reads import SQLiteReads
from ckptstore.backends.sqlite_schema import (
    APPLICATION_ID,
    FORMAT_VERSION,
    IN_BATCH,
    PREFIX,
    PRUNED,
    SCHEMA,
    upgrade,
)
from ckptstore.errors import (
    CkptError,
    StoreBusy,
    StoreDamaged,
    StoreExists,
    StoreNotFound,
    StoreNotWritable,
    UnsupportedFormat,
)

__all__ = ["APPLICATION_ID", "FORMAT_VERSION", "Durability", "MarkStrategy", "SQLiteBackend"]

Durability = Literal["full", "fast"]

_SYNCHRONOUS: Final = {"full": "FULL", "fast": "NORMAL"}


def _translate(err: sqlite3.Error, path: str, timeout: float) -> CkptError:
    """Turn a known SQLite failure into the store's own error."""
    text = str(err).lower()
    if "locked" in text or "busy" in text:
        return StoreBusy(path, timeout)
    if "readonly" in text or "read-only" in text or "unable to open" in text:
        return StoreNotWritable(path, str(err))
    if "disk is full" in text or "disk i/o" in text:
        return StoreNotWritable(path, str(err))
    if "not a database" in text:
        return StoreNotFound(path, reason="the file is not a ckptstore store")
    if "malformed" in text or "corrupt" in text:
        return StoreDamaged(path, str(err))
    return StoreDamaged(path, f"{type(err).__name__}: {err}")


class SQLiteBackend(SQLiteReads, SQLiteMaintenance):
    """Objects, refs and reflog in one SQLite file. Use :meth:`create` or :meth:`open`.

    Its reads and its maintenance methods live in :mod:`~ckptstore.backends.sqlite_reads`
    and :mod:`~ckptstore.backends.sqlite_maintenance`.
    """

    def __init__(self, conn: sqlite3.Connection, path: Path, busy_timeout: float) -> None:
        self._conn = conn
        self._path = path
        self._timeout = busy_timeout
        self._lock = threading.RLock()
        self._read_depth = 0
        self._exclusive_depth = 0
        self._has_pruned = False

    # --- lifecycle ----------------------------------------------------------------

    @classmethod
    def create(cls, path: Path, *, durability: Durability = "full") -> None:
        """Create a new, empty store file at ``path`` atomically.

        The file is built under a temporary name and hard-linked into place, so a crash
        during creation never leaves a half-made store behind, and of two processes
        creating the same store one wins and the other gets ``StoreExists`` (a rename
        would silently replace a store the winner may already be committing to).

        Raises:
            StoreExists: if ``path`` already exists.
            StoreNotWritable: if the directory cannot be written.
        """
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            conn = sqlite3.connect(tmp, isolation_level=None)
            try:
                # auto_vacuum must be chosen before the first table exists.
                conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
                conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(SCHEMA)
                conn.execute(PRUNED)
                conn.executemany(
                    "INSERT INTO settings(key, value) VALUES (?, ?)",
                    [("format_version", str(FORMAT_VERSION)), ("durability", durability)],
                )
            finally:
                conn.close()
            os.link(tmp, path)
            _fsync_dir(path.parent)
        except FileExistsError as err:
            raise StoreExists(str(path.parent)) from err
        except sqlite3.Error as err:
            raise _translate(err, str(path.parent), 0) from err
        except OSError as err:
            raise StoreNotWritable(str(path.parent), err.strerror or str(err)) from err
        finally:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{tmp}{suffix}").unlink(missing_ok=True)

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        durability: Durability | None = None,
        busy_timeout: float = 60.0,
    ) -> SQLiteBackend:
        """Open an existing store file.

        Checks that the file is a ckptstore store of a format this version reads before
        anything is written.

        Raises:
            StoreNotFound: the file is missing or is not a ckptstore store.
            UnsupportedFormat: the store was written by a newer ckptstore.
        """
        if not path.is_file():
            raise StoreNotFound(str(path.parent), reason=f"'{path.name}' is missing")
        # mode=rw: never let SQLite create an empty database in place of a missing one.
        query = "mode=rw"
        if not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)):
            # WAL readers need to create the -shm file; where nobody can write, nobody
            # can change the store either, so reading it as immutable is safe.
            query = "mode=ro&immutable=1"
        try:
            conn = sqlite3.connect(
                f"{path.resolve().as_uri()}?{query}",
                uri=True,
                isolation_level=None,
                timeout=busy_timeout,
                check_same_thread=False,
            )
        except sqlite3.Error as err:
            raise _translate(err, str(path), busy_timeout) from err
        try:
            (app_id,) = conn.execute("PRAGMA application_id").fetchone()
            if app_id != APPLICATION_ID:
                raise StoreNotFound(str(path), reason="the file is not a ckptstore store")
            row = conn.execute("SELECT value FROM settings WHERE key='format_version'").fetchone()
            found = row[0] if row else "unknown"
            if not (found.isdigit() and int(found) <= FORMAT_VERSION):
                raise UnsupportedFormat(str(path), found, FORMAT_VERSION)
            if int(found) < FORMAT_VERSION:
                if "immutable" in query:
                    raise StoreNotWritable(
                        str(path),
                        f"it is of format {found}, which this version reads only after"
                        f" upgrading it to format {FORMAT_VERSION}: open it once where it"
                        " can be written",
                    )
                upgrade(conn, busy_timeout)
            if durability is None:
                row = conn.execute("SELECT value FROM settings WHERE key='durability'").fetchone()
                durability = "fast" if row and row[0] == "fast" else "full"
            conn.execute(f"PRAGMA synchronous={_SYNCHRONOUS[durability]}")
        except sqlite3.Error as err:
            conn.close()
            raise _translate(err, str(path), busy_timeout) from err
        except CkptError:
            conn.close()
            raise
        return cls(conn, path, busy_timeout)

    @property
    def location(self) -> str:
        """The store file's path."""
        return str(self._path)

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    # --- plumbing -------------------------------------------------------------------

    @contextmanager
    def _guard(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._conn
            except sqlite3.Error as err:
                raise _translate(err, str(self._path), self._timeout) from err

    def _select_in(self, sql: str, ids: Sequence[bytes]) -> list[Any]:
        rows: list[Any] = []
        with self._guard() as conn:
            for start in range(0, len(ids), IN_BATCH):
                chunk = ids[start : start + IN_BATCH]
                marks = ",".join("?" * len(chunk))
                rows.extend(conn.execute(sql.format(marks=marks), chunk).fetchall())
        return rows

    def _by_id(self, sql: str, ids: Sequence[bytes]) -> list[Any]:
        """Rows of ``sql`` (its first column the id) whose ``{marks}`` are ``ids``' prefixes.

        The index holds prefixes, so rows of other ids that share one come too: only the
        rows whose full id was asked for are returned.
        """
        wanted = set(ids)
        prefixes = list(dict.fromkeys(oid[:PREFIX] for oid in wanted))
        return [row for row in self._select_in(sql, prefixes) if row[0] in wanted]

    # --- writes: objects, refs and reflog, settings ---------------------------------

    def write(
        self,
        objects: Sequence[StoredObject],
        updates: Sequence[RefUpdate] = (),
        *,
        require: Sequence[bytes] = (),
    ) -> WriteResult:
        """See :meth:`Backend.write`: one ``BEGIN IMMEDIATE`` transaction."""
        now = time.time_ns()
        with self._guard() as conn:
            if self._read_depth:
                raise RuntimeError("write() inside reading(): finish reading first")
            if self._exclusive_depth:
                # Preconditions are checked before anything is written, so a failed
                # write inside an exclusive block has nothing to undo.
                return self._write_locked(conn, objects, updates, require, now)
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = self._write_locked(conn, objects, updates, require, now)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT" if result.ok else "ROLLBACK")
            return result

    def _write_locked(
        self,
        conn: sqlite3.Connection,
        objects: Sequence[StoredObject],
        updates: Sequence[RefUpdate],
        require: Sequence[bytes],
        now_ns: int,
    ) -> WriteResult:
        for update in updates:
            row = conn.execute("SELECT id FROM refs WHERE name=?", (update.name,)).fetchone()
            current = row[0] if row else None
            if current != update.old:
                return WriteResult(ok=False, conflict=update.name, found=current)
        # One lookup: the required ids, the objects already stored, and the bases (a
        # delta names its base by row, so a base must be stored or come earlier here).
        named = [*require, *(o.id for o in objects)]
        named += [o.base for o in objects if o.base is not None]
        rows = dict(
            self._by_id("SELECT id, seq FROM objects WHERE substr(id, 1, 8) IN ({marks})", named)
        )
        missing = frozenset(oid for oid in require if oid not in rows)
        if missing:
            return WriteResult(ok=False, missing=missing)
        coming = set(rows)
        for o in objects:
            if o.base is not None and o.base not in coming:
                return WriteResult(ok=False, missing=frozenset({o.base}))
            coming.add(o.id)
        seconds = now_ns // 1_000_000_000
        # Re-storing an existing object refreshes its age, so a concurrent gc's grace
        # period protects an old object that a new commit has just started to use again.
        again = [rows[o.id] for o in objects if o.id in rows]
        if again:
            conn.executemany(
                "UPDATE objects SET created_at=? WHERE seq=?", [(seconds, seq) for seq in again]
            )
        for o in objects:
            if o.id not in rows:
                cursor = conn.execute(
                    "INSERT INTO objects(id, kind, codec, raw_len, created_at, data, base)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (o.id, o.kind, o.codec, o.raw_len, seconds, o.data,
                     None if o.base is None else rows[o.base]),
                )  # fmt: skip
                rows[o.id] = cast(int, cursor.lastrowid)
        for update in updates:
            if update.new is None:
                conn.execute("DELETE FROM refs WHERE name=?", (update.name,))
            else:
                conn.execute(
                    "INSERT INTO refs(name, id) VALUES (?, ?)"
                    " ON CONFLICT(name) DO UPDATE SET id=excluded.id",
                    (update.name, update.new),
                )
            conn.execute(
                "INSERT INTO reflog(name, old, new, at, message) VALUES (?, ?, ?, ?, ?)",
                (update.name, update.old, update.new, now_ns // 1000, update.message),
            )
        return WriteResult(ok=True)

    def delete_objects(self, ids: Sequence[bytes]) -> int:
        """See :meth:`Backend.delete_objects`."""
        deleted = 0
        with self._transaction() as conn:
            for start in range(0, len(ids), IN_BATCH):
                chunk = ids[start : start + IN_BATCH]
                marks = ",".join("?" * len(chunk))
                deleted += conn.execute(
                    f"DELETE FROM objects WHERE substr(id, 1, 8) IN ({marks}) AND id IN ({marks})",
                    [oid[:PREFIX] for oid in chunk] + list(chunk),
                ).rowcount
        return deleted

    def set_setting(self, key: str, value: str) -> None:
        """See :meth:`Backend.set_setting`."""
        with self._guard() as conn:
            conn.execute(
                "INSERT INTO settings(key, value) VALUES (?, ?)"
                " ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (key, value),
            )

    # --- write transactions ---------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``, or join the exclusive block in progress."""
        with self._guard() as conn:
            if self._read_depth:
                raise RuntimeError("writing inside reading(): finish reading first")
            if self._exclusive_depth:
                yield conn
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (POSIX needs the directory itself synced)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
