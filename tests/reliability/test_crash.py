"""kill -9 at random moments: commits (the API and the real ``ckpt`` command), init, gc, prune.

After every kill the store is checked as a whole: fsck is clean; every session head
is the commit it was before the interrupted command or the one that command was
making, never anything else; that commit, if it landed, holds exactly the state the
command was writing; every commit acknowledged before the kill (its call returned,
its command exited 0) is still there, in its session's history and reflog, and loads
exactly. Half the stores use ``durability="fast"``: a process crash loses nothing
acknowledged in that mode either (only a power loss can roll it back).
"""

from __future__ import annotations

import json
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ckptstore import RetentionPolicy, Store, StoreNotFound
from ckptstore.backends.sqlite import Durability
from ckptstore.trees import INLINE_MAX
from reliability.harness import (
    ForkServer,
    apply_step,
    assert_fsck_clean,
    assert_reflog_matches,
    scaled,
    state_for,
    step_kind,
    step_vars,
    user_fields,
)
from storetools import all_ids, drop_session, reachable, state

SESSIONS = ["alpha", "beta", "gamma"]
API_KILLS = scaled(200, 3000)
KILLS_PER_STORE = 25
WINDOW = 0.04  # seconds after the fork within which the API child is killed
CLI_KILLS = scaled(30, 300)
INIT_KILLS = scaled(8, 60)
MAINTENANCE_KILLS = scaled(12, 100)  # for gc, and again for prune


class Model:
    """What each session must hold: its commits, oldest first, with their user fields."""

    def __init__(self) -> None:
        self.sessions: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        self.unchecked: list[tuple[str, dict[str, Any]]] = []

    def head(self, session: str) -> tuple[str, dict[str, Any]] | None:
        commits = self.sessions.get(session)
        return commits[-1] if commits else None

    def add(self, session: str, oid: str, fields: dict[str, Any]) -> None:
        self.sessions.setdefault(session, []).append((oid, fields))
        self.unchecked.append((oid, fields))

    def acknowledged(self, session: str, oid: str, seq: int) -> None:
        """A step whose commit returned: it must be there for good."""
        head = self.head(session)
        self.add(session, oid, apply_step(head[1] if head else None, seq))

    def settle(self, store: Store, session: str, expected: dict[str, Any]) -> bool:
        """After a kill during a commit of ``expected``: the head is the old or the new commit.

        Returns whether the interrupted commit landed (it is then part of the model).
        """
        head = self.head(session)
        found = store.sessions().get(session)
        if found == (head[0] if head else None):
            return False
        assert found is not None, f"session {session} lost its head"
        info = store.get_commit(found)
        assert info.parents == ((head[0],) if head else ()), "the new head is not on the old"
        assert user_fields(store.load(found)) == expected, "a partial commit is visible"
        self.add(session, found, expected)
        return True

    def check(self, store: Store, *, everything: bool = False) -> int:
        """The store holds exactly the model; returns how many commits were loaded."""
        assert_fsck_clean(store)
        assert store.sessions() == {s: c[-1][0] for s, c in self.sessions.items()}
        for session, commits in self.sessions.items():
            ids = [oid for oid, _ in commits]
            assert [c.id for c in store.log(session=session, limit=None)] == ids[::-1]
            assert_reflog_matches(store, session, ids)
        # fsck re-hashed every object and the logs pinned every commit id, so commits
        # loaded after an earlier kill cannot have changed; load the new ones.
        todo = [c for cs in self.sessions.values() for c in cs] if everything else self.unchecked
        for oid, fields in todo:
            assert user_fields(store.load(oid)) == fields, oid
        self.unchecked = []
        return len(todo)


def test_api_commits_killed_at_random_moments_lose_nothing_acknowledged(
    tmp_path: Path, fork_server: ForkServer, figure: Callable[[str], None]
) -> None:
    rng = random.Random()
    kills = landed = acked = loaded = stores = 0
    by_mode = {"full": 0, "fast": 0}
    while kills < API_KILLS:
        durability: Durability = "full" if stores % 2 == 0 else "fast"
        directory = tmp_path / f"store{stores}"
        Store.init(directory, durability=durability).close()
        stores += 1
        model = Model()
        seq = 0
        for _ in range(min(KILLS_PER_STORE, API_KILLS - kills)):
            job = fork_server.start(
                "commit_loop", store=str(directory), sessions=SESSIONS, start=seq, count=10**6
            )
            job.wait_for("forked")
            time.sleep(rng.uniform(0, WINDOW))
            job.kill()
            job.finish()
            assert job.killed, "the child finished a million commits before the kill"
            kills += 1
            by_mode[durability] += 1
            acks = job.named("ack")
            assert [a["seq"] for a in acks] == list(range(seq, seq + len(acks)))
            for ack in acks:
                model.acknowledged(ack["session"], ack["id"], ack["seq"])
            acked += len(acks)
            seq += len(acks)  # the step the kill interrupted (or had not started)
            session = SESSIONS[seq % len(SESSIONS)]
            head = model.head(session)
            with Store.open(directory) as store:
                landed += model.settle(store, session, apply_step(head[1] if head else None, seq))
                loaded += model.check(store)
            seq += 1
        with Store.open(directory) as store:
            loaded += model.check(store, everything=True)
    figure(
        f"{kills} kills survived ({by_mode['full']} full, {by_mode['fast']} fast) in {stores}"
        f" stores; {acked} acknowledged commits kept, {landed} interrupted commits landed whole,"
        f" {kills - landed} left no trace; {loaded} loads verified"
    )


