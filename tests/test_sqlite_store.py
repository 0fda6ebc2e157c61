"""The store file on disk: refusing files it must not touch, init, durability, integrity."""

from __future__ import annotations

import os
import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pytest

from ckptstore import (
    CkptError,
    CorruptObject,
    ObjectNotFound,
    Store,
    StoreBusy,
    StoreExists,
    StoreNotFound,
    StoreNotWritable,
    UnsupportedFormat,
)
from ckptstore.backends.base import StoredObject
from ckptstore.backends.sqlite import APPLICATION_ID, FORMAT_VERSION, Durability, SQLiteBackend
from ckptstore.compression import RAW, ZSTD
from ckptstore.location import STORE_FILE

SYNC_NORMAL, SYNC_FULL = 1, 2


def state() -> dict[str, Any]:
    tasks = [
        {"id": str(i), "subject": f"task {i}", "status": "pending", "owner": None,
         "blocks": [], "blocked_by": []}
        for i in range(12)
    ]  # fmt: skip
    return {"tasks": tasks, "variables": {"log": "all work and no play " * 300, "step": 3}}


@contextmanager
def raw_db(path: Path) -> Iterator[sqlite3.Connection]:
    """A plain sqlite3 connection that commits on success and always closes."""
    with closing(sqlite3.connect(path)) as conn, conn:
        yield conn


def files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def object_rows(db: Path) -> list[tuple[bytes, int, int, int, bytes]]:
    with raw_db(db) as conn:
        return conn.execute("SELECT id, kind, codec, raw_len, data FROM objects").fetchall()


