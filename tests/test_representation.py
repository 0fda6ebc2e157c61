"""How objects rest: deltas against previous versions, the trained dictionary, format 3."""

from __future__ import annotations

import os
import sqlite3
import time
from contextlib import closing
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from ckptstore import CorruptObject, Store, StoreNotWritable, dictionary
from ckptstore.backends.sqlite import FORMAT_VERSION, SQLiteBackend
from ckptstore.compression import ZSTD_DELTA, ZSTD_DICT
from ckptstore.decoding import decode
from ckptstore.dictionary import DICTIONARY_SETTING, TRAIN_AT, current_dictionary
from ckptstore.objects import Kind, encode, object_id
from ckptstore.objectstore import MAX_CHAIN
from storetools import all_ids, reachable


def plan(version: int) -> str:
    """A long text edited a little at each version (an agent's plan)."""
    lines = [
        f"{i}. step {i}: provision, verify and record evidence for service {i % 7}"
        for i in range(300)
    ]
    for v in range(version):
        lines[(v * 37) % 300] += f" (revised in round {v})"
    return "\n".join(lines)


def state(version: int, tasks: int = 120) -> dict[str, Any]:
    return {
        "tasks": [
            {
                "id": str(i),
                "subject": f"task {i}",
                "status": "completed" if i < version else "pending",
            }
            for i in range(tasks)
        ],
        "variables": {"plan": plan(version), "step": version},
    }


def rows(store: Store) -> list[Any]:
    return list(store.backend.get_objects(list(all_ids(store))).values())


def test_a_small_edit_to_a_long_text_is_stored_as_a_small_delta(store: Store) -> None:
    store.commit(state(0))
    store.objects.stats.reset()
    store.commit(state(1))
    written = store.objects.stats.bytes_written
    # the plan is ~25 KB; zstd alone stores ~4 KB of it; a delta a few dozen bytes
    assert written < 2_000, store.objects.stats
    deltas = [r for r in rows(store) if r.codec == ZSTD_DELTA]
    assert deltas  # the plan, the changed task, the nodes above them
    assert store.load()["variables"]["plan"] == plan(1)