# --- the real ckpt command -----------------------------------------------------------------


def ckpt_command() -> list[str]:
    """The installed ``ckpt`` script next to this interpreter (else ``python -m ckpt_cli``)."""
    script = Path(sys.executable).with_name("ckpt")
    return [str(script)] if script.exists() else [sys.executable, "-m", "ckpt_cli"]


def cli_step(directory: Path, seq: int, session: str, scratch: Path) -> list[str]:
    """The ``ckpt commit`` arguments of step ``seq`` (a full state from a file, or --var)."""
    args = [*ckpt_command(), "--store", str(directory), "commit", "--json", "--no-probe"]
    args += ["--session", session, "-m", f"step {seq}"]
    if step_kind(seq) == "full":
        path = scratch / f"state{seq}.json"
        path.write_text(json.dumps(state_for(seq)))
        return [*args, "--state", str(path)]
    for key, value in step_vars(seq).items():
        args += ["--var", key, json.dumps(value) if isinstance(value, int) else value]
    return args


def test_ckpt_commit_killed_at_random_moments_loses_nothing_acknowledged(
    tmp_path: Path, figure: Callable[[str], None]
) -> None:
    rng = random.Random()
    directory = tmp_path / ".ckpt"
    Store.init(directory).close()
    model = Model()
    durations = []
    for seq in range(4):  # uninterrupted runs: how long a command takes here, now
        began = time.monotonic()
        done = subprocess.run(
            cli_step(directory, seq, SESSIONS[seq % 2], tmp_path), capture_output=True, text=True
        )
        durations.append(time.monotonic() - began)
        assert done.returncode == 0, done.stderr
        model.acknowledged(SESSIONS[seq % 2], json.loads(done.stdout)["id"], seq)
    typical = statistics.median(durations)
    kills = landed = finished = 0
    seq = 4
    while kills < CLI_KILLS:
        session = SESSIONS[seq % 2]
        with subprocess.Popen(
            cli_step(directory, seq, session, tmp_path),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as proc:
            # Most of a command's life is interpreter start-up: aim at the end of it,
            # and follow the machine's pace with the durations of runs that finish first.
            began = time.monotonic()
            try:
                proc.wait(timeout=rng.uniform(0.6, 1.1) * typical)
            except subprocess.TimeoutExpired:
                proc.kill()
            else:
                durations.append(time.monotonic() - began)
                typical = statistics.median(durations[-7:])
            out, err = proc.communicate(timeout=60)
        head = model.head(session)
        expected = apply_step(head[1] if head else None, seq)
        if proc.returncode == 0:
            finished += 1
            model.acknowledged(session, json.loads(out)["id"], seq)
        else:
            assert proc.returncode == -9, err
            kills += 1
            with Store.open(directory) as store:
                landed += model.settle(store, session, expected)
        with Store.open(directory) as store:
            model.check(store)
        seq += 1
    with Store.open(directory) as store:
        loaded = model.check(store, everything=True)
    figure(
        f"{kills} `ckpt commit` processes killed (a command takes {typical * 1000:.0f} ms"
        f" here): {landed} had landed their commit whole, {kills - landed} left no trace;"
        f" {finished} finished first; {loaded} commits verified"
    )


def test_ckpt_init_killed_at_random_moments_leaves_no_store_or_a_whole_one(
    tmp_path: Path, figure: Callable[[str], None]
) -> None:
    rng = random.Random()
    began = time.monotonic()
    subprocess.run([*ckpt_command(), "init", str(tmp_path / "timing")], check=True)
    typical = time.monotonic() - began
    outcomes = {"none": 0, "whole": 0, "finished": 0}
    for n in range(INIT_KILLS):
        directory = tmp_path / f"init{n}"
        with subprocess.Popen([*ckpt_command(), "init", str(directory)]) as proc:
            time.sleep(rng.uniform(0.5, 1.2) * typical)
            proc.kill()
        try:
            store = Store.open(directory)
        except StoreNotFound:
            outcomes["none"] += 1
            store = Store.init(directory)  # a second init is not confused by the first
        else:
            outcomes["finished" if proc.returncode == 0 else "whole"] += 1
        with store:
            store.commit(variables={"n": n})
            assert store.load()["variables"] == {"n": n}
            assert_fsck_clean(store)
    figure(
        f"{INIT_KILLS} `ckpt init` runs killed: {outcomes['none']} left no store (a new init"
        f" then worked), {outcomes['whole']} left a whole store, {outcomes['finished']}"
        " finished first"
    )


# --- gc and prune --------------------------------------------------------------------------


def maintenance_store(directory: Path) -> dict[str, dict[str, Any]]:
    """Four sessions (one forked), plus a lot of garbage; returns commit id -> user fields."""
    expected = {}
    with Store.init(directory) as store:
        for i in range(48):
            fields = state(i, tasks=30, tag=f"s{i % 3}")
            info = store.commit(fields, session=f"s{i % 3}")
            expected[info.id] = fields
        store.fork("fork", "s0~5")
        for i in range(6):
            fields = state(100 + i, tasks=30, tag="fork")
            expected[store.commit(fields, session="fork").id] = fields
        for n in range(6):  # ~1,800 objects nothing will reach once the reflog expires
            long_tag = f"junk{n} " + "x" * INLINE_MAX  # each task its own blob
            store.commit(state(n, tasks=300, tag=long_tag), session="junk")
        drop_session(store, "junk")
    return expected


def histories(store: Store) -> dict[str, list[str]]:
    return {s: [c.id for c in store.log(session=s, limit=None)] for s in store.sessions()}


def run_killed(
    server: ForkServer, op: str, directory: Path, delay: float | None, **args: Any
) -> tuple[bool, list[str]]:
    """Run gc or prune on ``directory`` in a child; SIGKILL it ``delay`` s after the fork."""
    job = server.start(op, store=str(directory), ahead=5.0, **args)
    if delay is not None:
        job.wait_for("forked")
        time.sleep(delay)
        job.kill()
    job.finish()
    return job.killed, [e["phase"] for e in job.named("phase")]


def test_gc_and_prune_killed_at_random_moments_leave_the_store_sound(
    tmp_path: Path, fork_server: ForkServer, figure: Callable[[str], None]
) -> None:
    rng = random.Random()
    base = tmp_path / "base"
    expected = maintenance_store(base)
    with Store.open(base) as store:
        before = histories(store)
        start = all_ids(store)
        junk = reachable(store, reflog=True) - reachable(store)  # only the reflog reaches it
    assert len(junk) > 1000
    references = {}
    for op, args in (("gc", {}), ("prune", {"keep": 4})):
        copy = tmp_path / f"{op}-reference"
        shutil.copytree(base, copy)
        began = time.monotonic()
        killed, _ = run_killed(fork_server, op, copy, None, **args)
        duration = time.monotonic() - began
        assert not killed
        with Store.open(copy) as store:
            references[op] = (duration, histories(store), all_ids(store))
    assert not junk & references["gc"][2]  # gc (no reflog expiry) took all of it
    pruned_histories = references["prune"][1]
    assert all(len(pruned_histories[s]) < len(before[s]) for s in before)
    counts: dict[str, dict[str, int]] = {}
    for op, args in (("gc", {}), ("prune", {"keep": 4})):
        duration, final_histories, final_ids = references[op]
        seen = counts[op] = {"killed": 0, "untouched": 0, "partial": 0, "done": 0}
        for n in range(MAINTENANCE_KILLS):
            copy = tmp_path / f"{op}{n}"
            shutil.copytree(base, copy)
            killed, phases = run_killed(
                fork_server, op, copy, rng.uniform(0, 1.1) * duration, **args
            )
            seen["killed"] += killed
            with Store.open(copy) as store:
                assert_fsck_clean(store, (op, phases))
                now = histories(store)
                assert all(now[s] in (before[s], final_histories[s]) for s in before), phases
                for ids in now.values():
                    for oid in ids:
                        assert user_fields(store.load(oid)) == expected[oid]
                left = all_ids(store)
                assert left >= set(final_ids)
                if left == final_ids:
                    seen["done"] += 1
                elif now == before and left == start:
                    seen["untouched"] += 1
                else:
                    seen["partial"] += 1  # prune marks written, gc not finished
                # Running the command again finishes the job exactly.
                if op == "gc":
                    store.gc(grace=0, reflog_expiry=0, now=time.time() + 5)
                else:
                    store.prune(
                        RetentionPolicy(last=4), grace=0, reflog_expiry=0, now=time.time() + 5
                    )
                assert (histories(store), all_ids(store)) == (final_histories, final_ids)
                assert_fsck_clean(store)
    figure(
        " ; ".join(
            f"{op}: {c['killed']} of {MAINTENANCE_KILLS} runs killed (untouched {c['untouched']},"
            f" half-way {c['partial']}, finished {c['done']})"
            for op, c in counts.items()
        )
        + f"; {len(junk)} unreachable objects at stake each time"
    )
