"""Many processes on one store at once: writers, readers and a gc loop.

Every writer commits to its own session and to one shared session, full states and
incremental ones, and now and then stores the objects of its next checkpoint as
unreferenced garbage first, so that the gc loop (no grace period) may delete them
between the commit's existence check and its write. Readers load and diff the whole
time. Afterwards: every acknowledged commit is in its session's history and loads
exactly, the shared session is one linear chain with exactly one reflog entry per
move, fsck is clean, and no process saw any error: no "database is locked", no
``StoreBusy``, no ``RefConflict``.
"""

from __future__ import annotations

import multiprocessing as mp
import random
import time
import traceback
from collections.abc import Callable
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier, Event
from pathlib import Path
from typing import Any

from ckptstore import Store
from ckptstore.diff import apply_changes, diff_states
from ckptstore.snapshot import write_state
from ckptstore.validation import validate_state
from reliability.harness import EMPTY, assert_fsck_clean, scaled, user_fields
from test_concurrency import verify_chain, verify_reflog, verify_worker_order

CTX = mp.get_context("spawn")
WRITERS = scaled(8, 12)
COMMITS = scaled(250, 2000)
READERS = 2
TIMEOUT = 1800.0
SHARED = "shared"


def variables_for(writer: int, i: int) -> dict[str, Any]:
    return {"w": writer, "n": i, "check": writer * 1_000_003 + i * 7, "items": [i] * (i % 5)}


def tasks_for(writer: int, i: int) -> list[dict[str, Any]]:
    return [
        {"id": f"{writer}.{k}", "subject": f"writer {writer}, commit {i}, task {k} " * 2}
        for k in range(3)
    ]


def full_state(writer: int, i: int) -> dict[str, Any]:
    return {"tasks": tasks_for(writer, i), "variables": variables_for(writer, i)}


def consistent(fields: dict[str, Any]) -> bool:
    """Whether a loaded checkpoint is one some writer made (not a mix of two)."""
    variables = fields.get("variables", {})
    w, n = variables.get("w"), variables.get("n")
    if not (isinstance(w, int) and isinstance(n, int)) or variables != variables_for(w, n):
        return False
    tasks = fields.get("tasks", [])
    if not tasks:
        return True  # an incremental commit on an empty session
    try:  # "writer W, commit I, task K"
        owner, number = (int(part.split()[-1]) for part in tasks[0]["subject"].split(",")[:2])
    except (KeyError, ValueError):
        return False
    return tasks == tasks_for(owner, number)


# --- processes (module level, so "spawn" can import them) --------------------------------


def writer(store_dir: str, number: int, count: int, start: Barrier, out: Queue[Any]) -> None:
    acks: list[tuple[str, str, int, str]] = []
    reused = rebuilt = 0
    rng = random.Random(number)
    try:
        with Store.open(store_dir) as store:
            start.wait(timeout=120)
            for i in range(count):
                session = SHARED if rng.random() < 0.5 else f"w{number}"
                kind = "full" if rng.random() < 0.6 else "vars"
                if kind == "full" and session != SHARED and rng.random() < 0.5:
                    # The next checkpoint's objects, stored unreferenced: garbage that gc
                    # may delete at any moment, while this commit tries to reuse it (in
                    # its own session, where no race makes it write a second commit).
                    built = write_state(validate_state(full_state(number, i)))
                    store.backend.write(store.objects.prepare(built.pending))
                    written = store.objects.stats.objects_written
                    info = store.commit(full_state(number, i), session=session)
                    if store.objects.stats.objects_written - written > 1:
                        rebuilt += 1
                    else:
                        reused += 1
                elif kind == "full":
                    info = store.commit(full_state(number, i), session=session)
                else:
                    info = store.commit(variables=variables_for(number, i), session=session)
                acks.append((session, info.id, i, kind))
        out.put(("writer", number, acks, (reused, rebuilt), None))
    except BaseException:
        out.put(("writer", number, acks, (reused, rebuilt), traceback.format_exc()))


def reader(store_dir: str, number: int, start: Barrier, stop: Event, out: Queue[Any]) -> None:
    loads = diffs = 0
    problems: list[str] = []
    rng = random.Random(100 + number)
    try:
        with Store.open(store_dir) as store:
            start.wait(timeout=120)
            while not stop.is_set() and len(problems) < 5:
                try:
                    sessions = list(store.sessions())
                    if not sessions:
                        continue
                    session = rng.choice(sessions)
                    if rng.random() < 0.5:
                        fields = user_fields(store.load(f"sessions/{session}"))
                        loads += 1
                        if not consistent(fields):
                            problems.append(f"a mixed checkpoint: {fields!r}")
                        continue
                    pair = store.log(session=session, limit=2)
                    if len(pair) < 2:
                        continue
                    new, old = (user_fields(store.load(c.id)) for c in pair)
                    changes = store.diff(pair[1].id, pair[0].id)
                    loads += 2
                    diffs += 1
                    if changes != diff_states(old, new) or apply_changes(old, changes) != new:
                        problems.append(f"a wrong diff between {pair[1].id} and {pair[0].id}")
                except Exception:
                    problems.append(traceback.format_exc())
        out.put(("reader", number, (loads, diffs), problems, None))
    except BaseException:
        out.put(("reader", number, (loads, diffs), problems, traceback.format_exc()))


