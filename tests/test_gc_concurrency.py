"""gc against real processes: writers committing while gc loops, and gc killed with SIGKILL.

The stress test runs ``CKPT_GC_STRESS_ROUNDS`` gc rounds (default 200, about 5 s; 1,000
rounds take about 3 minutes). gc runs with no grace period and with every age measured
a few seconds ahead, so only its exact re-mark under the write lock protects what
writers reuse: before each commit, a writer stores the very same tasks in a throwaway
session and drops it, so the commit either reuses that garbage (if gc has not collected
it yet) or writes it again, and sometimes gc collects it between the writer's existence
check and its write.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import traceback
from multiprocessing.queues import Queue
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

from ckptstore import Store
from storetools import all_ids, drop_session, later, reachable, state

CTX = mp.get_context("spawn")
ROUNDS = int(os.environ.get("CKPT_GC_STRESS_ROUNDS", "200"))
WRITERS = 2
TIMEOUT = 600.0
PAUSE = 0.05  # seconds, at most, between dropping the garbage and committing it again


def tasks_for(writer: int, i: int) -> list[dict[str, Any]]:
    return [
        # Longer than INLINE_MAX: each task is a blob of its own, which gc can take.
        {"id": f"{writer}-{i}-{k}", "subject": f"writer {writer} step {i} task {k} " * 12}
        for k in range(4)
    ]


def writer(
    store_dir: str,
    number: int,
    rounds: Synchronized[int],
    stop: Event,
    out: Queue[Any],
    steps: Synchronized[int],
) -> None:
    ids: list[str] = []
    reused = rewritten = 0
    rng = random.Random(number)
    try:
        with Store.open(store_dir) as store:
            i = 0
            while not stop.is_set():
                # At most one step per gc round: the store (and each round's mark) grows
                # with the rounds, not with how fast this machine commits.
                while rounds.value < i and not stop.is_set():
                    time.sleep(0.001)
                scratch = f"scratch{number}"
                store.commit({"tasks": tasks_for(number, i)}, session=scratch)
                drop_session(store, scratch)  # its objects are garbage now
                # Half the time straight back (the commit usually beats gc to the
                # garbage), half after a pause (gc usually takes it first): both races run
                # whatever the machine's pace.
                time.sleep(rng.uniform(0, PAUSE) if rng.random() < 0.5 else 0)
                written = store.objects.stats.objects_written
                info = store.commit(
                    {"tasks": tasks_for(number, i), "variables": {"i": i}},
                    session=f"w{number}",
                )
                # The tasks list and its four blobs are either reused or written again.
                if store.objects.stats.objects_written - written < 7:
                    reused += 1
                else:
                    rewritten += 1
                ids.append(info.id)
                i += 1
                with steps.get_lock():
                    steps.value += 1
        out.put((number, ids, reused, rewritten, None))
    except BaseException:
        out.put((number, ids, reused, rewritten, traceback.format_exc()))


def collector(
    store_dir: str,
    rounds: int,
    counter: Synchronized[int],
    stop: Event,
    out: Queue[Any],
    steps: Synchronized[int],
) -> None:
    done = removed = 0
    try:
        with Store.open(store_dir) as store:
            # Writers take longer to start (spawned, importing): rounds run before any
            # of them commits would race nothing, and on a busy machine all of them could.
            deadline = time.monotonic() + TIMEOUT
            while steps.value < WRITERS and time.monotonic() < deadline and not stop.is_set():
                time.sleep(0.001)
            while done < rounds:
                stats = store.gc(grace=0, reflog_expiry=0, now=time.time() + 3)
                removed += stats.objects_removed
                done += 1
                counter.value = done
        stop.set()
        out.put(("gc", done, removed, None))
    except BaseException:
        stop.set()
        out.put(("gc", done, removed, traceback.format_exc()))


def test_commits_racing_a_gc_loop_all_survive(store_dir: Path) -> None:
    out: Queue[Any] = CTX.Queue()
    stop = CTX.Event()
    counter = CTX.Value("i", 0)
    steps = CTX.Value("i", 0)  # commits the writers have made, together
    procs = [
        CTX.Process(target=writer, args=(str(store_dir), n, counter, stop, out, steps))
        for n in range(WRITERS)
    ]
    procs.append(
        CTX.Process(target=collector, args=(str(store_dir), ROUNDS, counter, stop, out, steps))
    )
    for proc in procs:
        proc.start()
    results: dict[Any, tuple[Any, ...]] = {}
    try:
        for _ in procs:
            item = out.get(timeout=TIMEOUT)
            results[item[0]] = item[1:]
    finally:
        stop.set()
        for proc in procs:
            proc.join(timeout=TIMEOUT)
            if proc.is_alive():
                proc.kill()
    errors = [r[-1] for r in results.values() if r[-1]]
    assert errors == [], "\n".join(errors)
    rounds, removed, _ = results["gc"]
    assert rounds == ROUNDS
    assert removed > 0
    reused = sum(results[n][1] for n in range(WRITERS))
    rewritten = sum(results[n][2] for n in range(WRITERS))
    assert reused > 0, "no commit reused garbage: the race was never run"
    assert rewritten > 0, "gc never collected garbage before a writer came back to it"
    with Store.open(store_dir) as store:
        for n in range(WRITERS):
            ids = results[n][0]
            assert [c.id for c in store.log(session=f"w{n}", limit=None)] == ids[::-1]
            for i, oid in enumerate(ids):
                loaded = store.load(oid)
                assert loaded["tasks"] == tasks_for(n, i)
                assert loaded["variables"] == {"i": i}
        report = store.fsck()
        assert report.ok, [str(p) for p in report.problems]


# --- kill -9 during gc -------------------------------------------------------------------

GC_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from ckptstore import Store
    def report(phase, done, total):
        print(phase, flush=True)
    with Store.open(sys.argv[1]) as store:
        print("start", flush=True)
        store.gc(grace=0, reflog_expiry=0, now=time.time() + 5, progress=report)
    print("done", flush=True)
    """
)


