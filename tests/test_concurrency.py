"""Real processes racing on one store file: nothing lost, nothing torn, no errors.

Workers are started with the "spawn" context (fresh interpreters, no inherited
connections) and released together by a barrier so that they actually overlap.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import subprocess
import sys
import time
import traceback
from collections.abc import Sequence
from itertools import pairwise
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier, Event
from pathlib import Path
from typing import Any

import pytest

from ckptstore import CommitInfo, Store, StoreExists

CTX = mp.get_context("spawn")
N = 100
ITEMS = 40  # a list variable, so a torn checkpoint would show as a mismatched list
JOIN_TIMEOUT = 120.0


def variables_for(worker: int, i: int) -> dict[str, Any]:
    return {
        "w": worker,
        "n": i,
        "check": i * 7,
        "items": [worker * 10_000 + i + k for k in range(ITEMS)],
    }


def consistent(variables: dict[str, Any]) -> bool:
    """Whether one checkpoint's variables all come from the same commit."""
    w, n = variables.get("w"), variables.get("n")
    if not (isinstance(w, int) and isinstance(n, int)):
        return False
    return variables == variables_for(w, n)


# --- worker processes (module level, so "spawn" can import them) -----------------------


def commit_worker(
    store_dir: str, session: str, worker: int, count: int, start: Barrier, out: Queue[Any]
) -> None:
    ids: list[str] = []
    try:
        with Store.open(store_dir) as store:
            start.wait(timeout=60)
            for i in range(count):
                info = store.commit(session=session, variables=variables_for(worker, i))
                ids.append(info.id)
        out.put(("writer", worker, ids, None))
    except BaseException:
        out.put(("writer", worker, ids, traceback.format_exc()))


def reader_worker(store_dir: str, start: Barrier, stop: Event, out: Queue[Any]) -> None:
    loads = 0
    problems: list[str] = []
    states: set[tuple[int, int]] = set()
    try:
        with Store.open(store_dir) as store:
            start.wait(timeout=60)
            while loads == 0 or not stop.is_set():
                try:
                    data = store.load("HEAD")
                except Exception:
                    problems.append(traceback.format_exc())
                else:
                    variables = data.get("variables", {})
                    if not consistent(variables) or data.get("session_id") != "shared":
                        problems.append(f"inconsistent checkpoint: {data!r}")
                    else:
                        states.add((variables["w"], variables["n"]))
                loads += 1
                if len(problems) > 20:
                    break
        out.put(("reader", loads, len(states), problems))
    except BaseException:
        out.put(("reader", loads, len(states), [*problems, traceback.format_exc()]))


def init_worker(store_dir: str, worker: int, start: Barrier, out: Queue[Any]) -> None:
    created = False
    try:
        start.wait(timeout=60)
        try:
            store = Store.init(store_dir)
            created = True
        except StoreExists:
            store = Store.open(store_dir)
        with store:
            info = store.commit(session=f"w{worker}", variables={"w": worker})
        out.put((worker, created, info.id, None))
    except BaseException:
        out.put((worker, created, None, traceback.format_exc()))


# --- helpers ---------------------------------------------------------------------------


