"""Damage at rest: flipped bytes, truncations and deleted objects, edited straight into SQLite.

Each trial damages one random stored object, then loads every checkpoint that needs
it and runs fsck. Loading either raises ``CorruptObject`` naming that object or
returns exactly the committed state; fsck reports that object and nothing else. A
wrong value is never returned. A flip can also land on bits zstd ignores (an unused
header bit, padding): the object then still decodes to its exact content, which the
test proves by decoding the damaged row itself, and counts apart as "content intact".
"""

from __future__ import annotations

import random
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from ckptstore import CorruptObject, NotFound, Store
from ckptstore.compression import RAW, Codec
from ckptstore.graph import references
from ckptstore.location import STORE_FILE
from reliability.harness import assert_fsck_clean, scaled, user_fields
from storetools import state
from test_cli import assert_error, ckpt, ok, store_counts

TRIALS = scaled(1000, 20000)
DELETIONS = scaled(100, 1000)


@pytest.fixture
def damaged_store(tmp_path: Path) -> tuple[Path, dict[str, dict[str, Any]]]:
    """Two sessions, a fork and a tag; small and large, raw and compressed objects."""
    directory = tmp_path / ".ckpt"
    expected = {}
    with Store.init(directory) as store:
        for i in range(5):
            info = store.commit(state(i, tasks=6, tag="main"), session="main")
            expected[info.id] = user_fields(store.load(info.id))
        store.fork("other", "main~2")
        for i in range(3):
            info = store.commit(
                {**state(10 + i, tasks=3, tag="other"), "variables": {"log": "word " * 400}},
                session="other",
            )
            expected[info.id] = user_fields(store.load(info.id))
        store.tag("v1", "main~3")
    return directory, expected


def links(store: Store, db: sqlite3.Connection) -> dict[bytes, set[str]]:
    """What names each object (an independent walk, not fsck's): objects, refs, reflog,
    and objects stored as deltas against it (the ``base`` column)."""
    named: dict[bytes, set[str]] = defaultdict(set)
    for oid in store.backend.iter_ids():
        for child in references(*store.objects.get(oid)):
            named[child].add(oid.hex())
    query = "SELECT o.id, b.id FROM objects o JOIN objects b ON b.seq = o.base"
    for oid, base in db.execute(query):
        named[base].add(f"{oid.hex()} (as its base)")
    for name, oid in store.backend.list_refs().items():
        named[oid].add(f"ref {name}")
    for entry in store.backend.reflog():
        if entry.new is not None:
            named[entry.new].add(f"reflog {entry.name}#{entry.seq}")
    return named


def closures(store: Store, commits: list[str]) -> dict[str, set[bytes]]:
    """Every object each commit's load reads: itself, its first parent (for the parent's
    checkpoint id) and its whole tree."""
    out = {}
    for commit in commits:
        tree, *parents = references(*store.objects.get(bytes.fromhex(commit)))
        todo, seen = [tree], {bytes.fromhex(commit), *parents[:1]}
        while todo:
            oid = todo.pop()
            if oid not in seen:
                seen.add(oid)
                todo += references(*store.objects.get(oid))
        out[commit] = seen
    return out


def reads_back(store: Store, oid: bytes) -> bool:
    """Whether a damaged object still decodes to exactly its content (its id verifies)."""
    try:
        store.objects.get(oid)
    except CorruptObject:
        return False
    return True


def test_every_flipped_or_truncated_object_is_detected_never_read_wrong(
    damaged_store: tuple[Path, dict[str, dict[str, Any]]], figure: Callable[[str], None]
) -> None:
    directory, expected = damaged_store
    rng = random.Random()
    counts: Counter[str] = Counter()
    with Store.open(directory) as store:
        needs = closures(store, list(expected))
    with closing(sqlite3.connect(directory / STORE_FILE)) as db:
        codecs = dict(db.execute("SELECT id, codec FROM objects").fetchall())
        ids = sorted(codecs)
        compressed = [oid for oid in ids if codecs[oid] != RAW]
        for _ in range(TRIALS):
            # Compressed objects are the fewer: aim a third of the damage at them.
            oid = rng.choice(compressed if compressed and rng.random() < 0.33 else ids)
            (data,) = db.execute("SELECT data FROM objects WHERE id=?", (oid,)).fetchone()
            if rng.random() < 0.75 or len(data) == 0:
                counts["flip"] += 1
                damaged = bytearray(data)
                damaged[rng.randrange(len(damaged))] ^= rng.randrange(1, 256)
            else:
                counts["truncate"] += 1
                damaged = bytearray(data[: rng.randrange(len(data))])
            counts["compressed"] += codecs[oid] != RAW
            with db:
                db.execute("UPDATE objects SET data=? WHERE id=?", (bytes(damaged), oid))
            with Store.open(directory) as store:  # what a process opening it now reads
                harmless = reads_back(store, oid)
                for commit, needed in needs.items():
                    refused: CorruptObject | None = None
                    try:
                        loaded = user_fields(store.load(commit))
                    except CorruptObject as err:
                        refused = err
                    if refused is None:
                        assert loaded == expected[commit], "a wrong value was returned"
                        assert harmless or oid not in needed
                        counts["exact loads"] += 1
                    else:
                        assert not harmless
                        # The damaged object itself, or one stored as a delta against it.
                        assert oid.hex() in str(refused), (refused, oid.hex())
                        counts["refused loads"] += 1
                problems = store.fsck().problems
            if harmless:
                assert problems == []
                counts["intact"] += 1
            else:
                assert ("corrupt", oid.hex()) in [(p.kind, p.object_id) for p in problems]
                assert {p.kind for p in problems} == {"corrupt"}
                counts["fsck"] += 1
            with db:
                db.execute("UPDATE objects SET data=? WHERE id=?", (data, oid))
    with Store.open(directory) as store:
        assert_fsck_clean(store)
    assert counts["fsck"] + counts["intact"] == TRIALS
    assert counts["intact"] <= TRIALS // 100  # only the rare bit zstd never reads
    assert counts["refused loads"] > TRIALS // 2
    figure(
        f"{TRIALS} damaged objects ({counts['flip']} byte flips, {counts['truncate']}"
        f" truncations; {counts['compressed']} compressed): {counts['fsck']} detected by fsck,"
        f" {counts['refused loads']} loads refused naming the object; {counts['intact']} flips"
        " left the content intact (bits zstd never reads: exact value, id verified);"
        f" {counts['exact loads']} loads unaffected; 0 wrong values"
    )


