"""Prune: forget old checkpoints of sessions by a retention policy, then collect garbage.

Commits are immutable and name their parents, so pruning cannot rewrite history; it
*cuts* it. For every kept commit whose first parent is forgotten, prune records a
:class:`~ckptstore.backends.base.PruneMark`: the pruned parent's checkpoint id (so
``load`` still reports it), the nearest kept ancestor (so ``log`` continues there after
a "history pruned" line, and gc keeps that ancestor alive) and how many checkpoints
were skipped. gc's mark follows the prune mark instead of the first parent, so the
forgotten commits (and whatever only they used) become garbage; prune also drops the
reflog entries that would keep them alive, then runs gc.

What is kept:

* every commit the policy keeps in each pruned session's history;
* the head of every session and every tagged commit;
* the whole history of every session not being pruned (``sessions=[...]`` limits a
  prune) and of any ref that is neither a session nor a tag;
* any commit a kept commit names as a second parent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from ckptstore.backends.base import PruneMark
from ckptstore.commit_object import Commit
from ckptstore.commits import checkpoint_id_of, read_commit
from ckptstore.errors import EmptySession, RefConflict
from ckptstore.gc import (
    DEFAULT_GRACE,
    DEFAULT_REFLOG_EXPIRY,
    GCStats,
    GCView,
    Progress,
    collect_garbage,
)
from ckptstore.objects import ObjectId, hex_id
from ckptstore.objectstore import ObjectStore
from ckptstore.refs import SESSION_PREFIX, TAG_PREFIX, check_name
from ckptstore.retention import CheckpointTime, RetentionPolicy, apply_policy, checkpoint_time

__all__ = ["PruneReport", "PrunedCheckpoint", "SessionPrune", "apply_retention"]

_OPTIMISTIC_ATTEMPTS: Final = 3


class PrunedCheckpoint(NamedTuple):
    """A checkpoint, as a prune report lists it; ``reasons`` say why it is kept."""

    id: ObjectId
    checkpoint_id: str
    session: str
    created_at: str
    notes: str
    reasons: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        out: dict[str, Any] = {
            "checkpoint_id": self.checkpoint_id,
            "id": self.id,
            "session": self.session,
            "created_at": self.created_at,
            "notes": self.notes,
        }
        if self.reasons:
            out["reasons"] = list(self.reasons)
        return out


class SessionPrune(NamedTuple):
    """One pruned session: its checkpoints kept (with reasons) and removed, newest first."""

    session: str
    kept: list[PrunedCheckpoint]
    removed: list[PrunedCheckpoint]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "session": self.session,
            "kept": [c.to_dict() for c in self.kept],
            "removed": [c.to_dict() for c in self.removed],
        }


class PruneReport(NamedTuple):
    """What a prune did (or, with ``dry_run``, would do), session by session, and its gc."""

    policy: RetentionPolicy
    sessions: list[SessionPrune]
    removed: int
    """Checkpoints forgotten (each counted once, however many sessions shared it)."""
    gc: GCStats
    dry_run: bool

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``--json`` output)."""
        return {
            "policy": self.policy.to_dict(),
            "dry_run": self.dry_run,
            "removed": self.removed,
            "sessions": [s.to_dict() for s in self.sessions],
            "gc": self.gc.to_dict(),
        }


@dataclass
class _Plan:
    refs: dict[str, bytes]
    old_marks: dict[bytes, PruneMark]
    forgotten: set[bytes]
    new_marks: list[PruneMark]
    sessions: list[SessionPrune]