def run_writers(
    store_dir: Path, sessions: Sequence[str], count: int, *, with_reader: bool = False
) -> tuple[dict[int, list[str]], tuple[int, int, list[str]] | None]:
    """Run one writer per entry of ``sessions`` (and maybe a reader); return what they saw."""
    out: Queue[Any] = CTX.Queue()
    start = CTX.Barrier(len(sessions) + int(with_reader))
    stop = CTX.Event()
    writers = [
        CTX.Process(target=commit_worker, args=(str(store_dir), s, w, count, start, out))
        for w, s in enumerate(sessions)
    ]
    reader = (
        CTX.Process(target=reader_worker, args=(str(store_dir), start, stop, out))
        if with_reader
        else None
    )
    procs = [*writers, *([reader] if reader else [])]
    for proc in procs:
        proc.start()
    results: dict[int, list[str]] = {}
    errors: list[str] = []
    reader_result: tuple[int, int, list[str]] | None = None
    try:
        for _ in writers:
            _, worker, ids, error = out.get(timeout=JOIN_TIMEOUT)
            results[worker] = ids
            if error:
                errors.append(f"writer {worker}: {error}")
        stop.set()
        if reader is not None:
            _, loads, distinct, problems = out.get(timeout=JOIN_TIMEOUT)
            reader_result = (loads, distinct, problems)
    finally:
        stop.set()
        for proc in procs:
            proc.join(timeout=JOIN_TIMEOUT)
            if proc.is_alive():
                proc.kill()
    assert errors == [], "\n".join(errors)
    assert all(proc.exitcode == 0 for proc in procs), [p.exitcode for p in procs]
    return results, reader_result


def verify_chain(store: Store, session: str) -> list[CommitInfo]:
    """The session's history, checked to be one linear first-parent chain."""
    history = store.log(session=session, limit=None)
    for newer, older in pairwise(history):
        assert newer.parents == (older.id,), f"{newer.id} does not follow {older.id}"
        assert newer.session == session
    assert history[-1].parents == ()
    assert len({c.id for c in history}) == len(history)
    return history


def verify_reflog(store: Store, session: str, history: list[CommitInfo]) -> None:
    """One reflog entry per commit, each moving the ref on from the previous one."""
    entries = list(reversed(store.backend.reflog(f"sessions/{session}")))
    assert len(entries) == len(history)
    assert entries[0].old is None
    for previous, entry in pairwise(entries):
        assert entry.old == previous.new
        assert entry.seq > previous.seq
    assert [e.new.hex() if e.new else None for e in entries] == [c.id for c in reversed(history)]


def verify_worker_order(history: list[CommitInfo], results: dict[int, list[str]]) -> None:
    """Every reported commit is in the chain, in the order its worker made it."""
    position = {c.id: i for i, c in enumerate(reversed(history))}
    for worker, ids in results.items():
        assert len(ids) == len(set(ids))
        missing = [oid for oid in ids if oid not in position]
        assert missing == [], f"worker {worker} lost {len(missing)} commits"
        places = [position[oid] for oid in ids]
        assert places == sorted(places), f"worker {worker}'s commits are out of order"


# --- tests -----------------------------------------------------------------------------


@pytest.mark.slow
def test_two_processes_committing_to_different_sessions(store_dir: Path) -> None:
    began = time.monotonic()
    results, _ = run_writers(store_dir, ["alpha", "beta"], N)
    with Store.open(store_dir) as store:
        assert set(store.sessions()) == {"alpha", "beta"}
        for worker, session in enumerate(["alpha", "beta"]):
            history = verify_chain(store, session)
            assert len(history) == N
            assert [c.id for c in reversed(history)] == results[worker]
            verify_reflog(store, session, history)
            last = store.load(f"sessions/{session}")["variables"]
            assert last == variables_for(worker, N - 1)
    print(
        f"\n[concurrency] 2 processes x {N} commits to 2 sessions: {2 * N} commits verified"
        f" in {time.monotonic() - began:.1f}s"
    )


@pytest.mark.slow
@pytest.mark.parametrize("workers", [2, 4])
def test_processes_committing_to_one_session_lose_nothing(store_dir: Path, workers: int) -> None:
    began = time.monotonic()
    results, _ = run_writers(store_dir, ["shared"] * workers, N)
    total = workers * N
    with Store.open(store_dir) as store:
        assert list(store.sessions()) == ["shared"]
        history = verify_chain(store, "shared")
        assert len(history) == total
        assert {c.id for c in history} == {oid for ids in results.values() for oid in ids}
        verify_worker_order(history, results)
        verify_reflog(store, "shared", history)
        for commit in history:
            assert consistent(store.load(commit.id)["variables"])
    print(
        f"\n[concurrency] {workers} processes x {N} commits to one session: {total} commits"
        f" in one linear chain, reflog verified, in {time.monotonic() - began:.1f}s"
    )


