"""Every object of a SQLite store in storage order, with how many are stored against it.

:meth:`SQLiteBackend.scan_objects <ckptstore.backends.sqlite.SQLiteBackend.scan_objects>`
hands this out for fsck, which verifies each object once, a base before the objects
stored against it, and keeps a base's bytes only until its last dependent is verified.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Final

from ckptstore.backends.base import StoredObject
from ckptstore.errors import CkptError

if TYPE_CHECKING:
    from ckptstore.backends.sqlite import SQLiteBackend

__all__ = ["scan_objects"]

_PAGE: Final = 500  # rows per query: a page of payloads in memory, not the table
_names = itertools.count()  # one temporary table per scan, so scans may overlap


def scan_objects(backend: SQLiteBackend) -> Iterator[tuple[StoredObject, int]]:
    """See :meth:`Backend.scan_objects`.

    The counts go to a temporary table first (one pass; SQLite sorts them on disk, so
    memory stays bounded at any size), then the rows are paged by row number, which is
    the order objects were first stored in.
    """
    table = f"temp.scan_dependents_{next(_names)}"
    with backend._guard() as conn:
        conn.execute(f"CREATE TABLE {table}(seq INTEGER PRIMARY KEY, n INTEGER NOT NULL)")
        conn.execute(
            f"INSERT INTO {table}(seq, n)"
            " SELECT base, count(*) FROM objects WHERE base IS NOT NULL GROUP BY base"
        )
    try:
        last = 0
        while True:
            with backend._guard() as conn:
                rows = conn.execute(
                    "SELECT o.seq, o.id, o.kind, o.codec, o.raw_len, o.data, b.id,"
                    f" coalesce(d.n, 0) FROM objects o LEFT JOIN {table} d ON d.seq = o.seq"
                    " LEFT JOIN objects b ON b.seq = o.base"
                    " WHERE o.seq > ? ORDER BY o.seq LIMIT ?",
                    (last, _PAGE),
                ).fetchall()
            if not rows:
                return
            for _, *stored, dependents in rows:
                yield StoredObject(*stored), dependents
            last = rows[-1][0]
    finally:
        try:
            with backend._guard() as conn:
                conn.execute(f"DROP TABLE IF EXISTS {table}")
        except CkptError:
            pass  # the connection is gone, and its temporary tables with it
