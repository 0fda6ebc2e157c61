"""The store against a model that is a plain dict: session -> list of states.

A Hypothesis state machine commits (full states and variable edits), forks, tags,
diffs, prunes, collects garbage, reopens the store and kills a commit in a child
process at a random moment, and after every step checks the store against the model:
every ref loads the model's state, every log lists the model's commits, fsck is
clean. Diffs are checked against a naive comparison of the two states.
"""

from __future__ import annotations

import itertools
import random
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from ckptstore import RetentionPolicy, Store
from ckptstore.diff import apply_changes, diff_states, section_of
from ckptstore.objects import encode
from ckptstore.validation import validate_state
from reliability.harness import EMPTY, ForkServer, assert_fsck_clean, scaled, user_fields
from strategies import KEYS, checkpoints, json_values

NAMES = ["main", "agent-1", "agent-2/retry", "fork"]
TAGS = ["v1", "before-deploy"]
_MISSING = object()


def same(a: Any, b: Any) -> bool:
    """Equal as stored: 1, 1.0 and True differ, and so do 0.0 and -0.0."""
    return encode(a) == encode(b)


def naive_sections(old: dict[str, Any], new: dict[str, Any]) -> set[str]:
    """The diff sections whose fields differ, found by comparing field by field."""
    changed = set()
    for name in old.keys() | new.keys():
        if name not in old or name not in new or not same(old[name], new[name]):
            changed.add(section_of(name))
    return changed