def gc_killed_at(store_dir: Path, phase: str, delay: float) -> bool:
    """Run gc in a child process and SIGKILL it ``delay`` s after it reports ``phase``.

    Returns whether the kill landed before gc finished.
    """
    with subprocess.Popen(
        [sys.executable, "-c", GC_SCRIPT, str(store_dir)], stdout=subprocess.PIPE, text=True
    ) as child:
        assert child.stdout is not None
        try:
            for line in child.stdout:
                if line.strip() in (phase, "done"):
                    time.sleep(delay)
                    break
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=60)
        finally:
            if child.poll() is None:
                child.kill()
    return child.returncode == -signal.SIGKILL


KILL_POINTS = [
    ("start", 0.0), ("mark", 0.0), ("sweep", 0.0), ("sweep", 0.01), ("sweep", 0.025),
    ("sweep", 0.04), ("reclaim", 0.0), ("reclaim", 0.005),
]  # fmt: skip


def test_gc_killed_with_sigkill_leaves_the_store_sound(store_dir: Path, tmp_path: Path) -> None:
    with Store.open(store_dir) as store:
        heads = [store.commit(state(i), session=f"s{i % 3}").id for i in range(9)]
        for n in range(10):  # ~10,000 objects of garbage: the sweep takes a while
            store.commit(state(n, tasks=1000, tag=f"junk{n}"), session="junk")
        drop_session(store, "junk")
        live = reachable(store, reflog=False)
        garbage = all_ids(store) - live
    outcomes = []
    for n, (phase, delay) in enumerate(KILL_POINTS):
        copy = tmp_path / f"kill{n}"
        shutil.copytree(store_dir, copy)
        killed = gc_killed_at(copy, phase, delay)
        with Store.open(copy) as store:
            report = store.fsck()
            assert report.ok, (phase, delay, [str(p) for p in report.problems])
            for oid in heads:
                store.load(oid)
            left = all_ids(store) & garbage
            assert all_ids(store) >= live
            assert left in (garbage, set()), "a sweep is all or nothing"
            outcomes.append((killed, bool(left)))
            store.commit(state(99), session="after")
            store.gc(grace=0, reflog_expiry=0, now=later())
            assert store.fsck().ok
            assert all_ids(store) == reachable(store)
    assert all(killed for killed, _ in outcomes[:3])  # killed before the sweep...
    assert all(left for _, left in outcomes[:3])  # ...so nothing was deleted
