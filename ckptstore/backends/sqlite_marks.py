"""Where gc keeps its marks in a SQLite store: a temporary table, or a Python set.

:meth:`SQLiteBackend.marks <ckptstore.backends.sqlite.SQLiteBackend.marks>` hands out
one of these; ``benchmarks/gc_scale.py`` measures both (``docs/maintenance.md``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from ckptstore.backends.base import Swept
from ckptstore.backends.sqlite_schema import IN_BATCH

if TYPE_CHECKING:
    from ckptstore.backends.sqlite import SQLiteBackend

__all__ = ["PythonMarks", "SQLMarks"]


def _sweeping(backend: SQLiteBackend, dry_run: bool) -> AbstractContextManager[sqlite3.Connection]:
    """A write transaction for a sweep; a dry run only reads."""
    return backend._guard() if dry_run else backend._transaction()


class SQLMarks:
    """Marks in a temporary table: memory stays bounded however many objects there are."""

    def __init__(self, backend: SQLiteBackend) -> None:
        self._backend = backend
        with backend._guard() as conn:
            conn.execute(
                "CREATE TEMP TABLE IF NOT EXISTS gc_marked(id BLOB PRIMARY KEY) WITHOUT ROWID"
            )
            conn.execute("DELETE FROM temp.gc_marked")

    def close(self) -> None:
        """Drop the temporary table."""
        with self._backend._guard() as conn:
            conn.execute("DROP TABLE IF EXISTS temp.gc_marked")

    def add(self, ids: Iterable[bytes]) -> list[bytes]:
        """See :meth:`MarkSet.add`."""
        wanted = list(dict.fromkeys(ids))
        new: list[bytes] = []
        with self._backend._guard() as conn:
            for start in range(0, len(wanted), IN_BATCH):
                chunk = wanted[start : start + IN_BATCH]
                marks = ",".join("?" * len(chunk))
                known = {
                    row[0]
                    for row in conn.execute(
                        f"SELECT id FROM temp.gc_marked WHERE id IN ({marks})", chunk
                    )
                }
                fresh = [oid for oid in chunk if oid not in known]
                conn.executemany("INSERT INTO temp.gc_marked(id) VALUES (?)", [(i,) for i in fresh])
                new.extend(fresh)
        return new

    def sweep(self, before: int, *, dry_run: bool = False) -> Swept:
        """See :meth:`MarkSet.sweep`: the unmarked rows, gathered in SQL, then deleted."""
        with _sweeping(self._backend, dry_run) as conn:
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS gc_doomed(seq INTEGER PRIMARY KEY)")
            conn.execute("DELETE FROM temp.gc_doomed")
            conn.execute(
                "INSERT INTO temp.gc_doomed SELECT seq FROM objects WHERE +created_at < ?"
                " AND id NOT IN (SELECT id FROM temp.gc_marked)",
                (before,),
            )
            count, size = conn.execute(
                "SELECT count(*), coalesce(sum(length(o.data)), 0)"
                " FROM temp.gc_doomed AS d JOIN objects AS o ON o.seq = d.seq"
            ).fetchone()
            if not dry_run and count:
                # In rowid order, so each table page is visited once (measured: about
                # twice as fast as deleting in id order).
                conn.execute("DELETE FROM objects WHERE seq IN (SELECT seq FROM temp.gc_doomed)")
            conn.execute("DELETE FROM temp.gc_doomed")
        return Swept(count, size)


class PythonMarks:
    """Marks in a Python set (about 150 bytes per marked object; faster, unbounded)."""

    def __init__(self, backend: SQLiteBackend) -> None:
        self._backend = backend
        self._marked: set[bytes] = set()

    def close(self) -> None:
        """Forget the marks."""
        self._marked.clear()

    def add(self, ids: Iterable[bytes]) -> list[bytes]:
        """See :meth:`MarkSet.add`."""
        new = [oid for oid in dict.fromkeys(ids) if oid not in self._marked]
        self._marked.update(new)
        return new

    def sweep(self, before: int, *, dry_run: bool = False) -> Swept:
        """See :meth:`MarkSet.sweep`: scan the ids, delete the unmarked in batches."""
        backend = self._backend
        count = size = 0
        with _sweeping(backend, dry_run) as conn:
            doomed = [  # rowids, in rowid order: each table page is visited once
                seq
                for seq, oid in conn.execute(
                    "SELECT seq, id FROM objects WHERE +created_at < ?", (before,)
                )
                if oid not in self._marked
            ]
            for start in range(0, len(doomed), IN_BATCH):
                chunk = doomed[start : start + IN_BATCH]
                marks = ",".join("?" * len(chunk))
                n, stored = conn.execute(
                    "SELECT count(*), coalesce(sum(length(data)), 0) FROM objects"
                    f" WHERE seq IN ({marks})",
                    chunk,
                ).fetchone()
                count, size = count + n, size + stored
                if not dry_run:
                    conn.execute(f"DELETE FROM objects WHERE seq IN ({marks})", chunk)
        return Swept(count, size)