class StoreMachine(RuleBasedStateMachine):
    """Drives one on-disk store; ``sessions`` and ``states`` are the whole model."""

    base: ClassVar[Path]
    server: ClassVar[ForkServer]
    counter: ClassVar[itertools.count[int]] = itertools.count()
    seen: ClassVar[Counter[str]] = Counter()

    def __init__(self) -> None:
        super().__init__()
        self.path = self.base / f"store{next(self.counter)}"
        self.store = Store.init(self.path)
        self.sessions: dict[str, list[str]] = {}  # oldest first, as log shows them
        self.states: dict[str, dict[str, Any]] = {}  # commit id -> user fields
        self.tags: dict[str, str] = {}
        self.seen["examples"] += 1

    def teardown(self) -> None:
        self.store.close()

    # What a rule draws must not depend on the store: a crash lands or not by timing,
    # and Hypothesis replays an example expecting the same draws. So rules draw fixed
    # kinds of numbers first, and map them onto what exists afterwards.
    @staticmethod
    def _numbers(data: st.DataObject, count: int) -> list[int]:
        return [data.draw(st.integers(0, 1 << 16)) for _ in range(count)]

    def _pick(self, numbers: list[int]) -> tuple[str, int]:
        """An existing session and a position in it (as ``session~n``)."""
        names = sorted(self.sessions)
        session = names[numbers[0] % len(names)]
        return session, numbers[1] % len(self.sessions[session])

    def _record(self, session: str, oid: str, fields: dict[str, Any]) -> None:
        self.sessions.setdefault(session, []).append(oid)
        self.states[oid] = fields

    def _head_fields(self, session: str) -> dict[str, Any]:
        ids = self.sessions.get(session)
        return self.states[ids[-1]] if ids else dict(EMPTY)

    # --- rules ----------------------------------------------------------------------------

    @rule(session=st.sampled_from(NAMES), state=checkpoints(max_tasks=4))
    def commit_state(self, session: str, state: dict[str, Any]) -> None:
        info = self.store.commit(state, session=session)
        self._record(session, info.id, validate_state(state))
        self.seen["commits"] += 1

    @rule(
        session=st.sampled_from(NAMES),
        edits=st.lists(
            st.dictionaries(KEYS, json_values(6), min_size=1, max_size=3), min_size=1, max_size=5
        ),
    )
    def commit_variables(self, session: str, edits: list[dict[str, Any]]) -> None:
        """A few incremental commits in a row (long sessions give prune something to do)."""
        for variables in edits:
            before = self._head_fields(session)
            info = self.store.commit(variables=variables, session=session)
            merged = {**before.get("variables", {}), **variables}
            self._record(session, info.id, {**before, "variables": merged})
            self.seen["commits"] += 1

    @rule(data=st.data(), name=st.sampled_from(NAMES))
    def fork(self, data: st.DataObject, name: str) -> None:
        numbers = self._numbers(data, 2)
        if not self.sessions or name in self.sessions:
            return
        session, back = self._pick(numbers)
        self.store.fork(name, f"{session}~{back}")
        ids = self.sessions[session]
        self.sessions[name] = ids[: len(ids) - back]
        self.seen["forks"] += 1

    @rule(data=st.data(), name=st.sampled_from(TAGS))
    def tag(self, data: st.DataObject, name: str) -> None:
        numbers = self._numbers(data, 2)
        if not self.sessions:
            return
        session, back = self._pick(numbers)
        self.tags[name] = self.store.tag(name, f"{session}~{back}", force=True).id
        self.seen["tags"] += 1

    @rule(data=st.data())
    def diff(self, data: st.DataObject) -> None:
        numbers = self._numbers(data, 2)
        live = sorted({oid for ids in self.sessions.values() for oid in ids})
        if not live:
            return
        old, new = (live[n % len(live)] for n in numbers)
        changes = self.store.diff(old, new)
        a, b = self.states[old], self.states[new]
        assert changes == diff_states(a, b)
        assert same(apply_changes(a, changes), b)
        assert {c.section for c in changes} == naive_sections(a, b)
        self.seen["diffs"] += 1

    @rule(keep=st.integers(1, 4))
    def prune(self, keep: int) -> None:
        kept = {ids[-1] for ids in self.sessions.values()} | set(self.tags.values())
        kept |= {oid for ids in self.sessions.values() for oid in ids[-keep:]}
        everything = {oid for ids in self.sessions.values() for oid in ids}
        report = self.store.prune(RetentionPolicy(last=keep), grace=0, now=time.time() + 5)
        assert report.removed == len(everything - kept)
        self.sessions = {s: [oid for oid in ids if oid in kept] for s, ids in self.sessions.items()}
        self.seen["prunes"] += 1
        self.seen["checkpoints pruned"] += report.removed

    @rule()
    def gc(self) -> None:
        self.store.gc(grace=0, now=time.time() + 5)
        self.seen["gcs"] += 1

    @rule()
    def reopen(self) -> None:
        self.store.close()
        self.store = Store.open(self.path)
        self.seen["reopens"] += 1

    @rule(session=st.sampled_from(NAMES), state=checkpoints(max_tasks=4), seed=st.integers())
    def crash(self, session: str, state: dict[str, Any], seed: int) -> None:
        """A commit in another process, killed at a random moment: all of it or none."""
        job = self.server.start("commit_one", store=str(self.path), session=session, state=state)
        job.wait_for("forked")
        time.sleep(random.Random(seed).uniform(0, 0.03))
        job.kill()
        job.finish()
        old = self.sessions.get(session, [None])[-1]
        head = self.store.sessions().get(session)
        if head == old:
            self.seen["crashes that left no trace"] += 1
            return
        assert head is not None
        assert self.store.get_commit(head).parents == ((old,) if old else ())
        expected = validate_state(state)
        assert user_fields(self.store.load(head)) == expected
        self._record(session, head, expected)
        self.seen["crashes that landed whole"] += 1

    # --- invariants -----------------------------------------------------------------------

    @invariant()
    def refs_load_as_the_model_says(self) -> None:
        assert self.store.sessions() == {s: ids[-1] for s, ids in self.sessions.items() if ids}
        assert {t: info.id for t, info in self.store.tags().items()} == self.tags
        for session, ids in self.sessions.items():
            assert [c.id for c in self.store.log(session=session, limit=None)] == ids[::-1]
            assert user_fields(self.store.load(f"sessions/{session}")) == self.states[ids[-1]]
        for name, oid in self.tags.items():
            assert user_fields(self.store.load(f"tags/{name}")) == self.states[oid]

    @invariant()
    def fsck_is_clean(self) -> None:
        assert_fsck_clean(self.store)


def test_the_store_behaves_like_a_dict_of_lists(
    tmp_path: Path, fork_server: ForkServer, figure: Callable[[str], None]
) -> None:
    StoreMachine.base = tmp_path
    StoreMachine.server = fork_server
    StoreMachine.seen.clear()
    run_state_machine_as_test(
        StoreMachine,
        settings=settings(
            max_examples=scaled(20, 200), stateful_step_count=scaled(40, 60), deadline=None
        ),
    )
    seen = StoreMachine.seen
    figure(", ".join(f"{n} {what}" for what, n in sorted(seen.items())) + "; 0 divergences")