@pytest.mark.slow
def test_reader_never_sees_an_error_or_a_torn_checkpoint(store_dir: Path) -> None:
    began = time.monotonic()
    with Store.open(store_dir) as store:
        store.commit(session="shared", variables=variables_for(99, 0))
        assert store.current_session == "shared"
    results, reader = run_writers(store_dir, ["shared", "shared"], N, with_reader=True)
    assert reader is not None
    loads, distinct, problems = reader
    assert problems == [], "\n".join(problems[:3])
    assert loads >= 1
    with Store.open(store_dir) as store:
        history = verify_chain(store, "shared")
        assert len(history) == 2 * N + 1
        verify_worker_order(history, results)
        verify_reflog(store, "shared", history)
    print(
        f"\n[concurrency] reader: {loads} loads of HEAD, {distinct} distinct checkpoints,"
        f" 0 errors, while 2 writers made {2 * N} commits ({time.monotonic() - began:.1f}s)"
    )


@pytest.mark.slow
def test_concurrent_cli_processes_commit_to_one_session(store_dir: Path) -> None:
    """``python -m ckptstore commit`` run side by side: every printed commit is kept."""
    began = time.monotonic()
    rounds, width = 6, 3
    base = [sys.executable, "-m", "ckptstore", "--store", str(store_dir), "commit", "--json"]
    base += ["--session", "shared"]
    reported: dict[int, list[str]] = {w: [] for w in range(width)}
    for i in range(rounds):
        procs = [
            subprocess.Popen(
                [*base, "--var", "w", str(w), "--var", "n", str(i)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for w in range(width)
        ]
        for w, proc in enumerate(procs):
            out, err = proc.communicate(timeout=JOIN_TIMEOUT)
            assert proc.returncode == 0, err
            assert err == ""
            reported[w].append(json.loads(out)["id"])
    with Store.open(store_dir) as store:
        history = verify_chain(store, "shared")
        assert len(history) == rounds * width
        verify_worker_order(history, reported)
        verify_reflog(store, "shared", history)
    print(
        f"\n[concurrency] {width} CLI processes x {rounds} rounds: {rounds * width} commits"
        f" verified ({time.monotonic() - began:.1f}s)"
    )


@pytest.mark.slow
def test_racing_inits_create_one_store_and_lose_no_commit(tmp_path: Path) -> None:
    """Processes that all run ``init`` then commit: one creates, the rest open; all commits stay."""
    began = time.monotonic()
    workers, trials = 4, 3
    for trial in range(trials):
        store_dir = tmp_path / f"trial{trial}" / ".ckpt"
        out: Queue[Any] = CTX.Queue()
        start = CTX.Barrier(workers)
        procs = [
            CTX.Process(target=init_worker, args=(str(store_dir), w, start, out))
            for w in range(workers)
        ]
        for proc in procs:
            proc.start()
        reports = [out.get(timeout=JOIN_TIMEOUT) for _ in procs]
        for proc in procs:
            proc.join(timeout=JOIN_TIMEOUT)
        errors = [error for *_, error in reports if error]
        assert errors == [], "\n".join(errors)
        created = sorted(w for w, made, _, _ in reports if made)
        with Store.open(store_dir) as store:
            kept = {name: str(oid) for name, oid in store.sessions().items()}
        lost = sorted(f"w{w}" for w, _, oid, _ in reports if kept.get(f"w{w}") != oid)
        assert (created, lost) == (created[:1], []), (
            f"trial {trial}: {len(created)} processes created the store {created},"
            f" commits reported as made but missing from the store: {lost}"
        )
    print(
        f"\n[concurrency] {trials} x {workers} racing inits: one store each, every commit kept"
        f" ({time.monotonic() - began:.1f}s)"
    )