class _Planner:
    """Reads histories and decides, for one state of the refs and prune marks."""

    def __init__(self, objects: ObjectStore) -> None:
        self.objects = objects
        self.commits: dict[bytes, Commit] = {}
        self.marks: dict[bytes, PruneMark] = {}

    def commit(self, oid: bytes) -> Commit:
        found = self.commits.get(oid)
        if found is None:
            found = self.commits[oid] = read_commit(self.objects, oid)
        return found

    def chain(self, start: bytes) -> list[bytes]:
        """A history as ``log`` shows it: first parents, jumping over earlier prunes."""
        out = []
        oid: bytes | None = start
        while oid is not None:
            out.append(oid)
            mark = self.marks.get(oid)
            if mark is not None:
                oid = mark.next
            else:
                parents = self.commit(oid).parents
                oid = parents[0] if parents else None
        return out

    def entry(self, oid: bytes, reasons: Sequence[str] = ()) -> PrunedCheckpoint:
        commit = self.commit(oid)
        return PrunedCheckpoint(
            hex_id(oid),
            checkpoint_id_of(oid, commit),
            commit.session,
            commit.created_at,
            commit.notes,
            tuple(reasons),
        )

    def plan(self, policy: RetentionPolicy, sessions: Sequence[str] | None) -> _Plan:
        backend = self.objects.backend
        refs = backend.list_refs()
        self.marks = backend.prune_marks()
        targets = sorted(SESSION_PREFIX + s for s in sessions) if sessions else None
        pruned = [n for n in refs if n.startswith(SESSION_PREFIX) and (not targets or n in targets)]
        for name in targets or []:
            if name not in refs:
                raise EmptySession(name.removeprefix(SESSION_PREFIX), others=_sessions(refs))
        chains = {name: self.chain(oid) for name, oid in refs.items()}
        reasons: dict[bytes, list[str]] = {}
        protected: set[bytes] = set()
        for name, oid in refs.items():
            if name.startswith(SESSION_PREFIX):
                reasons.setdefault(oid, []).append("head")
                if name not in pruned:
                    protected.update(chains[name])
            elif name.startswith(TAG_PREFIX):
                reasons.setdefault(oid, []).append(f"tag {name.removeprefix(TAG_PREFIX)}")
            else:
                protected.update(chains[name])
        for name in pruned:
            records = [CheckpointTime(oid, self._time(oid)) for oid in chains[name]]
            for oid, why in apply_policy(policy, records).items():
                bucket = reasons.setdefault(oid, [])
                bucket.extend(w for w in why if w not in bucket)
        candidates = {oid for name in pruned for oid in chains[name]}
        forgotten = candidates - reasons.keys() - protected
        forgotten -= self._second_parents(chains, forgotten)
        return _Plan(
            refs,
            dict(self.marks),
            forgotten,
            self._new_marks(chains, forgotten),
            [self._report(name, chains[name], reasons, forgotten) for name in pruned],
        )

    def _time(self, oid: bytes) -> Any:
        return checkpoint_time(self.commit(oid).created_at)

    def _second_parents(self, chains: dict[str, list[bytes]], forgotten: set[bytes]) -> set[bytes]:
        """Forgotten commits that a kept commit names as a later parent (kept, too)."""
        rescued: set[bytes] = set()
        while True:
            more = {
                parent
                for chain in chains.values()
                for oid in chain
                if oid not in forgotten or oid in rescued
                for parent in self.commit(oid).parents[1:]
                if parent in forgotten and parent not in rescued
            }
            if not more:
                return rescued
            rescued |= more

    def _new_marks(self, chains: dict[str, list[bytes]], forgotten: set[bytes]) -> list[PruneMark]:
        """A mark for every kept commit whose (effective) first parent is forgotten."""
        made: dict[bytes, PruneMark] = {}
        for chain in chains.values():
            for i, oid in enumerate(chain[:-1]):
                if oid in forgotten or chain[i + 1] not in forgotten or oid in made:
                    continue
                skipped = self.marks[oid].skipped if oid in self.marks else 0
                j = i + 1
                while j < len(chain) and chain[j] in forgotten:
                    gap = self.marks.get(chain[j])
                    skipped += 1 + (gap.skipped if gap is not None else 0)
                    j += 1
                old = self.marks.get(oid)
                if old is not None:
                    parent = old.parent_checkpoint
                else:
                    first = self.commit(oid).parents[0]
                    parent = checkpoint_id_of(first, self.commit(first))
                made[oid] = PruneMark(oid, parent, chain[j] if j < len(chain) else None, skipped)
        return list(made.values())

    def _report(
        self,
        name: str,
        chain: list[bytes],
        reasons: dict[bytes, list[str]],
        forgotten: set[bytes],
    ) -> SessionPrune:
        kept = [
            self.entry(oid, reasons.get(oid, ["shared"])) for oid in chain if oid not in forgotten
        ]
        removed = [self.entry(oid) for oid in chain if oid in forgotten]
        return SessionPrune(name.removeprefix(SESSION_PREFIX), kept, removed)