def collector(store_dir: str, start: Barrier, stop: Event, out: Queue[Any]) -> None:
    rounds = removed = 0
    try:
        with Store.open(store_dir) as store:
            start.wait(timeout=120)
            while not stop.is_set():
                # No grace: everything unreachable is fair game, so only gc's re-mark
                # under the write lock keeps a commit's reused objects alive.
                removed += store.gc(grace=0, now=time.time() + 3).objects_removed
                rounds += 1
        out.put(("gc", 0, rounds, removed, None))
    except BaseException:
        out.put(("gc", 0, rounds, removed, traceback.format_exc()))


# --- the test --------------------------------------------------------------------------------


def expected_fields(
    store: Store, kind: str, writer_number: int, i: int, parents: tuple[str, ...]
) -> dict[str, Any]:
    if kind == "full":
        return validate_state(full_state(writer_number, i))
    base = user_fields(store.load(parents[0])) if parents else dict(EMPTY)
    return {**base, "variables": variables_for(writer_number, i)}


def test_writers_readers_and_gc_on_one_store_lose_nothing(
    store_dir: Path, figure: Callable[[str], None]
) -> None:
    began = time.monotonic()
    out: Queue[Any] = CTX.Queue()
    start = CTX.Barrier(WRITERS + READERS + 1)
    stop = CTX.Event()
    directory = str(store_dir)
    writers = [
        CTX.Process(target=writer, args=(directory, w, COMMITS, start, out)) for w in range(WRITERS)
    ]
    others = [
        CTX.Process(target=reader, args=(directory, r, start, stop, out)) for r in range(READERS)
    ]
    others.append(CTX.Process(target=collector, args=(directory, start, stop, out)))
    for proc in [*writers, *others]:
        proc.start()
    results: dict[tuple[str, int], tuple[Any, ...]] = {}
    try:
        for _ in writers:
            item = out.get(timeout=TIMEOUT)
            results[item[0], item[1]] = item[2:]
        stop.set()
        for _ in others:
            item = out.get(timeout=TIMEOUT)
            results[item[0], item[1]] = item[2:]
    finally:
        stop.set()
        for proc in [*writers, *others]:
            proc.join(timeout=60)
            if proc.is_alive():
                proc.kill()
    errors = [f"{who}: {r[-1]}" for who, r in results.items() if r[-1]]
    assert errors == [], "\n".join(errors)
    problems = [p for (who, _), r in results.items() if who == "reader" for p in r[1]]
    assert problems == [], "\n".join(problems[:3])
    elapsed = time.monotonic() - began

    acks = {w: results["writer", w][0] for w in range(WRITERS)}
    assert all(len(a) == COMMITS for a in acks.values())
    with Store.open(store_dir) as store:
        by_session: dict[str, dict[int, list[str]]] = {}
        for w, mine in acks.items():
            for session, oid, _, _ in mine:
                by_session.setdefault(session, {}).setdefault(w, []).append(oid)
        assert set(store.sessions()) == set(by_session)
        for session, per_writer in by_session.items():
            history = verify_chain(store, session)  # one linear first-parent chain
            assert len(history) == sum(len(ids) for ids in per_writer.values())
            verify_worker_order(history, per_writer)  # every acknowledged commit, in order
            verify_reflog(store, session, history)  # exactly one entry per move
        parents = {c.id: c.parents for s in by_session for c in store.log(session=s, limit=None)}
        for w, mine in acks.items():
            for _, oid, i, kind in mine:
                expected = expected_fields(store, kind, w, i, parents[oid])
                assert user_fields(store.load(oid)) == expected, (w, i, kind)
        assert_fsck_clean(store)
        shared = len(store.log(session=SHARED, limit=None))
    loads = sum(results["reader", r][0][0] for r in range(READERS))
    diffs = sum(results["reader", r][0][1] for r in range(READERS))
    rounds, removed = results["gc", 0][0:2]
    reused = sum(results["writer", w][1][0] for w in range(WRITERS))
    rebuilt = sum(results["writer", w][1][1] for w in range(WRITERS))
    assert rounds > 0
    assert loads > 0
    assert diffs > 0
    figure(
        f"{WRITERS} processes x {COMMITS} commits = {WRITERS * COMMITS} acknowledged commits"
        f" verified ({shared} in one linear shared chain, reflog one entry per move), with"
        f" {READERS} readers ({loads} loads, {diffs} diffs checked) and {rounds} gc rounds"
        f" ({removed} objects removed; {reused} commits reused planted garbage, {rebuilt}"
        f" rebuilt it after gc took it); 0 errors, 0 StoreBusy; {elapsed:.0f}s"
    )