def test_an_object_with_a_delta_far_smaller_than_itself_is_not_compressed_alone(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Plain zstd cannot come near a delta of a few dozen bytes: it is not tried."""
    store.commit(state(0))
    alone: list[bytes] = []
    compress = store.objects.codec.compress

    def counted(data: bytes) -> Any:
        alone.append(data)
        return compress(data)

    monkeypatch.setattr(store.objects.codec, "compress", counted)
    before = set(all_ids(store))
    store.commit(state(1))
    new = [r for r in rows(store) if r.id not in before]
    clear_wins = [r for r in new if r.codec == ZSTD_DELTA and len(r.data) * 16 <= r.raw_len]
    assert clear_wins  # the plan and the nodes above the changed task
    assert len(alone) <= len(new) - len(clear_wins)
    assert store.load()["variables"]["plan"] == plan(1)


def test_delta_chains_stay_within_the_bound_and_every_version_loads(store: Store) -> None:
    infos = [store.commit(state(v, tasks=10)) for v in range(MAX_CHAIN * 2 + 3)]
    stored = {r.id: r for r in rows(store)}

    def depth(oid: bytes) -> int:
        row = stored[oid]
        return 0 if row.codec != ZSTD_DELTA else 1 + depth(row.base)

    assert max(depth(oid) for oid in stored) <= MAX_CHAIN
    fresh = Store(store.backend)  # a cold cache: every base read from the backend
    for v, info in enumerate(infos):
        assert fresh.load(info.checkpoint_id)["variables"]["plan"] == plan(v)


def test_bases_stay_alive_through_prune_and_gc(store: Store) -> None:
    from ckptstore import RetentionPolicy

    for v in range(12):
        store.commit(state(v, tasks=10))
    store.prune(RetentionPolicy(last=2), grace=0, now=time.time() + 5)
    assert all_ids(store) == reachable(store)  # reachable counts bases: nothing else kept
    assert store.fsck().ok
    fresh = Store(store.backend)
    assert fresh.load()["variables"]["plan"] == plan(11)


def test_fsck_names_an_object_whose_base_is_missing(store: Store) -> None:
    store.commit(state(0, tasks=5))
    store.commit(state(1, tasks=5))
    delta = next(r for r in rows(store) if r.codec == ZSTD_DELTA)
    assert store.backend.delete_objects([delta.base]) == 1
    report = Store(store.backend).fsck()
    missing = [p for p in report.problems if p.kind == "missing"]
    corrupt = [p for p in report.problems if p.kind == "corrupt"]
    assert [p.object_id for p in missing] == [delta.base.hex()]  # the trees name it
    # A delta names its base by row in SQLite: with the row gone, so is the base's id;
    # both backends then read the delta as stored against nothing, which is corrupt.
    assert delta.id.hex() in {p.object_id for p in corrupt}
    assert all("stored against a base that is missing" in p.detail for p in corrupt)


def _downgrade(db: Path, version: int) -> None:
    """Rewrite a store's objects as format ``version`` (1 or 2) had them."""
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute(
            "CREATE TABLE old(seq INTEGER PRIMARY KEY, id BLOB NOT NULL UNIQUE,"
            " kind INTEGER NOT NULL, codec INTEGER NOT NULL, raw_len INTEGER NOT NULL,"
            " created_at INTEGER NOT NULL, data BLOB NOT NULL, base BLOB)"
        )
        conn.execute(
            "INSERT INTO old SELECT o.seq, o.id, o.kind, o.codec, o.raw_len, o.created_at,"
            " o.data, b.id FROM objects o LEFT JOIN objects b ON b.seq = o.base"
        )
        conn.execute("DROP TABLE objects")
        conn.execute("ALTER TABLE old RENAME TO objects")
        conn.execute("CREATE INDEX objects_by_age ON objects(created_at)")
        if version == 1:
            conn.execute("ALTER TABLE objects DROP COLUMN base")
        conn.execute("UPDATE settings SET value=? WHERE key='format_version'", (str(version),))


def _indexes(db: Path) -> set[str]:
    with closing(sqlite3.connect(db)) as conn:
        query = "SELECT name FROM sqlite_master WHERE type='index' AND tbl_name='objects'"
        return {name for (name,) in conn.execute(query)}


@pytest.mark.parametrize("version", [1, 2])
def test_an_older_store_is_upgraded_when_opened(tmp_path: Path, version: int) -> None:
    directory = tmp_path / ".ckpt"
    db = directory / "store.db"
    steps = 1 if version == 1 else 6  # format 1 had no deltas
    with Store.init(directory) as store:
        made = [store.commit(state(v, tasks=12)).checkpoint_id for v in range(steps)]
        based = [r for r in rows(store) if r.base is not None]
        assert bool(based) == (version == 2)
    _downgrade(db, version)
    assert "objects_by_age" in _indexes(db)
    with Store.open(directory) as store:
        assert store.backend.get_setting("format_version") == str(FORMAT_VERSION)
        assert [store.load(c)["variables"]["step"] for c in made] == list(range(steps))
        assert {(r.id, r.base) for r in rows(store) if r.base is not None} == {
            (r.id, r.base) for r in based
        }
        assert store.fsck().ok
        store.commit(state(steps, tasks=12))
        assert store.load()["variables"]["plan"] == plan(steps)
    assert _indexes(db) == {"objects_by_id"}
    with closing(sqlite3.connect(db)) as conn:  # the old table's pages were given back
        assert conn.execute("PRAGMA freelist_count").fetchone() == (0,)


def test_a_missing_base_stays_missing_through_the_upgrade(tmp_path: Path) -> None:
    directory = tmp_path / ".ckpt"
    with Store.init(directory) as store:
        store.commit(state(0, tasks=5))
        store.commit(state(1, tasks=5))
        delta = next(r for r in rows(store) if r.codec == ZSTD_DELTA)
    _downgrade(directory / "store.db", 2)
    with closing(sqlite3.connect(directory / "store.db")) as conn, conn:
        conn.execute("DELETE FROM objects WHERE id=?", (delta.base,))
    with Store.open(directory) as store:
        problems = {p.object_id: p for p in store.fsck().problems}
    assert problems[delta.base.hex()].kind == "missing"
    assert problems[delta.id.hex()].kind == "corrupt"
    assert "stored against a base that is missing" in problems[delta.id.hex()].detail


def test_a_read_only_store_of_an_older_format_is_refused_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / ".ckpt"
    with Store.init(directory) as store:
        store.commit(state(0, tasks=5))
    _downgrade(directory / "store.db", 2)
    before = (directory / "store.db").read_bytes()
    monkeypatch.setattr(os, "access", lambda *args, **kwargs: False)  # root can write anyway
    with pytest.raises(StoreNotWritable, match="format 2"):
        Store.open(directory)
    assert (directory / "store.db").read_bytes() == before


def test_a_dictionary_is_trained_once_the_store_has_enough_records(store: Store) -> None:
    assert current_dictionary(store.objects) is None
    session = 0
    while store.backend.size_hint() < TRAIN_AT:
        store.commit(state(session % 50, tasks=60), session=f"s{session % 3}")
        session += 1
    store.commit(
        {"tasks": [{"id": "x", "subject": "a new task with a subject", "status": "pending"}]}
    )
    dictionary = current_dictionary(store.objects)
    assert dictionary is not None
    assert store.backend.get_setting(DICTIONARY_SETTING).startswith(dictionary.hex())
    store.commit(
        {"tasks": [{"id": "y", "subject": "another task, compressed with it", "status": "pending"}]}
    )
    used = [r for r in rows(store) if r.codec == ZSTD_DICT]
    assert used
    assert {r.base for r in used} == {dictionary}
    assert Store(store.backend).load()["tasks"][0]["id"] == "y"


def test_a_failed_training_waits_for_the_store_to_grow_before_looking_again(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Looking for samples reads thousands of objects: not on every commit of a store
    that has too few of them."""
    monkeypatch.setattr(dictionary, "DICTIONARY_BYTES", 1 << 40)  # never enough samples
    looked: list[int] = []
    recent_objects = store.backend.recent_objects

    def counted(limit: int, *, max_raw_len: int) -> Any:
        looked.append(store.backend.size_hint())
        return recent_objects(limit, max_raw_len=max_raw_len)

    monkeypatch.setattr(store.backend, "recent_objects", counted)
    commits = 0
    while store.backend.size_hint() < 2 * TRAIN_AT:
        store.commit(state(commits % 50, tasks=60), session=f"s{commits % 3}")
        commits += 1
    assert current_dictionary(store.objects) is None
    assert len(looked) >= 3, looked  # it does try again as the store grows
    assert looked[0] >= TRAIN_AT
    for before, after in pairwise(looked):
        assert after >= before * dictionary.RETRY_GROWTH, looked
    assert commits > 4 * len(looked)


@pytest.mark.parametrize("count", [0, 3])
def test_backends_report_size_and_recent_records(store: Store, count: int) -> None:
    for i in range(count):
        store.commit({"variables": {"i": i}})
    assert store.backend.size_hint() >= len(all_ids(store))
    recent = store.backend.recent_objects(100, max_raw_len=4096)
    assert all(r.kind in (1, 3) and r.raw_len <= 4096 for r in recent)
    if count:
        newest = store.get_commit().id
        assert recent[0].id.hex() == newest


def test_what_gc_deleted_is_not_served_from_the_cache(store: Store) -> None:
    from ckptstore import ObjectNotFound, RetentionPolicy

    infos = [store.commit({"variables": {"i": i, "text": "x" * (40 + i)}}) for i in range(3)]
    tree = bytes.fromhex(infos[0].tree)
    store.objects.get(tree)  # now cached
    store.prune(RetentionPolicy(last=1), grace=0, reflog_expiry=0, now=time.time() + 5)
    assert store.backend.has_objects([tree]) == set()
    with pytest.raises(ObjectNotFound):
        store.objects.get(tree)


def test_an_uncached_read_keeps_the_bases_it_resolved(store: Store) -> None:
    """fsck and gc read each object uncached; its base chain is decoded once, not again
    for the next version along the chain."""
    for v in range(6):
        store.commit(state(v, tasks=3))
    versions = [object_id(Kind.BLOB, encode(plan(v))) for v in range(6)]
    stored = store.backend.get_objects(versions)
    assert all(stored[versions[v]].base == versions[v - 1] for v in range(1, 6))
    fresh = Store(store.backend)  # a cold cache
    fresh.objects.read_many([versions[4]], cached=False)
    fresh.objects.stats.reset()
    loaded = fresh.objects.read_many([versions[5]], cached=False)[versions[5]]
    assert decode(loaded.data) == plan(5)
    # version 5 itself and version 4 (asked for before, so re-read and re-verified);
    # versions 3 to 0 come from the cache.
    assert fresh.objects.stats.objects_read == 2
    assert versions[5] not in fresh.objects._cache  # what was asked for is not cached


def _cold_load_batches(store: Store, checkpoint_id: str) -> tuple[int, int]:
    fresh = Store(store.backend)  # a cold cache: every base read from the backend
    fresh.objects.stats.reset()
    assert fresh.load(checkpoint_id)["variables"]["plan"] is not None
    return fresh.objects.stats.read_batches, fresh.objects.stats.objects_read


def test_a_cold_load_reads_whole_delta_chains_in_one_batch(store: Store) -> None:
    infos = [store.commit(state(v, tasks=10)) for v in range(MAX_CHAIN)]
    stored = {r.id: r for r in rows(store)}
    plan_ids = [object_id(Kind.BLOB, encode(plan(v))) for v in range(MAX_CHAIN)]
    # each version of the plan is stored against the one before: a chain as deep as allowed
    assert all(stored[plan_ids[v]].base == plan_ids[v - 1] for v in range(1, MAX_CHAIN))
    shallow, _ = _cold_load_batches(store, infos[1].checkpoint_id)
    deep, read = _cold_load_batches(store, infos[-1].checkpoint_id)
    # Level by level this took a batch per link (15 more for the plan alone); whole
    # chains come in one batch per tree level, whatever their depth.
    assert deep == shallow
    assert read >= MAX_CHAIN  # the plan's chain was read, all of it, in that batch


def test_a_damaged_link_inside_a_chain_is_named_on_load(store: Store, tmp_path: Path) -> None:
    infos = [store.commit(state(v, tasks=10)) for v in range(6)]
    plan_ids = [object_id(Kind.BLOB, encode(plan(v))) for v in range(6)]
    middle = store.backend.get_objects([plan_ids[3]])[plan_ids[3]]
    assert middle.codec == ZSTD_DELTA
    if isinstance(store.backend, SQLiteBackend):  # in place: its row is what 4 is based on
        with closing(sqlite3.connect(store.backend.location)) as conn, conn:
            conn.execute("UPDATE objects SET data=? WHERE id=?", (_flip(middle.data), middle.id))
    else:
        store.backend.delete_objects([middle.id])
        assert store.backend.write([middle._replace(data=_flip(middle.data))]).ok
    fresh = Store(store.backend)
    # decoded as a whole, the chain does not hash to version 5's id; link by link, the
    # damaged link is found and named
    with pytest.raises(CorruptObject) as caught:
        fresh.load(infos[5].checkpoint_id)
    assert caught.value.object_id == plan_ids[3].hex()
    assert Store(store.backend).load(infos[2].checkpoint_id)["variables"]["plan"] == plan(2)


def _flip(payload: bytes) -> bytes:
    """The payload with one byte of its compressed content changed."""
    at = len(payload) - 2
    return payload[:at] + bytes([payload[at] ^ 0x5A]) + payload[at + 1 :]


def _with_dictionary(store: Store) -> bytes:
    session = 0
    while current_dictionary(store.objects) is None:
        store.commit(state(session % 50, tasks=60), session=f"s{session % 3}")
        session += 1
    dictionary = current_dictionary(store.objects)
    assert dictionary is not None
    return dictionary


def test_gc_keeps_the_dictionary_while_nothing_uses_it(store: Store) -> None:
    from ckptstore import RetentionPolicy

    dictionary = _with_dictionary(store)
    store.prune(RetentionPolicy(last=1), grace=0, reflog_expiry=0, now=time.time() + 5)
    assert store.backend.has_objects([dictionary]) == {dictionary}
    store.commit({"tasks": [{"id": "z", "subject": "one more task to compress", "status": "x"}]})
    assert {r.base for r in rows(store) if r.codec == ZSTD_DICT} == {dictionary}


def test_a_commit_forgets_a_cached_object_that_another_process_collected(store: Store) -> None:
    dictionary = _with_dictionary(store)
    store.commit({"tasks": [{"id": "a", "subject": "compressed with the dictionary"}]})
    assert dictionary in store.objects._cache  # held in memory for the next commit
    # Another process's gc deletes it (say, after a newer dictionary replaced it).
    assert store.backend.delete_objects([dictionary]) == 1
    info = store.commit(
        {"tasks": [{"id": "b", "subject": "compressed without it this time", "status": "x"}]},
        session="other",
    )
    assert Store(store.backend).load(info.checkpoint_id)["tasks"][0]["id"] == "b"
    assert dictionary not in store.objects._cache


def test_a_dictionary_is_decoded_once_not_for_every_object_read_against_it(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = 0
    while store.backend.size_hint() < TRAIN_AT:
        store.commit(state(session % 50, tasks=60), session=f"s{session % 3}")
        session += 1
    for i in range(4):
        task = {"id": f"t{i}", "subject": f"task {i} with a subject", "status": "pending"}
        store.commit({"tasks": [task]}, session=f"small{i}")
    dictionary = current_dictionary(store.objects)
    assert dictionary is not None
    used = [r.id for r in rows(store) if r.codec == ZSTD_DICT]
    assert len(used) >= 3
    import ckptstore.objectstore as objectstore

    objectstore._DICTIONARIES.clear()
    decoded: list[bytes] = []
    decode_trusted = objectstore.decode_trusted

    def counting(data: bytes) -> Any:
        decoded.append(data)
        return decode_trusted(data)

    monkeypatch.setattr(objectstore, "decode_trusted", counting)
    fresh = Store(store.backend)
    fresh.objects.read_many(used, cached=False)
    (held,) = fresh.objects.read_many([dictionary]).values()
    assert decoded.count(held.data) == 1
