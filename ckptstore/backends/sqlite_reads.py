"""The read side of the SQLite store: :class:`SQLiteReads`.

:class:`~ckptstore.backends.sqlite.SQLiteBackend` mixes it in: the read transaction,
objects read by id, by chain, by range and in storage order, and refs, the reflog and
settings read. Writes, and the connection's lifecycle, stay in
:mod:`~ckptstore.backends.sqlite`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any, Final, cast

from ckptstore.backends.base import ReflogEntry, StoredObject
from ckptstore.backends.sqlite_scan import scan_objects
from ckptstore.backends.sqlite_schema import PREFIX

if TYPE_CHECKING:
    from ckptstore.backends.sqlite import SQLiteBackend

__all__ = ["SQLiteReads"]

_CHAIN_LIMIT: Final = 256  # links followed per chain: ends a loop in a damaged store


class SQLiteReads:
    """The read methods of :class:`~ckptstore.backends.sqlite.SQLiteBackend`."""

    _exclusive_depth: int
    _read_depth: int

    if TYPE_CHECKING:  # defined by SQLiteBackend

        def _guard(self) -> AbstractContextManager[sqlite3.Connection]: ...

        def _select_in(self, sql: str, ids: Sequence[bytes]) -> list[Any]: ...

        def _by_id(self, sql: str, ids: Sequence[bytes]) -> list[Any]: ...

    # --- the read transaction -------------------------------------------------------

    @contextmanager
    def _reading(self) -> Iterator[None]:
        with self._guard() as conn:
            if self._read_depth == 0 and not self._exclusive_depth:
                conn.execute("BEGIN")
            self._read_depth += 1
            try:
                yield
            finally:
                self._read_depth -= 1
                if self._read_depth == 0 and not self._exclusive_depth:
                    conn.execute("COMMIT")

    def reading(self) -> AbstractContextManager[None]:
        """A read transaction: all reads inside see one snapshot of the store."""
        return self._reading()

    # --- objects --------------------------------------------------------------------

    def get_objects(self, ids: Sequence[bytes]) -> dict[bytes, StoredObject]:
        """See :meth:`Backend.get_objects`."""
        rows = self._by_id(
            "SELECT o.id, o.kind, o.codec, o.raw_len, o.data, b.id FROM objects o"
            " LEFT JOIN objects b ON b.seq = o.base WHERE substr(o.id, 1, 8) IN ({marks})",
            ids,
        )
        return {row[0]: StoredObject(*row) for row in rows}

    def get_chains(self, ids: Sequence[bytes]) -> dict[bytes, StoredObject]:
        """See :meth:`Backend.get_chains`. One recursive query per batch of ids.

        Bases are followed by row number; each base's id is read off the chain's own
        rows (a base whose row is missing is reported as no base).
        """
        rows = self._select_in(
            "WITH RECURSIVE chain(seq, id, kind, codec, raw_len, data, base, n) AS ("
            "SELECT seq, id, kind, codec, raw_len, data, base, 0 FROM objects"
            " WHERE substr(id, 1, 8) IN ({marks})"
            " UNION ALL SELECT o.seq, o.id, o.kind, o.codec, o.raw_len, o.data, o.base,"
            " chain.n + 1 FROM chain JOIN objects o ON o.seq = chain.base"
            f" WHERE chain.n < {_CHAIN_LIMIT})"
            " SELECT seq, id, kind, codec, raw_len, data, base FROM chain",
            list(dict.fromkeys(oid[:PREFIX] for oid in ids)),
        )
        by_seq = {row[0]: row for row in rows}
        id_of = {seq: row[1] for seq, row in by_seq.items()}
        beyond = {row[6] for row in rows if row[6] is not None and row[6] not in by_seq}
        if beyond:  # where a chain was cut at _CHAIN_LIMIT (or its base is missing)
            sql = "SELECT seq, id FROM objects WHERE seq IN ({marks})"
            id_of.update(self._select_in(sql, list(beyond)))
        wanted = set(ids)
        out: dict[bytes, StoredObject] = {}
        todo = [row for row in rows if row[1] in wanted]  # not a prefix's other ids
        while todo:
            _, oid, kind, codec, raw_len, data, base = todo.pop()
            if oid not in out:
                out[oid] = StoredObject(oid, kind, codec, raw_len, data, id_of.get(base))
                if base in by_seq:
                    todo.append(by_seq[base])
        return out

    def has_objects(self, ids: Sequence[bytes]) -> set[bytes]:
        """See :meth:`Backend.has_objects`."""
        rows = self._by_id("SELECT id FROM objects WHERE substr(id, 1, 8) IN ({marks})", ids)
        return {row[0] for row in rows}

    def find_objects(self, low: bytes, high: bytes, limit: int) -> list[tuple[bytes, int]]:
        """See :meth:`Backend.find_objects` (ids in range have prefixes in range)."""
        with self._guard() as conn:
            return conn.execute(
                "SELECT id, kind FROM objects WHERE substr(id, 1, 8) BETWEEN ? AND ?"
                " AND id BETWEEN ? AND ? ORDER BY id LIMIT ?",
                (low[:PREFIX], high[:PREFIX], low, high, limit),
            ).fetchall()

    def iter_ids(self) -> Iterator[bytes]:
        """See :meth:`Backend.iter_ids`. Pages by row, so it tolerates concurrent deletes."""
        last = 0
        while True:
            with self._guard() as conn:
                page = conn.execute(
                    "SELECT seq, id FROM objects WHERE seq > ? ORDER BY seq LIMIT 10000", (last,)
                ).fetchall()
            if not page:
                return
            yield from (oid for _, oid in page)
            last = page[-1][0]

    def scan_objects(self) -> Iterator[tuple[StoredObject, int]]:
        """See :meth:`Backend.scan_objects`. Pages by row number (the order of storing)."""
        return scan_objects(cast("SQLiteBackend", self))

    def size_hint(self) -> int:
        """See :meth:`Backend.size_hint`: the highest row number, an index lookup."""
        with self._guard() as conn:
            (top,) = conn.execute("SELECT coalesce(max(seq), 0) FROM objects").fetchone()
        return int(top)

    def recent_objects(self, limit: int, *, max_raw_len: int) -> list[StoredObject]:
        """See :meth:`Backend.recent_objects`."""
        with self._guard() as conn:
            rows = conn.execute(
                "SELECT o.id, o.kind, o.codec, o.raw_len, o.data, b.id FROM objects o"
                " LEFT JOIN objects b ON b.seq = o.base"
                " WHERE o.raw_len <= ? AND o.kind IN (1, 3) ORDER BY o.seq DESC LIMIT ?",
                (max_raw_len, limit),
            ).fetchall()
        return [StoredObject(*row) for row in rows]

    # --- refs, reflog, settings ---------------------------------------------------------

    def get_ref(self, name: str) -> bytes | None:
        """See :meth:`Backend.get_ref`."""
        with self._guard() as conn:
            row = conn.execute("SELECT id FROM refs WHERE name=?", (name,)).fetchone()
        return row[0] if row else None

    def list_refs(self, prefix: str = "") -> dict[str, bytes]:
        """See :meth:`Backend.list_refs`."""
        with self._guard() as conn:
            rows = conn.execute(
                "SELECT name, id FROM refs WHERE substr(name, 1, ?) = ? ORDER BY name",
                (len(prefix), prefix),
            ).fetchall()
        return dict(rows)

    def reflog(
        self, name: str | None = None, *, limit: int | None = None, since: int | None = None
    ) -> list[ReflogEntry]:
        """See :meth:`Backend.reflog`."""
        sql = "SELECT seq, name, old, new, at, message FROM reflog WHERE 1"
        args: list[object] = []
        if name is not None:
            sql += " AND name=?"
            args.append(name)
        if since is not None:
            sql += " AND at>=?"
            args.append(since)
        sql += " ORDER BY seq DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        with self._guard() as conn:
            rows = conn.execute(sql, args).fetchall()
        return [ReflogEntry(*row) for row in rows]

    def get_setting(self, key: str) -> str | None:
        """See :meth:`Backend.get_setting`."""
        with self._guard() as conn:
            row = conn.execute("SELECT value FROM settings WHERE key=?", (key,)).fetchone()
        return row[0] if row else None
