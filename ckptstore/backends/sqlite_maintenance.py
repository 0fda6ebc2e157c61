"""gc's, prune's and fsck's side of the SQLite store: :class:`SQLiteMaintenance`.

:class:`~ckptstore.backends.sqlite.SQLiteBackend` mixes it in: the exclusive block, ages,
reflog expiry, prune marks, gc's marks and sweep, space reclaim and usage.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Collection, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from ckptstore.backends.base import KindUsage, MarkSet, PruneMark, Usage
from ckptstore.backends.sqlite_marks import PythonMarks, SQLMarks
from ckptstore.backends.sqlite_schema import IN_BATCH, PRUNED

if TYPE_CHECKING:
    from ckptstore.backends.sqlite import SQLiteBackend

__all__ = ["MarkStrategy", "SQLiteMaintenance"]

MarkStrategy = Literal["sql", "python"]


class SQLiteMaintenance:
    """The maintenance methods of :class:`~ckptstore.backends.sqlite.SQLiteBackend`."""

    _path: Path
    _timeout: float
    _exclusive_depth: int
    _read_depth: int
    _has_pruned: bool

    if TYPE_CHECKING:  # defined by SQLiteBackend

        def _guard(self) -> AbstractContextManager[sqlite3.Connection]: ...

        def _transaction(self) -> AbstractContextManager[sqlite3.Connection]: ...

        def _select_in(self, sql: str, ids: Sequence[bytes]) -> list[Any]: ...

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        with self._transaction():
            self._exclusive_depth += 1
            try:
                yield
            finally:
                self._exclusive_depth -= 1

    def exclusive(self) -> AbstractContextManager[None]:
        """See :meth:`Backend.exclusive`: one ``BEGIN IMMEDIATE`` transaction."""
        return self._exclusive()

    def young_objects(self, since: int) -> list[bytes]:
        """See :meth:`Backend.young_objects`: a scan, as gc's sweep is one anyway."""
        with self._guard() as conn:
            rows = conn.execute("SELECT id FROM objects WHERE created_at >= ?", (since,))
            return [row[0] for row in rows]

    def drop_reflog(self, *, before: int | None = None, targets: Collection[bytes] = ()) -> int:
        """See :meth:`Backend.drop_reflog`."""
        dropped = 0
        wanted = list(dict.fromkeys(targets))
        with self._transaction() as conn:
            if before is not None:
                dropped += conn.execute("DELETE FROM reflog WHERE at < ?", (before,)).rowcount
            for start in range(0, len(wanted), IN_BATCH):
                chunk = wanted[start : start + IN_BATCH]
                marks = ",".join("?" * len(chunk))
                dropped += conn.execute(
                    f"DELETE FROM reflog WHERE new IN ({marks})", chunk
                ).rowcount
        return dropped

    def _pruned_exists(self, conn: sqlite3.Connection) -> bool:
        # Only a positive answer is cached: another process may create the table later.
        if not self._has_pruned:
            row = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='pruned'"
            ).fetchone()
            self._has_pruned = row is not None
        return self._has_pruned

    def prune_marks(self, ids: Sequence[bytes] | None = None) -> dict[bytes, PruneMark]:
        """See :meth:`Backend.prune_marks`."""
        sql = "SELECT id, parent_checkpoint, next, skipped FROM pruned"
        with self._guard() as conn:
            if not self._pruned_exists(conn):
                return {}
            if ids is None:
                rows = conn.execute(sql).fetchall()
            else:
                rows = self._select_in(sql + " WHERE id IN ({marks})", ids)
        return {row[0]: PruneMark(*row) for row in rows}

    def set_prune_marks(self, marks: Sequence[PruneMark], *, drop: Sequence[bytes] = ()) -> None:
        """See :meth:`Backend.set_prune_marks`."""
        with self._transaction() as conn:
            conn.execute(PRUNED)
            for start in range(0, len(drop), IN_BATCH):
                chunk = drop[start : start + IN_BATCH]
                conn.execute(
                    f"DELETE FROM pruned WHERE id IN ({','.join('?' * len(chunk))})", chunk
                )
            conn.executemany(
                "INSERT OR REPLACE INTO pruned(id, parent_checkpoint, next, skipped)"
                " VALUES (?, ?, ?, ?)",
                [(m.id, m.parent_checkpoint, m.next, m.skipped) for m in marks],
            )

    @contextmanager
    def _marks(self, strategy: MarkStrategy) -> Iterator[MarkSet]:
        marks: SQLMarks | PythonMarks
        backend = cast("SQLiteBackend", self)
        marks = SQLMarks(backend) if strategy == "sql" else PythonMarks(backend)
        try:
            yield marks
        finally:
            marks.close()

    def marks(self, *, strategy: MarkStrategy = "sql") -> AbstractContextManager[MarkSet]:
        """See :meth:`Backend.marks`.

        ``sql`` keeps the marks in a temporary table (memory bounded by SQLite's page
        cache; the sweep is one ``DELETE``); ``python`` keeps them in a Python set
        (``benchmarks/gc_scale.py`` compares the two).
        """
        return self._marks(strategy)

    def reclaim(self, *, compact: bool = False) -> None:
        """``PRAGMA incremental_vacuum`` (or, to ``compact``, ``VACUUM``), then checkpoint.

        The incremental vacuum returns the pages gc emptied. Rows deleted from pages
        that also hold live rows leave those pages partly empty, and only ``VACUUM``
        (a rewrite of the whole file) gives that space back. The checkpoint gives up
        after a second if readers hold old snapshots; the file then shrinks at a later
        checkpoint.
        """
        with self._guard() as conn:
            if self._exclusive_depth or self._read_depth:
                raise RuntimeError("reclaim() inside a transaction")
            # executescript steps the pragma to completion (execute frees one page only).
            conn.executescript("VACUUM;" if compact else "PRAGMA incremental_vacuum;")
            conn.execute("PRAGMA busy_timeout = 1000")
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            finally:
                conn.execute(f"PRAGMA busy_timeout = {int(self._timeout * 1000)}")

    def usage(self) -> Usage:
        """See :meth:`Backend.usage`: one scan of the objects table; file and WAL sizes."""
        with self._guard() as conn:
            rows = conn.execute(
                "SELECT kind, count(*), sum(length(data)), sum(raw_len) FROM objects"
                " GROUP BY kind ORDER BY kind"
            ).fetchall()
        disk = sum(
            os.stat(f"{self._path}{suffix}").st_size
            for suffix in ("", "-wal")
            if os.path.exists(f"{self._path}{suffix}")
        )
        return Usage({kind: KindUsage(n, stored, raw) for kind, n, stored, raw in rows}, disk)