def test_every_deleted_object_is_reported_with_what_referenced_it(
    damaged_store: tuple[Path, dict[str, dict[str, Any]]], figure: Callable[[str], None]
) -> None:
    directory, expected = damaged_store
    rng = random.Random()
    refused = 0
    with Store.open(directory) as store, closing(sqlite3.connect(directory / STORE_FILE)) as db:
        named = links(store, db)
        needs = closures(store, list(expected))
        ids = sorted(store.backend.iter_ids())
    assert set(ids) <= set(named)  # nothing unreferenced: every deletion is damage
    with closing(sqlite3.connect(directory / STORE_FILE)) as db:
        for _ in range(DELETIONS):
            oid = rng.choice(ids)
            row = db.execute("SELECT * FROM objects WHERE id=?", (oid,)).fetchone()
            # A delta names its base by row: once the row is gone, nothing tells which id
            # the deltas stored against it wanted, so they are reported corrupt by their
            # own ids, and the deleted object missing with everything else that names it.
            dependents = {r.split()[0] for r in named[oid] if r.endswith("(as its base)")}
            with db:
                db.execute("DELETE FROM objects WHERE id=?", (oid,))
            with Store.open(directory) as store:
                problems = store.fsck().problems
                (problem,) = [p for p in problems if p.object_id == oid.hex()]
                assert problem.kind == "missing"
                assert set(problem.referenced_by) == {
                    r for r in named[oid] if not r.endswith("(as its base)")
                }
                others = {p.object_id: p for p in problems if p is not problem}
                assert set(others) == dependents
                assert all(
                    p.kind == "corrupt" and "stored against a base that is missing" in p.detail
                    for p in others.values()
                )
                for commit in [c for c, needed in needs.items() if oid in needed]:
                    # ObjectNotFound; RevisionNotFound when the commit named by its id is
                    # the one deleted; CorruptObject for a delta stored against it.
                    with pytest.raises(
                        (NotFound, CorruptObject), match="|".join([oid.hex(), *dependents])
                    ):
                        store.load(commit)
                    refused += 1
            with db:
                db.execute(f"INSERT INTO objects VALUES ({','.join('?' * len(row))})", row)
    with Store.open(directory) as store:
        assert_fsck_clean(store)
    figure(
        f"{DELETIONS} deleted objects: each reported missing by fsck with all that named"
        f" it by id, and the deltas stored against it reported corrupt; {refused} loads"
        " refused naming it or such a delta"
    )


def test_a_broken_codec_fails_ckpt_commit_with_one_line_and_writes_nothing(
    store_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify before write, at the command line: the codec bug surfaces as one error line."""
    ok(ckpt("--store", str(store_dir), "commit", "--var", "plan", "write the tests " * 20))
    before = store_counts(store_dir)
    real = Codec.compress

    def broken(self: Codec, data: bytes) -> tuple[int, bytes]:
        codec, payload = real(self, data)
        return codec, payload[:-1] + bytes([payload[-1] ^ 1])  # a bit off at the end

    monkeypatch.setattr(Codec, "compress", broken)
    state_file = tmp_path / "state.json"
    state_file.write_text('{"variables": {"plan": "%s"}}' % ("deploy it " * 30))
    for args in (["--var", "plan", "ship it " * 30], ["--state", str(state_file)]):
        result = ckpt("--store", str(store_dir), "commit", *args)
        assert_error(result, 1, "round-trip", "nothing was written")
        assert store_counts(store_dir) == before