@pytest.fixture
def filled(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """A closed store with one checkpoint (every object reachable), and that checkpoint."""
    directory = tmp_path / ".ckpt"
    with Store.init(directory) as store:
        store.commit(state(), session="main")
        expected = store.load()
    return directory, expected


# --- files that are not (readable) stores ----------------------------------------------


@pytest.mark.parametrize("version", ["999", str(FORMAT_VERSION + 1), "1.5", "abc", None])
def test_newer_or_unknown_format_is_refused_and_nothing_is_written(
    filled: tuple[Path, dict[str, Any]], version: str | None
) -> None:
    directory, _ = filled
    with raw_db(directory / STORE_FILE) as conn:
        if version is None:
            conn.execute("DELETE FROM settings WHERE key='format_version'")
        else:
            conn.execute("UPDATE settings SET value=? WHERE key='format_version'", (version,))
    before = files(directory)
    assert list(before) == [STORE_FILE]
    with pytest.raises(UnsupportedFormat) as caught:
        Store.open(directory)
    assert caught.value.found == (version or "unknown")
    assert caught.value.supported == FORMAT_VERSION
    assert "nothing was written" in str(caught.value)
    assert files(directory) == before  # same bytes, and no -wal / -shm left behind


def test_newer_format_with_a_live_wal_leaves_the_wal_untouched(
    filled: tuple[Path, dict[str, Any]],
) -> None:
    directory, _ = filled
    db = directory / STORE_FILE
    with closing(sqlite3.connect(db, isolation_level=None)) as holder:
        holder.execute("PRAGMA wal_autocheckpoint=0")
        holder.execute("UPDATE settings SET value='999' WHERE key='format_version'")
        wal = Path(f"{db}-wal")
        assert wal.stat().st_size > 0
        before = {name: data for name, data in files(directory).items() if "-shm" not in name}
        with pytest.raises(UnsupportedFormat):
            Store.open(directory)
        after = {name: data for name, data in files(directory).items() if "-shm" not in name}
        assert after == before


@pytest.mark.parametrize(
    "content",
    [b"", b"hello, I am a text file\n", bytes(range(256)) * 40],
    ids=["empty", "text", "binary"],
)
def test_a_non_sqlite_store_file_is_not_a_store(tmp_path: Path, content: bytes) -> None:
    directory = tmp_path / ".ckpt"
    directory.mkdir()
    (directory / STORE_FILE).write_bytes(content)
    with pytest.raises(StoreNotFound) as caught:
        Store.open(directory)
    assert "not a ckptstore store" in str(caught.value)
    assert str(directory) in str(caught.value)
    assert files(directory) == {STORE_FILE: content}


@pytest.mark.parametrize("journal", ["delete", "wal"])
def test_another_apps_sqlite_file_is_not_a_store(tmp_path: Path, journal: str) -> None:
    directory = tmp_path / ".ckpt"
    directory.mkdir()
    db = directory / STORE_FILE
    with raw_db(db) as conn:
        conn.execute(f"PRAGMA journal_mode={journal}")
        conn.execute("PRAGMA application_id=42")
        conn.execute("CREATE TABLE settings(key TEXT PRIMARY KEY, value TEXT)")
        conn.execute("INSERT INTO settings VALUES ('format_version', '1')")
    before = files(directory)
    with pytest.raises(StoreNotFound) as caught:
        Store.open(directory)
    assert "not a ckptstore store" in str(caught.value)
    assert "ckpt init" in str(caught.value)
    assert files(directory) == before


def page_size(header: bytes) -> int:
    """The page size an SQLite file header declares (1 stands for 65536)."""
    size = int.from_bytes(header[16:18], "big")
    return 65536 if size == 1 else size


DAMAGE: dict[str, Callable[[bytes], bytes]] = {
    "truncate-header": lambda data: data[:60],
    "truncate-first-page": lambda data: data[: page_size(data)],
    "truncate-half": lambda data: data[: len(data) // 2],
    "truncate-last-page": lambda data: data[: -page_size(data)],
    "garbage": lambda data: random.Random(1).randbytes(len(data)),
    "garbage-after-header": lambda data: data[:100] + random.Random(2).randbytes(len(data) - 100),
}


def read_everything(directory: Path) -> dict[str, Any] | CkptError:
    """Open, load, log and list; return the checkpoint or the ckptstore error raised.

    Any other exception (a raw ``sqlite3.Error`` above all) propagates and fails the test.
    """
    try:
        with Store.open(directory) as store:
            loaded = store.load()
            store.log(limit=None)
            store.sessions()
    except CkptError as err:
        return err
    return loaded


@pytest.mark.parametrize("how", list(DAMAGE))
def test_a_damaged_store_file_raises_a_ckptstore_error(
    filled: tuple[Path, dict[str, Any]], how: str
) -> None:
    directory, expected = filled
    db = directory / STORE_FILE
    db.write_bytes(DAMAGE[how](db.read_bytes()))
    outcome = read_everything(directory)
    if isinstance(outcome, CkptError):
        assert str(outcome)
    else:
        assert outcome == expected  # no error is fine only with exactly the right data


def test_a_zeroed_page_anywhere_gives_an_error_or_the_right_data(
    filled: tuple[Path, dict[str, Any]],
) -> None:
    directory, expected = filled
    db = directory / STORE_FILE
    pristine = db.read_bytes()
    page = page_size(pristine)
    errors = 0
    for start in range(page, len(pristine), page):
        db.write_bytes(pristine[:start] + bytes(page) + pristine[start + page :])
        outcome = read_everything(directory)
        if isinstance(outcome, CkptError):
            errors += 1
        else:
            assert outcome == expected, f"wrong data with page {start // page} zeroed"
    assert errors > 0


def test_a_missing_store_file_is_store_not_found(tmp_path: Path) -> None:
    directory = tmp_path / ".ckpt"
    directory.mkdir()
    with pytest.raises(StoreNotFound):
        Store.open(directory)
    assert list(directory.iterdir()) == []


# --- init -------------------------------------------------------------------------------


def test_init_leaves_only_the_store_file(tmp_path: Path) -> None:
    directory = tmp_path / ".ckpt"
    with Store.init(directory) as store:
        assert store.path == directory
        names = {p.name for p in directory.iterdir()}
        assert names <= {STORE_FILE, f"{STORE_FILE}-wal", f"{STORE_FILE}-shm"}
    assert [p.name for p in directory.iterdir()] == [STORE_FILE]
    with raw_db(directory / STORE_FILE) as conn:
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_init_twice_raises_store_exists_and_keeps_the_store(
    filled: tuple[Path, dict[str, Any]],
) -> None:
    directory, expected = filled
    before = files(directory)
    with pytest.raises(StoreExists) as caught:
        Store.init(directory)
    assert str(directory) in str(caught.value)
    assert files(directory) == before
    with Store.open(directory) as store:
        assert store.load() == expected


def test_init_that_fails_midway_leaves_no_trace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / ".ckpt"

    def refuse(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(os, "link", refuse)
        with pytest.raises(StoreNotWritable):
            Store.init(directory)
    assert list(directory.iterdir()) == []
    Store.init(directory).close()
    assert [p.name for p in directory.iterdir()] == [STORE_FILE]


def test_creating_a_store_file_over_an_existing_store_keeps_the_store(
    filled: tuple[Path, dict[str, Any]],
) -> None:
    """What a racing ``init`` does after its existence check: it must not clobber the store."""
    directory, expected = filled
    before = files(directory)
    with pytest.raises(StoreExists):
        SQLiteBackend.create(directory / STORE_FILE)
    assert files(directory) == before
    with Store.open(directory) as store:
        assert store.load() == expected


# --- durability --------------------------------------------------------------------------


def synchronous(store: Store) -> int:
    backend = store.backend
    assert isinstance(backend, SQLiteBackend)
    return int(backend._conn.execute("PRAGMA synchronous").fetchone()[0])


@pytest.mark.parametrize(
    ("given", "recorded", "override"),
    [("fast", "fast", "full"), ("full", "full", "fast"), (None, "full", "fast")],
)
def test_durability_is_recorded_and_honoured(
    tmp_path: Path, given: Durability | None, recorded: Durability, override: Durability
) -> None:
    directory = tmp_path / ".ckpt"
    pragma = {"fast": SYNC_NORMAL, "full": SYNC_FULL}
    with Store.init(directory, **({"durability": given} if given else {})) as store:
        assert store.backend.get_setting("durability") == recorded
        assert synchronous(store) == pragma[recorded]
    with Store.open(directory) as store:
        assert synchronous(store) == pragma[recorded]
    with Store.open(directory, durability=override) as store:
        assert synchronous(store) == pragma[override]
        assert store.backend.get_setting("durability") == recorded


# --- locking ------------------------------------------------------------------------------


@contextmanager
def write_lock(db: Path) -> Iterator[None]:
    """Another process's open write transaction on the store file (uncommitted)."""
    with closing(sqlite3.connect(db, isolation_level=None)) as holder:
        holder.execute("BEGIN IMMEDIATE")
        holder.execute("INSERT INTO settings(key, value) VALUES ('pending', 'x')")
        try:
            yield
        finally:
            holder.execute("ROLLBACK")


def test_busy_timeout_comes_from_the_environment_and_a_busy_commit_writes_nothing(
    filled: tuple[Path, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    directory, expected = filled
    monkeypatch.setenv("CKPT_BUSY_TIMEOUT", "0.25")
    with Store.open(directory) as store:
        head = store.resolve("HEAD")
        count = len(list(store.backend.iter_ids()))
        with write_lock(directory / STORE_FILE):
            began = time.monotonic()
            with pytest.raises(StoreBusy) as caught:
                store.commit(variables={"step": 4})
            waited = time.monotonic() - began
        assert caught.value.timeout == pytest.approx(0.25)
        assert 0.2 <= waited < 5
        assert "CKPT_BUSY_TIMEOUT" in str(caught.value)
        assert store.resolve("HEAD") == head
        assert len(list(store.backend.iter_ids())) == count
        assert store.load() == expected
        store.commit(variables={"step": 4})
        assert store.load()["variables"]["step"] == 4


def test_readers_are_not_blocked_by_a_writer(filled: tuple[Path, dict[str, Any]]) -> None:
    directory, expected = filled
    with Store.open(directory) as store, write_lock(directory / STORE_FILE):
        began = time.monotonic()
        assert store.load() == expected
        assert len(store.log(limit=None)) == 1
        assert time.monotonic() - began < 2


# --- objects at rest: compressed, verified on every read ---------------------------------


def test_compressible_objects_are_stored_compressed(filled: tuple[Path, dict[str, Any]]) -> None:
    directory, _ = filled
    rows = object_rows(directory / STORE_FILE)
    assert {codec for _, _, codec, _, _ in rows} <= {RAW, ZSTD}
    compressed = [row for row in rows if row[2] == ZSTD]
    assert compressed, "the 6 KB repetitive variable should have been compressed"
    assert all(raw_len > len(data) for _, _, _, raw_len, data in compressed)
    assert all(raw_len == len(data) for _, _, codec, raw_len, data in rows if codec == RAW)


def all_object_ids(db: Path) -> list[bytes]:
    return [row[0] for row in object_rows(db)]


def test_every_read_reverifies_a_flipped_byte(filled: tuple[Path, dict[str, Any]]) -> None:
    directory, expected = filled
    db = directory / STORE_FILE
    ids = all_object_ids(db)
    assert len(ids) >= 5  # commit, root, sections, the large variable
    for oid in ids:
        with raw_db(db) as conn:
            (original,) = conn.execute("SELECT data FROM objects WHERE id=?", (oid,)).fetchone()
            broken = bytearray(original or b"\x00")
            broken[len(broken) // 2] ^= 0x20
            conn.execute("UPDATE objects SET data=? WHERE id=?", (bytes(broken), oid))
        with Store.open(directory) as store, pytest.raises(CorruptObject) as caught:
            store.load()
        assert caught.value.object_id == oid.hex()
        assert oid.hex() in str(caught.value)
        with raw_db(db) as conn:
            conn.execute("UPDATE objects SET data=? WHERE id=?", (original, oid))
    with Store.open(directory) as store:
        assert store.load() == expected


@pytest.mark.parametrize(
    ("column", "change"),
    [("kind", "kind + 7"), ("raw_len", "raw_len + 1"), ("codec", "1 - codec")],
)
def test_a_damaged_object_header_is_caught(
    filled: tuple[Path, dict[str, Any]], column: str, change: str
) -> None:
    directory, expected = filled
    db = directory / STORE_FILE
    with Store.open(directory) as store:
        head = bytes.fromhex(store.resolve("HEAD"))
        tree = bytes.fromhex(store.get_commit().tree)
    for oid in (head, tree):
        with raw_db(db) as conn:
            query = f"SELECT {column} FROM objects WHERE id=?"
            (original,) = conn.execute(query, (oid,)).fetchone()
            conn.execute(f"UPDATE objects SET {column} = {change} WHERE id=?", (oid,))
        with Store.open(directory) as store, pytest.raises(CorruptObject) as caught:
            store.load()
        assert caught.value.object_id == oid.hex()
        with raw_db(db) as conn:
            conn.execute(f"UPDATE objects SET {column} = ? WHERE id=?", (original, oid))
    with Store.open(directory) as store:
        assert store.load() == expected


def test_a_deleted_object_row_is_object_not_found(filled: tuple[Path, dict[str, Any]]) -> None:
    directory, expected = filled
    db = directory / STORE_FILE
    for oid in all_object_ids(db):
        with raw_db(db) as conn:
            row = conn.execute("SELECT * FROM objects WHERE id=?", (oid,)).fetchone()
            conn.execute("DELETE FROM objects WHERE id=?", (oid,))
        with Store.open(directory) as store, pytest.raises(ObjectNotFound) as caught:
            store.load()
        assert caught.value.object_id == oid.hex()
        assert oid.hex() in str(caught.value)
        with raw_db(db) as conn:
            conn.execute(f"INSERT INTO objects VALUES ({','.join('?' * len(row))})", row)
    with Store.open(directory) as store:
        assert store.load() == expected


def _object(oid: bytes, base: bytes | None = None) -> StoredObject:
    return StoredObject(oid, 1, 0 if base is None else 3, 1, b"d", base)


def _opened(tmp_path: Path) -> SQLiteBackend:
    SQLiteBackend.create(tmp_path / STORE_FILE)
    return SQLiteBackend.open(tmp_path / STORE_FILE)


def test_ids_that_share_their_indexed_prefix_are_told_apart(tmp_path: Path) -> None:
    # The index holds the first 8 bytes of an id; every read compares the whole id.
    one, two, three, four = (b"\x07" * 8 + bytes([n]) * 24 for n in (1, 2, 3, 4))
    backend = _opened(tmp_path)
    assert backend.write([_object(one), _object(two), _object(four, two)]).ok
    assert backend.has_objects([one, three, four]) == {one, four}
    assert backend.get_objects([two]) == {two: _object(two)}
    assert backend.get_chains([four]) == {four: _object(four, two), two: _object(two)}
    assert backend.find_objects(one, two, 10) == [(one, 1), (two, 1)]
    assert backend.write([_object(three), _object(one)]).ok  # one again, three new
    assert backend.delete_objects([one]) == 1
    assert backend.has_objects([one, two, three]) == {two, three}
    backend.close()


def test_a_loop_of_bases_in_a_damaged_file_still_ends(tmp_path: Path) -> None:
    one, two, three, own = (bytes([n]) * 32 for n in (1, 2, 3, 8))
    backend = _opened(tmp_path)
    assert backend.write([_object(one), _object(two, one), _object(three, two), _object(own)]).ok
    with raw_db(tmp_path / STORE_FILE) as conn:  # 1 <- 2 <- 3 <- 1, and 8 its own base
        seq = dict(conn.execute("SELECT id, seq FROM objects").fetchall())
        conn.execute("UPDATE objects SET base=? WHERE seq=?", (seq[three], seq[one]))
        conn.execute("UPDATE objects SET base=seq WHERE seq=?", (seq[own],))
    assert set(backend.get_chains([three])) == {one, two, three}
    assert backend.get_chains([own]) == {own: _object(own)._replace(base=own)}
    backend.close()
