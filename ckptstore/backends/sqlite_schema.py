"""The SQLite store's file format: its schema, and the upgrade of older formats.

Format 1 stored every object whole; format 2 added ``objects.base``, the id of the object
a row is compressed against; format 3 names that base by row and finds ids through an
index of their first 8 bytes (:mod:`ckptstore.backends.sqlite` has the schema and why).
"""

from __future__ import annotations

import sqlite3
from typing import Final

__all__ = [
    "APPLICATION_ID",
    "BY_ID",
    "FORMAT_VERSION",
    "IN_BATCH",
    "OBJECTS_TABLE",
    "PREFIX",
    "PRUNED",
    "SCHEMA",
    "upgrade",
]

FORMAT_VERSION: Final = 3  # 2: objects.base; 3: bases by row, ids indexed by prefix
APPLICATION_ID: Final = 0x636B7074  # "ckpt": lets us tell our files from other SQLite files
IN_BATCH: Final = 500  # ids per IN (...) query, well under SQLite's variable limit

OBJECTS_TABLE: Final = """
CREATE TABLE {name}(
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id BLOB NOT NULL,
    kind INTEGER NOT NULL,
    codec INTEGER NOT NULL,
    raw_len INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    data BLOB NOT NULL,
    base INTEGER
)"""
BY_ID: Final = "CREATE INDEX objects_by_id ON objects(substr(id, 1, 8))"
PREFIX: Final = 8  # bytes of an id in objects_by_id: the SQL above spells it too

SCHEMA: Final = f"""
CREATE TABLE settings(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
{OBJECTS_TABLE.format(name="objects")};
{BY_ID};
CREATE TABLE refs(name TEXT PRIMARY KEY, id BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE reflog(
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    old BLOB,
    new BLOB,
    at INTEGER NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX reflog_by_name ON reflog(name, seq);
"""
# Separate from SCHEMA so stores created before prune existed get it when first pruned.

PRUNED: Final = """
CREATE TABLE IF NOT EXISTS pruned(
    id BLOB PRIMARY KEY,
    parent_checkpoint TEXT NOT NULL,
    next BLOB,
    skipped INTEGER NOT NULL
) WITHOUT ROWID
"""


def upgrade(conn: sqlite3.Connection, busy_timeout: float) -> None:
    """Format 1 or 2 → 3, in one transaction: the objects are copied into the new layout.

    Each base id becomes the base's row; where the base is missing (a damaged store) the
    row is 0, which no object has, so the damage is still reported. The unique index of
    ids becomes an index of their prefixes, and the index of ages goes.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        (found,) = conn.execute("SELECT value FROM settings WHERE key='format_version'").fetchone()
        if int(found) < FORMAT_VERSION:  # not done meanwhile by another process
            columns = {row[1] for row in conn.execute("PRAGMA table_info(objects)")}
            base, join = "NULL", ""
            if "base" in columns:
                base = "CASE WHEN o.base IS NULL THEN NULL ELSE coalesce(b.seq, 0) END"
                join = "LEFT JOIN objects b ON b.id = o.base"
            conn.execute(OBJECTS_TABLE.format(name="objects_v3"))
            conn.execute(
                "INSERT INTO objects_v3(seq, id, kind, codec, raw_len, created_at, data, base)"
                " SELECT o.seq, o.id, o.kind, o.codec, o.raw_len, o.created_at, o.data,"
                f" {base} FROM objects o {join} ORDER BY o.seq"
            )
            conn.execute("DROP TABLE objects")
            conn.execute("ALTER TABLE objects_v3 RENAME TO objects")
            conn.execute(BY_ID)
            conn.execute(
                "UPDATE settings SET value=? WHERE key='format_version'", (str(FORMAT_VERSION),)
            )
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    # The old table's pages are free now: give them back, and empty the WAL the copy
    # filled (about the size of the store), as gc's reclaim does.
    conn.executescript("PRAGMA incremental_vacuum;")
    conn.execute("PRAGMA busy_timeout = 1000")  # readers of old snapshots: truncate later
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