def _sessions(refs: dict[str, bytes]) -> list[str]:
    return [n.removeprefix(SESSION_PREFIX) for n in refs if n.startswith(SESSION_PREFIX)]


def apply_retention(
    objects: ObjectStore,
    policy: RetentionPolicy,
    *,
    sessions: Sequence[str] | None = None,
    dry_run: bool = False,
    grace: float = DEFAULT_GRACE,
    reflog_expiry: float = DEFAULT_REFLOG_EXPIRY,
    now: float | None = None,
    progress: Progress | None = None,
    compact: bool = False,
) -> PruneReport:
    """Forget the checkpoints ``policy`` does not keep, then collect garbage.

    Args:
        objects: the store's objects (and, through them, its backend).
        policy: the retention policy; an empty one keeps the newest ``DEFAULT_KEEP``.
        sessions: the sessions to prune (default: all); the others are left whole.
        dry_run: change nothing; report what would go and what gc would free.
        grace: passed to the gc that follows (seconds).
        reflog_expiry: passed to the gc that follows (seconds).
        now: passed to the gc that follows.
        progress: passed to the gc that follows.
        compact: passed to the gc that follows.

    Raises:
        EmptySession: a session in ``sessions`` has no checkpoints.
        RefConflict: refs kept moving while the prune was being applied.
        GCAborted: see :func:`ckptstore.gc.collect_garbage`.
    """
    policy = policy.effective()
    for name in sessions or ():
        check_name(name)
    backend = objects.backend
    plan: _Plan | None = None
    if dry_run:
        with backend.reading():
            plan = _Planner(objects).plan(policy, sessions)
        view = GCView({**plan.old_marks, **{m.id: m for m in plan.new_marks}}, plan.forgotten)
        stats = collect_garbage(
            objects, grace=grace, reflog_expiry=reflog_expiry, dry_run=True, now=now,
            progress=progress, view=view,
        )  # fmt: skip
        return PruneReport(policy, plan.sessions, len(plan.forgotten), stats, True)
    for attempt in range(_OPTIMISTIC_ATTEMPTS + 1):
        optimistic = attempt < _OPTIMISTIC_ATTEMPTS
        if optimistic:
            with backend.reading():
                plan = _Planner(objects).plan(policy, sessions)
        with backend.exclusive():
            if optimistic:
                assert plan is not None
                if backend.list_refs() != plan.refs or backend.prune_marks() != plan.old_marks:
                    continue  # something moved since the plan: plan again
            else:
                # Refs kept moving: plan while holding the lock, so nothing can.
                plan = _Planner(objects).plan(policy, sessions)
            backend.set_prune_marks(plan.new_marks)
            backend.drop_reflog(targets=plan.forgotten)
        break
    else:  # pragma: no cover - the last attempt holds the lock and cannot conflict
        raise RefConflict("sessions/*", None, None, _OPTIMISTIC_ATTEMPTS + 1)
    assert plan is not None
    stats = collect_garbage(
        objects, grace=grace, reflog_expiry=reflog_expiry, now=now, progress=progress,
        compact=compact,
    )  # fmt: skip
    return PruneReport(policy, plan.sessions, len(plan.forgotten), stats, False)
