"""The Backend contract, run against every implementation (memory and SQLite).

Ids here are opaque 32-byte strings built from integers, so their byte order is the
integer order and range queries are easy to reason about.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ckptstore.backends import (
    Backend,
    MemoryBackend,
    RefUpdate,
    SQLiteBackend,
    StoredObject,
    WriteResult,
)
from ckptstore.backends.base import KindUsage, PruneMark, Swept
from ckptstore.errors import StoreBusy

MANY = 10_050  # more than one SQLite iter_ids page (10,000 ids)


def mark(n: int, *, next_: int | None = None, skipped: int = 1) -> PruneMark:
    return PruneMark(
        oid(n), f"ckpt-20260101-000000-{n:08x}", None if next_ is None else oid(next_), skipped
    )


def oid(n: int) -> bytes:
    """A 32-byte id whose byte order follows ``n``."""
    return n.to_bytes(32, "big")


def obj(n: int, data: bytes | None = None, *, kind: int = 1, codec: int = 0) -> StoredObject:
    payload = data if data is not None else f"object {n}".encode()
    return StoredObject(oid(n), kind, codec, len(payload), payload)


def now_us() -> int:
    return time.time_ns() // 1000


def move(name: str, old: int | None, new: int | None, message: str = "") -> RefUpdate:
    return RefUpdate(
        name,
        None if old is None else oid(old),
        None if new is None else oid(new),
        message or f"move {name}",
    )


def fail_while_reading(backend: Backend) -> None:
    with backend.reading():
        backend.get_ref("r")
        raise KeyError("boom")


def change_everything_then_fail(backend: Backend) -> None:
    with backend.exclusive():
        assert backend.write([obj(3)], [move("r", 1, 3)]).ok
        backend.delete_objects([oid(1), oid(2)])
        backend.set_prune_marks([mark(3)], drop=[oid(1)])
        backend.drop_reflog(before=now_us() + 10**9)
        with backend.marks() as marks:
            marks.sweep(2**40)
        raise KeyError("boom")


class BackendContract:
    """Every test here must pass for every backend; subclasses supply ``backend``."""

    @pytest.fixture
    def backend(self) -> Iterator[Backend]:
        raise NotImplementedError

    # --- objects ------------------------------------------------------------------

    def test_stored_object_round_trips_every_field(self, backend: Backend) -> None:
        objects = [
            StoredObject(oid(1), 1, 0, 0, b""),
            StoredObject(oid(2), 2, 1, 99_999, b"\x00\x01\xff compressed"),
            StoredObject(oid(3), 7, 0, 1 << 20, bytes(range(256)) * 4096),
            StoredObject(b"\xff" * 32, 3, 1, 5, b"\x00" * 5),
        ]
        assert backend.write(objects).ok
        got = backend.get_objects([o.id for o in objects])
        assert got == {o.id: o for o in objects}
        for stored in got.values():
            assert isinstance(stored, StoredObject)
            assert type(stored.data) is bytes
            assert type(stored.id) is bytes

    def test_get_objects_skips_absent_ids_and_tolerates_duplicates(self, backend: Backend) -> None:
        backend.write([obj(1), obj(2)])
        got = backend.get_objects([oid(1), oid(9), oid(1), oid(2), oid(2), oid(8)])
        assert got == {oid(1): obj(1), oid(2): obj(2)}
        assert backend.get_objects([]) == {}
        assert backend.get_objects([oid(5)]) == {}

    def test_get_chains_follows_bases_transitively(self, backend: Backend) -> None:
        def based(n: int, base: int) -> StoredObject:
            return StoredObject(oid(n), 1, 3, 1, b"d", oid(base))

        # 1 <- 2 <- 3 <- 4 is a chain; 6 was stored against 5, which is then deleted
        # (damage: gc never deletes a base still in use). Loops cannot be written; the
        # SQLite tests make one in the file.
        assert backend.write([obj(1), based(2, 1), based(3, 2), based(4, 3), obj(7)]).ok
        assert backend.write([obj(5), based(6, 5)]).ok
        assert backend.delete_objects([oid(5)]) == 1
        assert backend.get_chains([]) == {}
        assert backend.get_chains([oid(1)]) == {oid(1): obj(1)}
        got = backend.get_chains([oid(4), oid(9), oid(4)])
        assert got == {
            oid(4): based(4, 3),
            oid(3): based(3, 2),
            oid(2): based(2, 1),
            oid(1): obj(1),
        }
        assert backend.get_chains([oid(6), oid(3)]) == {
            oid(6): based(6, 5)._replace(base=None),
            oid(3): based(3, 2),
            oid(2): based(2, 1),
            oid(1): obj(1),
        }
        # More ids than one query batch, each with its own base.
        backend.write([obj(n) for n in range(100, 800)])
        backend.write(
            [StoredObject(oid(n), 1, 3, 1, b"x", oid(n - 1000)) for n in range(1100, 1800)]
        )
        got = backend.get_chains([oid(n) for n in range(1100, 1800)])
        assert set(got) == {oid(n) for n in range(1100, 1800)} | {oid(n) for n in range(100, 800)}

    def test_has_objects_returns_stored_subset_with_duplicates(self, backend: Backend) -> None:
        backend.write([obj(1), obj(3)])
        assert backend.has_objects([oid(1), oid(2), oid(3), oid(3), oid(1)]) == {oid(1), oid(3)}
        assert backend.has_objects([]) == set()
        assert backend.has_objects([oid(4)]) == set()

    def test_lookups_of_more_ids_than_one_query_batch(self, backend: Backend) -> None:
        backend.write([obj(n) for n in range(0, 2400, 2)])
        wanted = [oid(n) for n in range(2400)]
        assert backend.has_objects(wanted) == {oid(n) for n in range(0, 2400, 2)}
        assert set(backend.get_objects(wanted)) == {oid(n) for n in range(0, 2400, 2)}

    def test_find_objects_is_inclusive_ordered_and_limited(self, backend: Backend) -> None:
        numbers = list(range(10, 60, 5))
        random.Random(4).shuffle(numbers)
        backend.write([obj(n, kind=n % 4) for n in numbers])
        assert backend.find_objects(oid(20), oid(40), 100) == [
            (oid(n), n % 4) for n in (20, 25, 30, 35, 40)
        ]
        assert backend.find_objects(oid(21), oid(39), 100) == [
            (oid(n), n % 4) for n in (25, 30, 35)
        ]
        assert backend.find_objects(oid(0), oid(1000), 3) == [(oid(n), n % 4) for n in (10, 15, 20)]
        assert backend.find_objects(oid(0), oid(1000), 0) == []
        assert backend.find_objects(oid(41), oid(44), 10) == []
        assert backend.find_objects(oid(40), oid(20), 10) == []
        assert backend.find_objects(oid(55), oid(55), 10) == [(oid(55), 55 % 4)]

    def test_find_objects_by_hex_prefix_bounds(self, backend: Backend) -> None:
        ids = [bytes.fromhex(h.ljust(64, "0")) for h in ("ab", "abcd", "ac", "aa", "abff")]
        backend.write([StoredObject(i, 1, 0, 1, b"x") for i in ids])
        low, high = bytes.fromhex("ab".ljust(64, "0")), bytes.fromhex("ab".ljust(64, "f"))
        found = [i for i, _ in backend.find_objects(low, high, 10)]
        assert found == sorted(i for i in ids if i.hex().startswith("ab"))

    def test_iter_ids_yields_every_id_exactly_once(self, backend: Backend) -> None:
        assert list(backend.iter_ids()) == []
        backend.write([obj(n) for n in range(37)])
        ids = list(backend.iter_ids())
        assert len(ids) == 37
        assert set(ids) == {oid(n) for n in range(37)}

    def test_iter_ids_covers_more_than_one_page(self, backend: Backend) -> None:
        backend.write([StoredObject(oid(n), 1, 0, 1, b"x") for n in range(MANY)])
        ids = list(backend.iter_ids())
        assert len(ids) == MANY
        assert set(ids) == {oid(n) for n in range(MANY)}

    def test_iter_ids_survives_deletes_while_iterating(self, backend: Backend) -> None:
        backend.write([StoredObject(oid(n), 1, 0, 1, b"x") for n in range(MANY)])
        it = backend.iter_ids()
        seen = [next(it)]
        doomed = [oid(n) for n in range(MANY - 30, MANY - 10)]
        assert backend.delete_objects(doomed) == len(doomed)
        seen.extend(it)
        assert len(seen) == len(set(seen))
        assert {oid(n) for n in range(MANY)} - set(doomed) <= set(seen)

    def test_scan_objects_yields_each_object_in_storage_order_with_its_dependents(
        self, backend: Backend
    ) -> None:
        assert list(backend.scan_objects()) == []

        def based(n: int, base: int) -> StoredObject:
            return StoredObject(oid(n), 1, 3, 1, b"d", oid(base))

        # Ids out of storage order; 1 is the base of 5 and 2, 5 of 3, 7 of 9.
        backend.write([obj(4), obj(1)])
        backend.write([based(5, 1), based(2, 1), based(3, 5), obj(7), based(9, 7)])
        backend.write([obj(1), obj(4)])  # stored again: they keep their place
        scanned = list(backend.scan_objects())
        assert [s.id for s, _ in scanned] == [oid(n) for n in (4, 1, 5, 2, 3, 7, 9)]
        assert [n for _, n in scanned] == [0, 2, 1, 0, 0, 1, 0]
        assert scanned[2][0] == based(5, 1)
        backend.delete_objects([oid(7), oid(4)])
        backend.write([obj(4)])  # deleted and stored again: now last
        with backend.reading():  # and a scan is a read like any other
            scanned = list(backend.scan_objects())
        assert [(s.id, n) for s, n in scanned][-2:] == [(oid(9), 0), (oid(4), 0)]
        assert scanned[-2][0].base is None  # its base was deleted

    def test_scan_objects_covers_more_than_one_page(self, backend: Backend) -> None:
        based = [StoredObject(oid(n), 1, 3, 1, b"x", oid(n // 2)) for n in range(1, 1234)]
        backend.write([obj(0), *based])
        scanned = list(backend.scan_objects())
        assert [s.id for s, _ in scanned] == [oid(n) for n in range(1234)]
        # n is the base of 2n and 2n + 1 (0 of 1 only).
        assert [d for _, d in scanned] == [1] + [2] * 616 + [0] * 617

    def test_writing_an_existing_object_is_not_an_error(self, backend: Backend) -> None:
        original = obj(1, b"payload")
        assert backend.write([original]).ok
        assert backend.write([original, obj(2)]).ok
        assert backend.write([obj(3), obj(3)]).ok
        assert backend.get_objects([oid(1)]) == {oid(1): original}
        assert sorted(backend.iter_ids()) == [oid(1), oid(2), oid(3)]

    def test_delete_objects_returns_how_many_existed(self, backend: Backend) -> None:
        backend.write([obj(n) for n in range(5)])
        assert backend.delete_objects([oid(1), oid(3), oid(99)]) == 2
        assert backend.delete_objects([oid(1), oid(3)]) == 0
        assert backend.delete_objects([oid(4), oid(4)]) == 1
        assert backend.delete_objects([]) == 0
        assert backend.has_objects([oid(n) for n in range(5)]) == {oid(0), oid(2)}

    def test_delete_objects_in_more_than_one_batch(self, backend: Backend) -> None:
        backend.write([obj(n) for n in range(1300)])
        assert backend.delete_objects([oid(n) for n in range(0, 2600, 2)]) == 650
        assert len(list(backend.iter_ids())) == 650

    # --- write: refs, atomicity --------------------------------------------------------

    def test_write_stores_objects_and_creates_absent_ref(self, backend: Backend) -> None:
        result = backend.write([obj(1)], [move("sessions/a", None, 1)])
        assert result == WriteResult(ok=True)
        assert result.conflict is None
        assert result.found is None
        assert result.missing == frozenset()
        assert backend.get_ref("sessions/a") == oid(1)
        assert backend.has_objects([oid(1)]) == {oid(1)}

    def test_cas_mismatch_writes_nothing(self, backend: Backend) -> None:
        backend.write([obj(1)], [move("r", None, 1)])
        before = backend.reflog()
        result = backend.write([obj(2), obj(3)], [move("r", 5, 2)])
        assert not result.ok
        assert result.conflict == "r"
        assert result.found == oid(1)
        assert result.missing == frozenset()
        assert backend.has_objects([oid(2), oid(3)]) == set()
        assert backend.get_ref("r") == oid(1)
        assert backend.reflog() == before

    def test_create_if_absent_conflicts_when_ref_exists(self, backend: Backend) -> None:
        backend.write([obj(1)], [move("r", None, 1)])
        result = backend.write([obj(2)], [move("r", None, 2)])
        assert (result.ok, result.conflict, result.found) == (False, "r", oid(1))
        assert backend.get_ref("r") == oid(1)
        assert backend.has_objects([oid(2)]) == set()

    def test_moving_an_absent_ref_reports_found_none(self, backend: Backend) -> None:
        result = backend.write([obj(2)], [move("ghost", 1, 2)])
        assert (result.ok, result.conflict, result.found) == (False, "ghost", None)
        assert backend.get_ref("ghost") is None
        assert backend.reflog() == []
        assert backend.has_objects([oid(2)]) == set()

    def test_missing_required_id_writes_nothing(self, backend: Backend) -> None:
        backend.write([obj(1)])
        result = backend.write(
            [obj(2)], [move("r", None, 2)], require=[oid(1), oid(7), oid(8), oid(7)]
        )
        assert not result.ok
        assert result.missing == frozenset({oid(7), oid(8)})
        assert result.conflict is None
        assert backend.get_ref("r") is None
        assert backend.has_objects([oid(2)]) == set()
        assert backend.reflog() == []

    def test_an_object_whose_base_is_not_stored_is_not_written(self, backend: Backend) -> None:
        def based(n: int, base: int) -> StoredObject:
            return StoredObject(oid(n), 1, 3, 1, b"d", oid(base))

        backend.write([obj(1)])
        for objects in ([obj(2), based(3, 4)], [based(3, 4), obj(4)], [based(5, 5)]):
            result = backend.write(objects, [move("r", None, 2)])
            assert not result.ok
            assert result.missing == frozenset({objects[-1].base or objects[0].base})
            assert backend.get_ref("r") is None
            assert backend.has_objects([oid(n) for n in range(2, 6)]) == set()
        # A base stored already, or earlier in the same write.
        assert backend.write([based(2, 1), obj(4), based(3, 4), based(5, 3)]).ok
        assert backend.get_objects([oid(5)]) == {oid(5): based(5, 3)}

    def test_required_ids_that_exist_let_the_write_through(self, backend: Backend) -> None:
        backend.write([obj(1), obj(2)])
        result = backend.write([obj(3)], [move("r", None, 3)], require=[oid(1), oid(2), oid(1)])
        assert result.ok
        assert backend.get_ref("r") == oid(3)

    def test_second_update_conflicting_rolls_back_the_first(self, backend: Backend) -> None:
        backend.write([obj(1)], [move("a", None, 1), move("b", None, 1)])
        before = backend.reflog()
        result = backend.write([obj(2)], [move("a", 1, 2), move("b", 9, 2)])
        assert (result.ok, result.conflict, result.found) == (False, "b", oid(1))
        assert backend.list_refs() == {"a": oid(1), "b": oid(1)}
        assert backend.reflog() == before
        assert backend.has_objects([oid(2)]) == set()

    def test_several_updates_in_one_write_each_get_a_reflog_entry(self, backend: Backend) -> None:
        backend.write([obj(1)], [move("x", None, 1)])
        updates = [move("x", 1, 2, "one"), move("y", None, 2, "two"), move("z", None, 1, "three")]
        assert backend.write([obj(2)], updates).ok
        assert backend.list_refs() == {"x": oid(2), "y": oid(2), "z": oid(1)}
        newest = backend.reflog(limit=3)
        assert [(e.name, e.message) for e in newest] == [("z", "three"), ("y", "two"), ("x", "one")]
        assert len({e.at for e in newest}) == 1

    def test_new_none_deletes_the_ref(self, backend: Backend) -> None:
        backend.write([obj(1)], [move("sessions/a", None, 1), move("sessions/b", None, 1)])
        assert backend.write([], [move("sessions/a", 1, None, "drop")]).ok
        assert backend.get_ref("sessions/a") is None
        assert backend.list_refs("sessions/") == {"sessions/b": oid(1)}
        entry = backend.reflog("sessions/a")[0]
        assert (entry.old, entry.new, entry.message) == (oid(1), None, "drop")
        assert backend.has_objects([oid(1)]) == {oid(1)}

    def test_deleting_with_a_stale_old_value_conflicts(self, backend: Backend) -> None:
        backend.write([obj(1), obj(2)], [move("r", None, 2)])
        result = backend.write([], [move("r", 1, None)])
        assert (result.ok, result.conflict, result.found) == (False, "r", oid(2))
        assert backend.get_ref("r") == oid(2)

    def test_empty_write_is_ok_and_a_deleted_ref_can_be_created_again(
        self, backend: Backend
    ) -> None:
        assert backend.write([]).ok
        assert backend.reflog() == []
        backend.write([obj(1)], [move("r", None, 1)])
        backend.write([], [move("r", 1, None)])
        assert backend.write([], [move("r", None, 1)]).ok
        assert backend.get_ref("r") == oid(1)

    # --- refs and reflog ------------------------------------------------------------

    def test_reflog_records_every_move_newest_first(self, backend: Backend) -> None:
        start = now_us()
        backend.write([obj(1)], [move("r", None, 1, "create")])
        backend.write([obj(2)], [move("s", None, 2, "other")])
        backend.write([obj(3)], [move("r", 1, 3, "advance")])
        end = now_us()
        log = backend.reflog()
        assert [e.message for e in log] == ["advance", "other", "create"]
        assert [e.seq for e in log] == sorted((e.seq for e in log), reverse=True)
        assert len({e.seq for e in log}) == 3
        assert all(start - 1_000_000 <= e.at <= end + 1_000_000 for e in log)
        assert [e.at for e in log] == sorted((e.at for e in log), reverse=True)
        only_r = backend.reflog("r")
        assert [(e.name, e.old, e.new, e.message) for e in only_r] == [
            ("r", oid(1), oid(3), "advance"),
            ("r", None, oid(1), "create"),
        ]
        assert backend.reflog("r", limit=1) == only_r[:1]
        assert backend.reflog(limit=2) == log[:2]
        assert backend.reflog("nobody") == []

    def test_reflog_time_is_microseconds_since_epoch(self, backend: Backend) -> None:
        before = now_us()
        backend.write([obj(1)], [move("r", None, 1)])
        (entry,) = backend.reflog()
        assert isinstance(entry.at, int)
        assert before - 2_000_000 <= entry.at <= now_us() + 2_000_000
        assert 1_600_000_000 * 10**6 < entry.at < 4_000_000_000 * 10**6

    def test_get_ref_of_unknown_name_is_none(self, backend: Backend) -> None:
        assert backend.get_ref("sessions/none") is None

    def test_list_refs_filters_by_literal_prefix(self, backend: Backend) -> None:
        names = ["sessions/a", "sessions/b/c", "sessionsX", "tags/v1", "a_b", "axb", "a%c"]
        backend.write([obj(1)], [move(name, None, 1) for name in names])
        assert backend.list_refs() == dict.fromkeys(names, oid(1))
        assert backend.list_refs("sessions/") == {
            "sessions/a": oid(1),
            "sessions/b/c": oid(1),
        }
        assert backend.list_refs("tags/") == {"tags/v1": oid(1)}
        assert backend.list_refs("a_") == {"a_b": oid(1)}
        assert backend.list_refs("a%") == {"a%c": oid(1)}
        assert backend.list_refs("nothing/") == {}
        assert list(backend.list_refs()) == sorted(names)

    # --- settings, reading, lifecycle -----------------------------------------------

    def test_settings_round_trip_and_overwrite(self, backend: Backend) -> None:
        assert backend.get_setting("HEAD") is None
        backend.set_setting("HEAD", "sessions/main")
        backend.set_setting("note", "ünïcode ✓")
        assert backend.get_setting("HEAD") == "sessions/main"
        backend.set_setting("HEAD", "sessions/other")
        assert backend.get_setting("HEAD") == "sessions/other"
        assert backend.get_setting("note") == "ünïcode ✓"
        backend.set_setting("empty", "")
        assert backend.get_setting("empty") == ""

    def test_reading_nests_and_leaves_the_backend_usable(self, backend: Backend) -> None:
        backend.write([obj(1)], [move("r", None, 1)])
        with backend.reading():
            assert backend.get_ref("r") == oid(1)
            with backend.reading():
                assert backend.has_objects([oid(1)]) == {oid(1)}
                with backend.reading():
                    assert backend.list_refs() == {"r": oid(1)}
            assert backend.get_objects([oid(1)]) == {oid(1): obj(1)}
        assert backend.write([obj(2)], [move("r", 1, 2)]).ok
        with pytest.raises(KeyError):
            fail_while_reading(backend)
        assert backend.write([obj(3)], [move("r", 2, 3)]).ok
        assert backend.get_ref("r") == oid(3)

    # --- maintenance: exclusive, ages, reflog expiry, prune marks, marks, usage -------------

    def test_exclusive_applies_everything_at_the_end(self, backend: Backend) -> None:
        backend.write([obj(1), obj(2)], [move("r", None, 1)])
        with backend.exclusive():
            assert backend.write([obj(3)], [move("r", 1, 3)]).ok
            assert backend.delete_objects([oid(2)]) == 1
            backend.set_prune_marks([mark(3, next_=1)])
            assert backend.drop_reflog(targets=[oid(1)]) == 1
            with backend.exclusive():  # nests
                assert backend.get_ref("r") == oid(3)
            with backend.reading():
                assert backend.has_objects([oid(1), oid(2), oid(3)]) == {oid(1), oid(3)}
        assert backend.get_ref("r") == oid(3)
        assert backend.has_objects([oid(1), oid(2), oid(3)]) == {oid(1), oid(3)}
        assert list(backend.prune_marks()) == [oid(3)]
        assert [e.new for e in backend.reflog()] == [oid(3)]

    def test_exclusive_undoes_everything_when_the_block_raises(self, backend: Backend) -> None:
        backend.write([obj(1), obj(2)], [move("r", None, 1)])
        backend.set_prune_marks([mark(1)])
        log = backend.reflog()
        with pytest.raises(KeyError):
            change_everything_then_fail(backend)
        assert backend.get_ref("r") == oid(1)
        assert backend.has_objects([oid(1), oid(2), oid(3)]) == {oid(1), oid(2)}
        assert list(backend.prune_marks()) == [oid(1)]
        assert backend.reflog() == log
        assert backend.write([obj(4)], [move("r", 1, 4)]).ok  # usable afterwards

    def test_a_failed_write_inside_exclusive_writes_nothing(self, backend: Backend) -> None:
        backend.write([obj(1)], [move("r", None, 1)])
        with backend.exclusive():
            assert not backend.write([obj(2)], [move("r", 9, 2)]).ok
            assert not backend.write([obj(3)], require=[oid(8)]).ok
            assert backend.write([obj(4)]).ok
        assert backend.has_objects([oid(2), oid(3), oid(4)]) == {oid(4)}
        assert len(backend.reflog()) == 1

    def test_exclusive_inside_reading_is_refused(self, backend: Backend) -> None:
        with backend.reading(), pytest.raises(RuntimeError), backend.exclusive():
            pass
        assert backend.write([obj(1)]).ok

    def test_young_objects_are_those_stored_since(self, backend: Backend) -> None:
        start = int(time.time())
        backend.write([obj(1), obj(2)])
        assert set(backend.young_objects(start)) == {oid(1), oid(2)}
        assert backend.young_objects(int(time.time()) + 1) == []
        backend.delete_objects([oid(2)])
        assert backend.young_objects(start) == [oid(1)]

    def test_storing_an_object_again_makes_it_young_again(self, backend: Backend) -> None:
        backend.write([obj(1), obj(2)])
        later = int(time.time()) + 1
        while time.time() < later:  # ages have one-second resolution
            time.sleep(0.05)
        assert backend.young_objects(later) == []
        backend.write([obj(1)])
        assert backend.young_objects(later) == [oid(1)]
        assert backend.get_objects([oid(1)]) == {oid(1): obj(1)}

    def test_reflog_since_and_drop_reflog(self, backend: Backend) -> None:
        backend.write([obj(1)], [move("a", None, 1, "one")])
        middle = now_us()
        time.sleep(0.002)
        backend.write([obj(2)], [move("a", 1, 2, "two"), move("b", None, 1, "three")])
        assert [e.message for e in backend.reflog(since=middle)] == ["three", "two"]
        assert [e.message for e in backend.reflog("a", since=middle)] == ["two"]
        assert backend.reflog(since=now_us() + 10**6) == []
        assert backend.drop_reflog() == 0
        assert backend.drop_reflog(targets=[oid(1), oid(9)]) == 2
        assert [e.message for e in backend.reflog()] == ["two"]
        assert backend.drop_reflog(before=middle) == 0
        assert backend.drop_reflog(before=now_us() + 1) == 1
        assert backend.reflog() == []
        backend.write([], [move("a", 2, 1, "four")])
        (entry,) = backend.reflog()
        assert entry.seq > 3  # sequence numbers are never reused

    def test_prune_marks_round_trip(self, backend: Backend) -> None:
        assert backend.prune_marks() == {}
        backend.set_prune_marks([mark(1, next_=5, skipped=3), mark(2)])
        assert backend.prune_marks() == {oid(1): mark(1, next_=5, skipped=3), oid(2): mark(2)}
        assert backend.prune_marks([oid(2), oid(7)]) == {oid(2): mark(2)}
        assert backend.prune_marks([]) == {}
        backend.set_prune_marks([mark(1, next_=6, skipped=9)], drop=[oid(2), oid(8)])
        assert backend.prune_marks() == {oid(1): mark(1, next_=6, skipped=9)}
        backend.set_prune_marks([], drop=[oid(1)])
        assert backend.prune_marks() == {}

    def test_marks_add_returns_only_what_was_not_marked(self, backend: Backend) -> None:
        with backend.marks() as marks:
            assert sorted(marks.add([oid(3), oid(1), oid(3)])) == [oid(1), oid(3)]
            assert marks.add([oid(1), oid(2), oid(3)]) == [oid(2)]
            assert marks.add([]) == []
            assert sorted(marks.add(oid(n) for n in range(1200))) == [
                oid(n) for n in range(1200) if n not in (1, 2, 3)
            ]

    def test_sweep_deletes_only_unmarked_old_objects(self, backend: Backend) -> None:
        backend.write([obj(n, b"x" * n) for n in range(1, 7)])
        young = int(time.time())
        with backend.marks() as marks:
            marks.add([oid(1), oid(2), oid(99)])
            assert marks.sweep(young) == Swept(0, 0)  # everything is too young
            dry = marks.sweep(young + 2, dry_run=True)
            assert dry == Swept(4, 3 + 4 + 5 + 6)
            assert len(list(backend.iter_ids())) == 6
            with backend.exclusive():
                assert marks.sweep(young + 2) == dry
        assert sorted(backend.iter_ids()) == [oid(1), oid(2)]
        with backend.marks() as marks:  # a new mark set starts empty
            assert marks.add([oid(1)]) == [oid(1)]
        backend.reclaim()
        assert sorted(backend.iter_ids()) == [oid(1), oid(2)]
        backend.reclaim(compact=True)
        assert backend.get_objects([oid(1), oid(2)]) == {
            oid(1): obj(1, b"x"),
            oid(2): obj(2, b"xx"),
        }

    def test_usage_counts_objects_by_kind(self, backend: Backend) -> None:
        assert backend.usage().kinds == {}
        backend.write([obj(1, b"abc", kind=1), obj(2, b"de", kind=1), obj(3, b"f", kind=2)])
        backend.write([StoredObject(oid(4), 3, 1, 100, b"zz")])
        assert backend.usage().kinds == {
            1: KindUsage(2, 5, 5),
            2: KindUsage(1, 1, 1),
            3: KindUsage(1, 2, 100),
        }


class TestMemoryBackend(BackendContract):
    @pytest.fixture
    def backend(self) -> Iterator[Backend]:
        opened = MemoryBackend()
        yield opened
        opened.close()

    def test_location_is_memory(self, backend: Backend) -> None:
        assert backend.location == ":memory:"

    def test_calls_after_close_fail(self, backend: Backend) -> None:
        backend.close()
        with pytest.raises(RuntimeError):
            backend.get_ref("r")


class TestSQLiteBackend(BackendContract):
    @pytest.fixture
    def path(self, tmp_path: Path) -> Path:
        target = tmp_path / "store.db"
        SQLiteBackend.create(target)
        return target

    @pytest.fixture
    def backend(self, path: Path) -> Iterator[Backend]:
        opened = SQLiteBackend.open(path, busy_timeout=5)
        yield opened
        opened.close()

    def test_location_is_the_file_path(self, backend: Backend, path: Path) -> None:
        assert backend.location == str(path)

    def test_everything_survives_close_and_reopen(self, backend: Backend, path: Path) -> None:
        backend.write([obj(1), obj(2, b"\x00" * 10, codec=1)], [move("sessions/a", None, 1)])
        backend.write([], [move("sessions/a", 1, 2, "second")])
        backend.set_setting("HEAD", "sessions/a")
        log = backend.reflog()
        backend.close()
        reopened = SQLiteBackend.open(path)
        try:
            assert reopened.get_objects([oid(1), oid(2)]) == {
                oid(1): obj(1),
                oid(2): obj(2, b"\x00" * 10, codec=1),
            }
            assert reopened.list_refs() == {"sessions/a": oid(2)}
            assert reopened.reflog() == log
            assert reopened.get_setting("HEAD") == "sessions/a"
        finally:
            reopened.close()

    def test_reading_is_a_snapshot_against_other_writers(
        self, backend: Backend, path: Path
    ) -> None:
        backend.write([obj(1)], [move("r", None, 1)])
        other = SQLiteBackend.open(path, busy_timeout=5)
        try:
            with backend.reading():
                assert backend.get_ref("r") == oid(1)
                assert other.write([obj(2)], [move("r", 1, 2), move("s", None, 2)]).ok
                assert other.get_ref("r") == oid(2)
                assert backend.get_ref("r") == oid(1)
                assert backend.has_objects([oid(2)]) == set()
                assert backend.list_refs() == {"r": oid(1)}
                assert len(backend.reflog()) == 1
                with backend.reading():
                    assert backend.get_ref("s") is None
                assert backend.get_objects([oid(2)]) == {}
            assert backend.get_ref("r") == oid(2)
            assert backend.has_objects([oid(2)]) == {oid(2)}
            assert len(backend.reflog()) == 3
        finally:
            other.close()

    def test_writes_from_one_instance_are_seen_by_another(
        self, backend: Backend, path: Path
    ) -> None:
        other = SQLiteBackend.open(path, busy_timeout=5)
        try:
            backend.write([obj(1)], [move("r", None, 1)])
            result = other.write([obj(2)], [move("r", None, 2)])
            assert (result.ok, result.found) == (False, oid(1))
            assert other.write([obj(2)], [move("r", 1, 2)]).ok
            assert backend.get_ref("r") == oid(2)
        finally:
            other.close()

    def test_calls_after_close_fail(self, backend: Backend) -> None:
        backend.close()
        with pytest.raises(Exception):  # noqa: B017, PT011 - any error, never silent success
            backend.get_ref("r")

    def test_exclusive_keeps_other_writers_out(self, backend: SQLiteBackend, path: Path) -> None:
        other = SQLiteBackend.open(path, busy_timeout=0.2)
        try:
            with backend.exclusive():
                backend.write([obj(1)], [move("r", None, 1)])
                with pytest.raises(StoreBusy):
                    other.write([obj(2)], [move("s", None, 2)])
                assert other.get_ref("r") is None  # readers still see the last commit
            assert other.get_ref("r") == oid(1)
            assert other.write([obj(2)], [move("s", None, 2)]).ok
        finally:
            other.close()

    @pytest.mark.parametrize("strategy", ["sql", "python"])
    def test_both_mark_strategies_sweep_alike(self, backend: SQLiteBackend, strategy: str) -> None:
        backend.write([obj(n, b"y" * n) for n in range(1, 1500)])
        keep = [oid(n) for n in range(1, 1500, 3)]
        with backend.marks(strategy=strategy) as marks:  # type: ignore[arg-type]
            assert len(marks.add(keep)) == len(keep)
            assert marks.add(keep[:10]) == []
            expected = Swept(1499 - len(keep), sum(n for n in range(1, 1500) if n % 3 != 1))
            assert marks.sweep(2**40, dry_run=True) == expected
            with backend.exclusive():
                assert marks.sweep(2**40) == expected
        assert sorted(backend.iter_ids()) == keep

    def test_stores_made_before_prune_marks_get_the_table_when_first_pruned(
        self, backend: SQLiteBackend, path: Path
    ) -> None:
        backend.close()
        with sqlite3.connect(path) as conn:
            conn.execute("DROP TABLE pruned")
        reopened = SQLiteBackend.open(path)
        try:
            assert reopened.prune_marks() == {}
            assert reopened.prune_marks([oid(1)]) == {}
            reopened.set_prune_marks([mark(1)])
            assert reopened.prune_marks() == {oid(1): mark(1)}
        finally:
            reopened.close()

    def test_reclaim_gives_the_space_back(self, backend: SQLiteBackend, path: Path) -> None:
        backend.write([obj(n, random.Random(n).randbytes(3000)) for n in range(400)])
        backend.reclaim()
        full = backend.usage().disk_bytes
        assert full == path.stat().st_size + Path(f"{path}-wal").stat().st_size
        assert full > 400 * 3000
        backend.delete_objects([oid(n) for n in range(1, 400)])
        backend.reclaim()
        assert backend.usage().disk_bytes < full / 10
        assert backend.get_objects([oid(0)]) == {oid(0): obj(0, random.Random(0).randbytes(3000))}
